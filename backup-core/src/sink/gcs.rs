//! Google Cloud Storage.
//!
//! Credentials come from `GOOGLE_APPLICATION_CREDENTIALS` (or
//! `GOOGLE_SERVICE_ACCOUNT`), then gcloud's application default credentials
//! and the metadata server, as `object_store` resolves them. The standard
//! emulator variable `STORAGE_EMULATOR_HOST` points the client at an emulator
//! with authentication off.

use std::sync::Arc;

use object_store::gcp::GoogleCloudStorageBuilder;

use super::object::{Pending, Versions};
use super::s3::{client_options, retry_config};
use super::uploads::{Auth, XmlUploads};
use super::{DEFAULT_PART_SIZE, DEFAULT_UPLOAD_CONCURRENCY, ObjectStoreSink, SinkOptions};
use crate::error::{Error, Result};

/// Where the XML API lives, as in `object_store`'s GCS client.
const DEFAULT_GCS_BASE_URL: &str = "https://storage.googleapis.com";

/// A resolved GCS configuration.
#[derive(Debug, Clone)]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Base URL of an emulator or test double (`http://127.0.0.1:4443`).
    pub endpoint: Option<String>,
    service_account_path: Option<String>,
    part_size: usize,
    concurrency: usize,
    max_retries: usize,
    list_page_size: Option<usize>,
}

impl GcsConfig {
    pub(crate) fn from_options(bucket: &str, prefix: &str, opts: &SinkOptions) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint = opts.endpoint.clone().or_else(|| {
            env("STORAGE_EMULATOR_HOST").map(|h| {
                if h.contains("://") {
                    h
                } else {
                    format!("http://{h}")
                }
            })
        });
        let service_account_path = opts
            .service_account_path
            .clone()
            .or_else(|| env("GOOGLE_APPLICATION_CREDENTIALS"));
        if let Some(p) = &service_account_path
            && !std::path::Path::new(p).is_file()
        {
            return Err(Error::config(
                "credentials",
                format!("GCS service account file {p} does not exist"),
            ));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint,
            service_account_path,
            part_size: opts.part_size.unwrap_or(DEFAULT_PART_SIZE),
            concurrency: opts
                .upload_concurrency
                .unwrap_or(DEFAULT_UPLOAD_CONCURRENCY),
            max_retries: opts.max_retries.unwrap_or(5),
            list_page_size: opts.list_page_size,
        })
    }

    /// The sink's URL.
    pub fn location(&self) -> String {
        let mut loc = format!("gs://{}", self.bucket);
        if !self.prefix.is_empty() {
            loc.push('/');
            loc.push_str(&self.prefix);
        }
        loc
    }

    /// Build the sink.
    pub fn build(&self) -> Result<ObjectStoreSink> {
        let mut builder = GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(&self.bucket)
            .with_retry(retry_config(self.max_retries))
            .with_client_options(client_options(self.endpoint.as_deref()));
        if let Some(endpoint) = &self.endpoint {
            // Emulators and test doubles take no credentials.
            builder = builder.with_base_url(endpoint.trim_end_matches('/')).with_service_account_key(
                r#"{"disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}"#,
            );
        } else if let Some(path) = &self.service_account_path {
            builder = builder.with_service_account_path(path);
        }
        let store = builder
            .build()
            .map_err(|e| Error::config(self.location(), format!("cannot build GCS client: {e}")))?;
        let endpoint = self
            .endpoint
            .as_deref()
            .unwrap_or(DEFAULT_GCS_BASE_URL)
            .trim_end_matches('/');
        let pending = XmlUploads::new(
            endpoint,
            &self.bucket,
            Auth::Bearer(store.credentials().clone()),
            &self.location(),
            self.max_retries,
        )?;
        let store = Arc::new(store);
        Ok(
            ObjectStoreSink::new(store.clone(), &self.prefix, self.location())
                .with_identity(format!("{} endpoint={endpoint}", self.location()))
                .with_upload_tuning(self.part_size, self.concurrency)
                .with_pending(Pending::Xml(pending))
                .with_paged_listing(store, self.list_page_size)
                .with_versions(Versions::Generation),
        )
    }
}
