//! Listing and aborting multipart uploads over the S3-compatible XML API
//! (S3, Spaces and GCS), which `object_store` 0.14 does not expose.
//!
//! - list: `GET /<bucket>?uploads&prefix=…`, paged with `key-marker` and
//!   `upload-id-marker` until `IsTruncated` is false;
//! - abort: `DELETE /<bucket>/<key>?uploadId=…`.
//!
//! Path-style URLs, as the sink's `object_store` client uses them. S3 and
//! Spaces requests are signed with SigV4 (`sigv4.rs`) using the credentials
//! `object_store` resolved; GCS requests carry its OAuth bearer token.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::aws::AwsCredentialProvider;
use object_store::gcp::GcpCredentialProvider;
use reqwest::{Method, StatusCode};

use super::sigv4;
use crate::error::{Error, Result};

/// How requests are authenticated.
pub(crate) enum Auth {
    /// SigV4 with the S3 client's credentials, for `region`.
    AwsV4 {
        credentials: AwsCredentialProvider,
        region: String,
    },
    /// `Authorization: Bearer` with the GCS client's token (none when the
    /// token is empty, as for emulators).
    Bearer(GcpCredentialProvider),
}

/// An open multipart upload, keyed by its full object name in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

/// A client for the two requests, for one bucket.
pub(crate) struct XmlUploads {
    http: reqwest::Client,
    /// `scheme://host[:port][/base]/<bucket>`, without trailing slash.
    bucket_url: url::Url,
    auth: Auth,
    location: String,
    max_retries: usize,
}

impl fmt::Debug for XmlUploads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XmlUploads")
            .field("bucket_url", &self.bucket_url.as_str())
            .finish_non_exhaustive()
    }
}

/// One page of a `ListMultipartUploadsResult`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    uploads: Vec<ListedUpload>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedUpload {
    key: String,
    upload_id: String,
    initiated: String,
}

