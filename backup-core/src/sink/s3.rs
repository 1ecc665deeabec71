//! Amazon S3 and S3-compatible services. DigitalOcean Spaces is a preset of
//! this client: the same code with the endpoint derived from the region.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use super::object::Pending;
use super::uploads::{Auth, XmlUploads};
use super::{DEFAULT_PART_SIZE, DEFAULT_UPLOAD_CONCURRENCY, ObjectStoreSink, SinkOptions};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    S3,
    Spaces,
}

/// The endpoint DigitalOcean Spaces serves a region from.
pub fn spaces_endpoint(region: &str) -> String {
    format!("https://{region}.digitaloceanspaces.com")
}

/// A resolved S3 configuration: what [`sink_from_url`](super::sink_from_url)
/// builds for `s3://` and `spaces://` URLs.
#[derive(Clone)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Region used for signing.
    pub region: String,
    /// Endpoint; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Scheme used in [`location`](Self::location) (`s3` or `spaces`).
    pub scheme: &'static str,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    part_size: usize,
    concurrency: usize,
    max_retries: usize,
    list_page_size: Option<usize>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.access_key_id.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl S3Config {
    pub(crate) fn from_options(
        bucket: &str,
        prefix: &str,
        opts: &SinkOptions,
        flavor: Flavor,
    ) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let files = AwsFiles::load();
        let (scheme, region, endpoint) = match flavor {
            Flavor::S3 => {
                let region = opts
                    .region
                    .clone()
                    .or_else(|| env("AWS_REGION"))
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .or_else(|| files.region.clone())
                    .unwrap_or_else(|| "us-east-1".to_string());
                let endpoint = opts
                    .endpoint
                    .clone()
                    .or_else(|| env("AWS_ENDPOINT_URL_S3"))
                    .or_else(|| env("AWS_ENDPOINT_URL"));
                ("s3", region, endpoint)
            }
            Flavor::Spaces => {
                let region = opts.region.clone().ok_or_else(|| {
                    Error::usage(format!(
                        "spaces://{bucket}: name the region (spaces://{bucket}/prefix?region=nyc3)"
                    ))
                })?;
                let endpoint = opts
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| spaces_endpoint(&region));
                ("spaces", region, Some(endpoint))
            }
        };
        // Spaces keys have their own conventional variables; fall back to AWS's.
        let (key_var, secret_var) = match flavor {
            Flavor::Spaces => ("SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY"),
            Flavor::S3 => ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        };
        let access_key_id = opts
            .access_key_id
            .clone()
            .or_else(|| env(key_var))
            .or_else(|| env("AWS_ACCESS_KEY_ID"))
            .or_else(|| files.access_key_id.clone());
        let secret_access_key = opts
            .secret_access_key
            .clone()
            .or_else(|| env(secret_var))
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
            .or_else(|| files.secret_access_key.clone());
        let session_token = opts
            .session_token
            .clone()
            .or_else(|| env("AWS_SESSION_TOKEN"))
            .or_else(|| files.session_token.clone());
        for secret in [&access_key_id, &secret_access_key, &session_token]
            .into_iter()
            .flatten()
        {
            crate::redact::register(secret);
        }
        if access_key_id.is_some() != secret_access_key.is_some() {
            return Err(Error::config(
                "credentials",
                "an S3 access key id was given without its secret, or a secret without its key id",
            ));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region,
            endpoint,
            scheme,
            access_key_id,
            secret_access_key,
            session_token,
            part_size: opts.part_size.unwrap_or(DEFAULT_PART_SIZE),
            concurrency: opts
                .upload_concurrency
                .unwrap_or(DEFAULT_UPLOAD_CONCURRENCY),
            max_retries: opts.max_retries.unwrap_or(5),
            list_page_size: opts.list_page_size,
        })
    }

    /// The sink's URL without credentials.
    pub fn location(&self) -> String {
        let mut loc = format!("{}://{}", self.scheme, self.bucket);
        if !self.prefix.is_empty() {
            loc.push('/');
            loc.push_str(&self.prefix);
        }
        loc
    }

    /// Build the sink.
    pub fn build(&self) -> Result<ObjectStoreSink> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_retry(retry_config(self.max_retries))
            .with_client_options(client_options(self.endpoint.as_deref()));
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(k), Some(s)) = (&self.access_key_id, &self.secret_access_key) {
            builder = builder.with_access_key_id(k).with_secret_access_key(s);
        }
        if let Some(t) = &self.session_token {
            builder = builder.with_token(t);
        }
        let store = builder
            .build()
            .map_err(|e| Error::config(self.location(), format!("cannot build S3 client: {e}")))?;
        // Path-style, like the client above: `<endpoint>/<bucket>`.
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region));
        let pending = XmlUploads::new(
            &endpoint,
            &self.bucket,
            Auth::AwsV4 {
                credentials: store.credentials().clone(),
                region: self.region.clone(),
            },
            &self.location(),
            self.max_retries,
        )?;
        let store = Arc::new(store);
        Ok(
            ObjectStoreSink::new(store.clone(), &self.prefix, self.location())
                .with_identity(format!(
                    "{} endpoint={} region={}",
                    self.location(),
                    self.endpoint.as_deref().unwrap_or("aws"),
                    self.region
                ))
                .with_upload_tuning(self.part_size, self.concurrency)
                .with_pending(Pending::Xml(pending))
                .with_paged_listing(store, self.list_page_size),
        )
    }
}