/// A bucket's `LifecycleConfiguration` (S3).
#[derive(Debug, Default, serde::Deserialize)]
struct LifecycleXml {
    #[serde(default, rename = "Rule")]
    rules: Vec<RuleXml>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RuleXml {
    #[serde(default, rename = "ID")]
    id: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    filter: Option<FilterXml>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    expiration: Option<ExpirationXml>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterXml {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    and: Option<AndXml>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AndXml {
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExpirationXml {
    #[serde(default)]
    days: Option<u32>,
    #[serde(default)]
    date: Option<String>,
}

/// `body` as text whose root element is a `LifecycleConfiguration`.
fn lifecycle_text(body: &[u8]) -> std::result::Result<&str, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_string())?;
    match root_element(text) {
        Some(root) if root == "LifecycleConfiguration" => Ok(text),
        other => Err(format!(
            "expected a LifecycleConfiguration, got {}",
            other.map_or("no XML element".to_string(), |r| format!("<{r}>"))
        )),
    }
}

/// Parse a `LifecycleConfiguration` into its rules (bucket-relative
/// prefixes).
fn parse_lifecycle(body: &[u8]) -> std::result::Result<Vec<super::LifecycleRule>, String> {
    let text = lifecycle_text(body)?;
    let cfg: LifecycleXml = quick_xml::de::from_str(text)
        .map_err(|e| format!("unreadable LifecycleConfiguration: {e}"))?;
    Ok(cfg
        .rules
        .into_iter()
        .map(|r| super::LifecycleRule {
            id: r.id.unwrap_or_default(),
            prefix: r
                .filter
                .and_then(|f| f.prefix.or(f.and.and_then(|a| a.prefix)))
                .or(r.prefix)
                .unwrap_or_default(),
            enabled: r.status == "Enabled",
            expire_days: r.expiration.as_ref().and_then(|e| e.days),
            expire_date: r.expiration.and_then(|e| e.date),
            created_before: None,
        })
        .collect())
}

/// A bucket's `LifecycleConfiguration` in GCS's XML API, which differs
/// from S3's: each rule has an `Action` (`Delete`, `SetStorageClass`, ...)
/// and a `Condition` whose elements must all hold.
#[derive(Debug, Default, serde::Deserialize)]
struct GcsLifecycleXml {
    #[serde(default, rename = "Rule")]
    rules: Vec<GcsRuleXml>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GcsRuleXml {
    #[serde(default)]
    action: Option<GcsActionXml>,
    #[serde(default)]
    condition: Option<GcsConditionXml>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GcsActionXml {
    #[serde(default)]
    delete: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GcsConditionXml {
    #[serde(default)]
    age: Option<u32>,
    #[serde(default)]
    created_before: Option<String>,
    #[serde(default)]
    is_live: Option<bool>,
    #[serde(default)]
    number_of_newer_versions: Option<u32>,
    #[serde(default)]
    days_since_noncurrent_time: Option<u32>,
    #[serde(default)]
    noncurrent_time_before: Option<String>,
    #[serde(default)]
    days_since_custom_time: Option<u32>,
    #[serde(default)]
    custom_time_before: Option<String>,
    #[serde(default)]
    matches_prefix: Vec<String>,
    #[serde(default)]
    matches_suffix: Vec<String>,
}

/// Parse GCS's `LifecycleConfiguration` into the rules that delete live
/// objects (bucket-relative prefixes), one per `MatchesPrefix`.
///
/// Rules that cannot delete a live backup are left out: other actions
/// (`SetStorageClass` moves objects, `AbortIncompleteMultipartUpload`
/// removes no visible object), conditions that only match noncurrent
/// versions (`IsLive` false, `NumberOfNewerVersions`, the noncurrent-time
/// ones), and custom-time conditions (lifeboat never sets `customTime`, and
/// an object without one matches none). A `MatchesSuffix` rule is kept
/// (conservatively: it may match backup objects) with its suffixes in the id.
fn parse_gcs_lifecycle(body: &[u8]) -> std::result::Result<Vec<super::LifecycleRule>, String> {
    let text = lifecycle_text(body)?;
    let cfg: GcsLifecycleXml = quick_xml::de::from_str(text)
        .map_err(|e| format!("unreadable LifecycleConfiguration: {e}"))?;
    let mut out = Vec::new();
    for (i, rule) in cfg.rules.into_iter().enumerate() {
        if rule.action.and_then(|a| a.delete).is_none() {
            continue;
        }
        let c = rule.condition.unwrap_or_default();
        let noncurrent_only = c.is_live == Some(false)
            || c.number_of_newer_versions.is_some()
            || c.days_since_noncurrent_time.is_some()
            || c.noncurrent_time_before.is_some();
        if noncurrent_only || c.days_since_custom_time.is_some() || c.custom_time_before.is_some() {
            continue;
        }
        // GCS rules have no ids: name them by position, as the console does.
        let mut id = format!("rule {}", i + 1);
        if !c.matches_suffix.is_empty() {
            id.push_str(&format!(
                " (names ending in {})",
                c.matches_suffix.join(", ")
            ));
        }
        // Without Age or CreatedBefore, a Delete rule matches at once.
        let expire_days = match (c.age, &c.created_before) {
            (None, None) => Some(0),
            (age, _) => age,
        };
        let prefixes = if c.matches_prefix.is_empty() {
            vec![String::new()]
        } else {
            c.matches_prefix
        };
        for prefix in prefixes {
            out.push(super::LifecycleRule {
                id: id.clone(),
                prefix,
                enabled: true,
                expire_days,
                expire_date: None,
                created_before: c.created_before.clone(),
            });
        }
    }
    Ok(out)
}

/// A `LifecycleConfiguration` in whichever dialect it is written: the
/// document's, not the client's, since GCS answers an S3 client too (HMAC
/// keys on storage.googleapis.com) with rules of `Action` and `Condition`.
/// `gcs`: the client speaks to GCS (a document without rules is read as
/// GCS's).
fn parse_any_lifecycle(
    body: &[u8],
    gcs: bool,
) -> std::result::Result<Vec<super::LifecycleRule>, String> {
    let text = String::from_utf8_lossy(body);
    if text.contains("<Action") || text.contains("<Condition") || (gcs && !text.contains("<Status"))
    {
        parse_gcs_lifecycle(body)
    } else {
        parse_lifecycle(body)
    }
}

/// A failed exchange: what to say, and whether trying again may help.
struct Failure {
    message: String,
    retryable: bool,
    source: Option<reqwest::Error>,
}

impl XmlUploads {
    /// `endpoint` is the service's base URL (`https://s3.us-east-1.amazonaws.com`,
    /// `https://storage.googleapis.com`, a test server).
    pub(crate) fn new(
        endpoint: &str,
        bucket: &str,
        auth: Auth,
        location: &str,
        max_retries: usize,
    ) -> Result<Self> {
        let url = format!(
            "{}/{}",
            endpoint.trim_end_matches('/'),
            sigv4::uri_encode(bucket, true)
        );
        let bucket_url = url::Url::parse(&url)
            .map_err(|e| Error::config(location, format!("invalid endpoint {endpoint:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::config(location, format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            http,
            bucket_url,
            auth,
            location: location.to_string(),
            max_retries,
        })
    }

    /// Every open upload whose key starts with `prefix` (a plain string
    /// prefix; the caller adds the `/`). Pages until the listing is complete;
    /// any failure is an error, never a shorter list.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<OpenUpload>> {
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut query = vec![("uploads".to_string(), String::new())];
            if !prefix.is_empty() {
                query.push(("prefix".into(), prefix.into()));
            }
            if let Some((key, id)) = &marker {
                query.push(("key-marker".into(), key.clone()));
                query.push(("upload-id-marker".into(), id.clone()));
            }
            let body = self
                .send(Method::GET, &[], &query, "list interrupted uploads")
                .await?;
            let page = parse_page(&body).map_err(|m| {
                Error::sink_err(
                    &self.location,
                    format!("cannot list interrupted uploads: {m}"),
                )
            })?;
            for u in page.uploads {
                if u.key.starts_with(prefix) {
                    out.push(u);
                }
            }
            if !page.truncated {
                return Ok(out);
            }
            let next = page.next.filter(|n| Some(n) != marker.as_ref());
            let Some(next) = next else {
                // Without a new marker the rest cannot be fetched: a partial
                // list must not pass for the whole.
                return Err(Error::sink_err(
                    &self.location,
                    "cannot list interrupted uploads: the service said the listing is truncated but gave no new marker",
                ));
            };
            marker = Some(next);
        }
    }

    /// The bucket's lifecycle rules, from `GET /<bucket>?lifecycle` in S3's
    /// or GCS's XML dialect; no configuration is an empty list.
    pub(crate) async fn lifecycle(&self) -> Result<Option<Vec<super::LifecycleRule>>> {
        let gcs = matches!(self.auth, Auth::Bearer(_));
        let parse = |body: &[u8]| parse_any_lifecycle(body, gcs);
        let query = vec![("lifecycle".to_string(), String::new())];
        match self
            .send(
                Method::GET,
                &[],
                &query,
                "read the bucket's lifecycle rules",
            )
            .await
        {
            Ok(body) => parse(&body).map(Some).map_err(|m| {
                Error::sink_err(
                    &self.location,
                    format!("cannot read the bucket's lifecycle rules: {m}"),
                )
            }),
            Err(Error::NotFound { .. }) => Ok(Some(Vec::new())),
            Err(e) => Err(e),
        }
    }

    /// Abort one upload of the full object name `key`. An upload that is
    /// already gone (completed or aborted) is not an error.
    pub(crate) async fn abort(&self, key: &str, upload_id: &str) -> Result<()> {
        let segments: Vec<&str> = key.split('/').collect();
        let query = vec![("uploadId".to_string(), upload_id.to_string())];
        match self
            .send(
                Method::DELETE,
                &segments,
                &query,
                "abort an interrupted upload",
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Send one request (retrying transient failures) and return the body of
    /// a 2xx answer. A 404 that names a missing upload is `NotFound`.
    async fn send(
        &self,
        method: Method,
        key_segments: &[&str],
        query: &[(String, String)],
        what: &str,
    ) -> Result<bytes::Bytes> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&method, key_segments, query).await {
                Ok(Ok(body)) => return Ok(body),
                Ok(Err(NoSuchUpload)) => {
                    return Err(Error::NotFound {
                        location: self.location.clone(),
                        key: key_segments.join("/"),
                    });
                }
                Err(f) if f.retryable && attempt <= self.max_retries => {
                    tracing::debug!(attempt, error = %f.message, "{what}: retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(f) => {
                    return Err(Error::Sink {
                        location: self.location.clone(),
                        message: format!("cannot {what}: {}", f.message),
                        retryable: f.retryable,
                        source: f.source.map(|e| Box::new(e.without_url()) as _),
                    });
                }
            }
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        key_segments: &[&str],
        query: &[(String, String)],
    ) -> std::result::Result<std::result::Result<bytes::Bytes, NoSuchUpload>, Failure> {
        let mut path = self.bucket_url.path().trim_end_matches('/').to_string();
        for s in key_segments {
            path.push('/');
            path.push_str(&sigv4::uri_encode(s, true));
        }
        // Valueless parameters go out bare (`?uploads`), as S3 clients send
        // them; the signature's canonical form has `uploads=`.
        let query_text = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    sigv4::uri_encode(k, true)
                } else {
                    format!(
                        "{}={}",
                        sigv4::uri_encode(k, true),
                        sigv4::uri_encode(v, true)
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut url = self.bucket_url.clone();
        url.set_path(&path);
        url.set_query(Some(&query_text));
        let mut request = self.http.request(method.clone(), url.clone());
        for (k, v) in self.auth_headers(method, &url, &path, query).await? {
            request = request.header(k, v);
        }
        let response = request.send().await.map_err(|e| Failure {
            message: "cannot reach the storage service".into(),
            retryable: true,
            source: Some(e),
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| Failure {
            message: "the storage service's answer broke off".into(),
            retryable: true,
            source: Some(e),
        })?;
        if status.is_success() {
            return Ok(Ok(body));
        }
        let code = error_code(&body);
        if status == StatusCode::NOT_FOUND
            && matches!(
                code.as_deref(),
                Some("NoSuchUpload" | "NoSuchLifecycleConfiguration")
            )
        {
            return Ok(Err(NoSuchUpload));
        }
        Err(classify(status, code.as_deref()))
    }

    async fn auth_headers(
        &self,
        method: &Method,
        url: &url::Url,
        path: &str,
        query: &[(String, String)],
    ) -> std::result::Result<Vec<(String, String)>, Failure> {
        let credential_failure = |e: object_store::Error| Failure {
            message: format!("cannot obtain credentials: {e}"),
            retryable: false,
            source: None,
        };
        match &self.auth {
            Auth::AwsV4 {
                credentials,
                region,
            } => {
                let creds = credentials
                    .get_credential()
                    .await
                    .map_err(credential_failure)?;
                let host = match url.port() {
                    Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_string(),
                };
                let content = vec![(
                    "x-amz-content-sha256".to_string(),
                    sigv4::EMPTY_SHA256.to_string(),
                )];
                let req = sigv4::Request {
                    method: method.as_str(),
                    host: &host,
                    path,
                    query,
                    headers: &content,
                    payload_sha256: sigv4::EMPTY_SHA256,
                };
                let creds = sigv4::Credentials {
                    key_id: &creds.key_id,
                    secret: &creds.secret_key,
                    token: creds.token.as_deref(),
                };
                let signed = sigv4::sign(&req, &creds, region, "s3", Utc::now());
                Ok(content.into_iter().chain(signed).collect())
            }
            Auth::Bearer(provider) => {
                let creds = provider
                    .get_credential()
                    .await
                    .map_err(credential_failure)?;
                if creds.bearer.is_empty() {
                    Ok(Vec::new())
                } else {
                    Ok(vec![(
                        "authorization".to_string(),
                        format!("Bearer {}", creds.bearer),
                    )])
                }
            }
        }
    }
}

/// The service said the upload does not exist (completed or aborted).
struct NoSuchUpload;

/// A parsed page: the uploads, whether more follow, and the next markers.
struct Page {
    uploads: Vec<OpenUpload>,
    truncated: bool,
    next: Option<(String, String)>,
}

fn parse_page(body: &[u8]) -> std::result::Result<Page, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_string())?;
    // serde accepts any root element; an HTML error page from a proxy must
    // not read as an empty listing.
    match root_element(text) {
        Some(root) if root == "ListMultipartUploadsResult" => {}
        other => {
            return Err(format!(
                "expected a ListMultipartUploadsResult, got {}",
                other.map_or("no XML element".to_string(), |r| format!("<{r}>"))
            ));
        }
    }
    let page: ListPage = quick_xml::de::from_str(text)
        .map_err(|e| format!("unreadable ListMultipartUploadsResult: {e}"))?;
    let mut uploads = Vec::with_capacity(page.uploads.len());
    for u in page.uploads {
        let initiated = DateTime::parse_from_rfc3339(u.initiated.trim())
            .map_err(|e| format!("upload {:?}: bad Initiated {:?}: {e}", u.key, u.initiated))?
            .with_timezone(&Utc);
        uploads.push(OpenUpload {
            key: u.key,
            upload_id: u.upload_id,
            initiated,
        });
    }
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let next = match (
        non_empty(page.next_key_marker),
        page.next_upload_id_marker.unwrap_or_default(),
    ) {
        (Some(key), id) => Some((key, id)),
        // Some servers leave the markers out: continue after the last entry.
        (None, _) => uploads.last().map(|u| (u.key.clone(), u.upload_id.clone())),
    };
    Ok(Page {
        uploads,
        truncated: page.is_truncated,
        next,
    })
}

/// The local name of the first element of an XML document.
fn root_element(text: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                return Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The `<Code>` of an XML error body.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "Code")]
        code: String,
    }
    let text = std::str::from_utf8(body).ok()?;
    quick_xml::de::from_str::<ErrorBody>(text)
        .ok()
        .map(|e| e.code)
}

fn classify(status: StatusCode, code: Option<&str>) -> Failure {
    let code_text = code.map(|c| format!(" {c}")).unwrap_or_default();
    let (message, retryable) = match (status.as_u16(), code) {
        (404, Some("NoSuchBucket")) => ("bucket does not exist".to_string(), false),
        (401, _) => (
            format!("authentication failed (401{code_text}): check the credentials"),
            false,
        ),
        (403, _) => (
            format!(
                "access denied (403{code_text}): the credentials lack permission for this bucket or prefix"
            ),
            false,
        ),
        (408 | 429, _) | (500..=599, _) => (
            format!(
                "the storage service failed ({}{code_text})",
                status.as_u16()
            ),
            true,
        ),
        _ => (
            format!("request failed ({}{code_text})", status.as_u16()),
            false,
        ),
    };
    Failure {
        message,
        retryable,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcs_lifecycle_rules_that_delete_live_objects_are_read() {
        // GCS's XML dialect: Action + Condition, no ids, several prefixes.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<LifecycleConfiguration>
  <Rule>
    <Action><SetStorageClass><StorageClass>COLDLINE</StorageClass></SetStorageClass></Action>
    <Condition><Age>10</Age></Condition>
  </Rule>
  <Rule>
    <Action><Delete/></Action>
    <Condition><Age>30</Age><MatchesPrefix>prod/</MatchesPrefix><MatchesPrefix>logs/</MatchesPrefix></Condition>
  </Rule>
  <Rule>
    <Action><Delete/></Action>
    <Condition><IsLive>false</IsLive><Age>7</Age></Condition>
  </Rule>
  <Rule>
    <Action><Delete/></Action>
    <Condition><NumberOfNewerVersions>3</NumberOfNewerVersions></Condition>
  </Rule>
  <Rule>
    <Action><Delete/></Action>
    <Condition><CreatedBefore>2026-01-15</CreatedBefore><MatchesSuffix>.zst</MatchesSuffix></Condition>
  </Rule>
  <Rule>
    <Action><Delete></Delete></Action>
    <Condition><IsLive>true</IsLive></Condition>
  </Rule>
</LifecycleConfiguration>"#;
        let rules = parse_gcs_lifecycle(xml.as_bytes()).unwrap();
        assert_eq!(rules[2].created_before.as_deref(), Some("2026-01-15"));
        let got: Vec<_> = rules
            .iter()
            .map(|r| {
                (
                    r.id.as_str(),
                    r.prefix.as_str(),
                    r.enabled,
                    r.expire_days,
                    r.expire_date.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("rule 2", "prod/", true, Some(30), None),
                ("rule 2", "logs/", true, Some(30), None),
                ("rule 5 (names ending in .zst)", "", true, None, None),
                ("rule 6", "", true, Some(0), None),
            ]
        );
        assert_eq!(
            parse_gcs_lifecycle(b"<LifecycleConfiguration/>").unwrap(),
            vec![]
        );
        let err = parse_gcs_lifecycle(b"<Error><Code>AccessDenied</Code></Error>").unwrap_err();
        assert!(err.contains("<Error>"), "{err}");
        // GCS's rules read through an S3 client (HMAC keys) are GCS's,
        // not S3 rules without a Status (which would count as disabled).
        let via_s3 = parse_any_lifecycle(xml.as_bytes(), false).unwrap();
        assert_eq!(via_s3, rules);
        let s3 = br#"<LifecycleConfiguration><Rule><ID>x</ID><Status>Enabled</Status><Filter><Prefix>p/</Prefix></Filter><Expiration><Days>3</Days></Expiration></Rule></LifecycleConfiguration>"#;
        let r = parse_any_lifecycle(s3, false).unwrap();
        assert_eq!((r[0].id.as_str(), r[0].expire_days), ("x", Some(3)));
    }

    #[test]
    fn a_list_page_is_read_with_markers_and_times() {
        // The shape of the AWS documentation's example answer, with the
        // owner/initiator blocks and a common prefix in between.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket>
  <KeyMarker></KeyMarker>
  <UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>
  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <MaxUploads>3</MaxUploads>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>my-divisor</Key>
    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
    <Initiator><ID>arn:aws:iam::111122223333:user/user1</ID><DisplayName>user1</DisplayName></Initiator>
    <Owner><ID>75aa57f0</ID><DisplayName>OwnerDisplayName</DisplayName></Owner>
    <StorageClass>REDUCED_REDUNDANCY</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
  <CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes>
  <Upload>
    <Key>a &amp; b.zst</Key>
    <UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:34Z</Initiated>
  </Upload>
</ListMultipartUploadsResult>"#;
        let page = parse_page(xml.as_bytes()).unwrap();
        assert!(page.truncated);
        assert_eq!(
            page.next,
            Some((
                "my-movie.m2ts".into(),
                "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ".into()
            ))
        );
        let keys: Vec<_> = page.uploads.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["my-divisor", "a & b.zst"]);
        assert_eq!(
            page.uploads[0].initiated.to_rfc3339(),
            "2010-11-10T20:48:33+00:00"
        );
    }

    #[test]
    fn an_empty_listing_and_errors_are_told_apart() {
        let empty = r#"<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>"#;
        let page = parse_page(empty.as_bytes()).unwrap();
        assert!(page.uploads.is_empty() && !page.truncated);
        assert!(parse_page(b"<html>proxy error</html>").is_err());
        let bad_time = r#"<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>u</UploadId><Initiated>yesterday</Initiated></Upload></ListMultipartUploadsResult>"#;
        assert!(parse_page(bad_time.as_bytes()).is_err());
        assert_eq!(
            error_code(b"<Error><Code>NoSuchUpload</Code><Message>m</Message></Error>").as_deref(),
            Some("NoSuchUpload")
        );
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        assert!(classify(StatusCode::SERVICE_UNAVAILABLE, Some("SlowDown")).retryable);
        assert!(!classify(StatusCode::FORBIDDEN, Some("SignatureDoesNotMatch")).retryable);
        let missing = classify(StatusCode::NOT_FOUND, Some("NoSuchBucket"));
        assert!(!missing.retryable && missing.message == "bucket does not exist");
    }
}