pub(crate) fn retry_config(max_retries: usize) -> RetryConfig {
    RetryConfig {
        max_retries,
        retry_timeout: Duration::from_secs(60),
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
    }
}

pub(crate) fn client_options(endpoint: Option<&str>) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300))
}

/// What `~/.aws/credentials` and `~/.aws/config` say for the active profile.
#[derive(Default)]
struct AwsFiles {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    region: Option<String>,
}

impl AwsFiles {
    fn load() -> Self {
        let home = std::env::var("HOME").unwrap_or_default();
        let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        let creds_path = std::env::var("AWS_SHARED_CREDENTIALS_FILE")
            .unwrap_or_else(|_| format!("{home}/.aws/credentials"));
        let config_path =
            std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| format!("{home}/.aws/config"));
        let creds = read_ini_section(&creds_path, &profile);
        let config_section = if profile == "default" {
            "default".to_string()
        } else {
            format!("profile {profile}")
        };
        let config = read_ini_section(&config_path, &config_section);
        Self {
            access_key_id: creds.get("aws_access_key_id").cloned(),
            secret_access_key: creds.get("aws_secret_access_key").cloned(),
            session_token: creds.get("aws_session_token").cloned(),
            region: config.get("region").cloned(),
        }
    }
}

/// Read one `[section]` of an INI file; a missing file is an empty section.
fn read_ini_section(path: &str, section: &str) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    parse_ini_section(&text, section)
}

fn parse_ini_section(text: &str, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_preset_derives_endpoint_from_region() {
        let opts = SinkOptions {
            region: Some("nyc3".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..Default::default()
        };
        let cfg = S3Config::from_options("acme", "prod", &opts, Flavor::Spaces).unwrap();
        assert_eq!(
            cfg.endpoint.as_deref(),
            Some("https://nyc3.digitaloceanspaces.com")
        );
        assert_eq!(cfg.region, "nyc3");
        assert_eq!(cfg.location(), "spaces://acme/prod");
        cfg.build().unwrap();
    }

    #[test]
    fn spaces_without_region_is_a_usage_error() {
        let err = S3Config::from_options("acme", "", &SinkOptions::default(), Flavor::Spaces)
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
    }

    #[test]
    fn ini_profile_sections_are_read() {
        let text =
            "[default]\naws_access_key_id = A\n[other]\naws_access_key_id=B\nregion = eu-west-1\n";
        assert_eq!(parse_ini_section(text, "default")["aws_access_key_id"], "A");
        assert_eq!(parse_ini_section(text, "other")["region"], "eu-west-1");
        assert!(parse_ini_section(text, "missing").is_empty());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let opts = SinkOptions {
            access_key_id: Some("AKIAXXXX".into()),
            secret_access_key: Some("topsecret".into()),
            ..Default::default()
        };
        let cfg = S3Config::from_options("b", "", &opts, Flavor::S3).unwrap();
        let text = format!("{cfg:?}");
        assert!(!text.contains("topsecret") && !text.contains("AKIAXXXX"));
    }
}
