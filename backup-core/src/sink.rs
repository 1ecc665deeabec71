//! Where backups are stored.
//!
//! A [`Sink`] is a flat key space below one root (a bucket and prefix, or a
//! directory). Keys are `/`-separated and relative to that root. Lifeboat
//! needs only a handful of operations from it; everything else (reading a
//! whole object into memory, hashing an object) lives in [`SinkExt`].
//!
//! Contracts every implementation keeps, and the conformance suite checks:
//!
//! - **Atomic visibility.** An object written with [`Sink::put`] or through an
//!   [`Upload`] is either fully visible under its key or not at all. An upload
//!   that is aborted, dropped or fails leaves nothing under the key and
//!   nothing in [`Sink::list`].
//! - **Errors are typed.** A missing key is [`Error::NotFound`]; every other
//!   failure is [`Error::Sink`] with `retryable` set only for transient faults.
//! - **Listing is complete or fails.** `list`, `list_with_delimiter` and
//!   `list_pending` never return a partial or empty list on error; a
//!   [`Sink::list_stream`] that fails yields the error as its last item, and
//!   what it yielded before is not the whole listing.
//! - **A missing prefix is an empty listing**, never [`Error::NotFound`].
//! - **Conditional writes are atomic.** [`PutMode::Create`] and
//!   [`PutMode::Update`] check and write in one step: of two writers racing
//!   on the same key and version, one wins and the other gets a typed error.
//! - **Interrupted writes can be found.** A writer that dies without running
//!   any cleanup (`kill -9`, OOM kill, power loss) leaves at most a *pending
//!   upload*: an open multipart upload, or a hidden partial file. Such
//!   uploads are never visible through [`Sink::list`] or [`Sink::get`];
//!   [`Sink::list_pending`] reports them under the key they were going to
//!   become and [`Sink::abort_pending`] removes them.

mod gcs;
mod local;
mod memory;
mod object;
mod s3;
mod sigv4;
mod uploads;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub use gcs::GcsConfig;
pub use local::LocalSink;
pub use object::ObjectStoreSink;
pub use s3::{S3Config, spaces_endpoint};

/// A stream of bytes read from a sink.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key, relative to the sink's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written, as the sink reports it.
    pub last_modified: DateTime<Utc>,
    /// An opaque token naming this very version of the object, for
    /// [`PutMode::Update`]: it changes whenever the object is written.
    /// S3, Spaces and memory: the ETag. GCS: the generation. Local: the
    /// file's inode, modification time and size.
    ///
    /// [`Sink::head`] always sets it where the sink supports
    /// [`PutMode::Update`]; a listing sets it where the listing carries it
    /// (not on GCS, whose listing `object_store` reads without generations:
    /// `head` the key to get it).
    pub version: Option<String>,
}

/// What [`Sink::put`] does when the key already holds an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutMode {
    /// Fail with [`Error::AlreadyExists`] if the key already exists.
    Create,
    /// Replace whatever is there (the default).
    #[default]
    Overwrite,
    /// Replace the object only if its current version is `version` (an
    /// [`ObjectInfo::version`] read earlier); otherwise, or if the key does
    /// not exist, fail with [`Error::Precondition`]. A compare-and-swap: of
    /// two writers updating from the same version, exactly one succeeds.
    Update {
        /// The version the caller read, as [`ObjectInfo::version`] gave it.
        version: String,
    },
}

/// Options for [`Sink::put`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// What to do when the key already holds an object.
    pub mode: PutMode,
}

impl PutOptions {
    /// Options that refuse to overwrite an existing object
    /// ([`PutMode::Create`]).
    pub fn create_only() -> Self {
        PutMode::Create.into()
    }

    /// Options that replace the object only if it is still at `version`
    /// ([`PutMode::Update`]).
    pub fn update(version: impl Into<String>) -> Self {
        PutMode::Update {
            version: version.into(),
        }
        .into()
    }
}

impl From<PutMode> for PutOptions {
    fn from(mode: PutMode) -> Self {
        Self { mode }
    }
}

/// What [`Sink::list_with_delimiter`] finds directly under a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// The "directories": for every object `<prefix>/<name>/…` below the
    /// prefix, `<prefix>/<name>` (sink-relative, without trailing slash),
    /// once, sorted.
    pub common_prefixes: Vec<String>,
    /// The objects `<prefix>/<name>` directly under the prefix, sorted by key.
    pub objects: Vec<ObjectInfo>,
}

/// An upload that an interrupted writer left behind: started, and neither
/// completed nor aborted. It holds storage but is not visible as an object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingUpload {
    /// The key the upload was going to become, relative to the sink's root.
    pub key: String,
    /// The sink's own handle for it: the multipart upload id on object
    /// stores, the hidden partial file (relative to the root) on a local sink.
    pub id: String,
    /// When it started, as the sink can tell: the multipart upload's
    /// initiation time on object stores; on a local sink the partial file's
    /// last write (a writer that is still running keeps it fresh).
    pub started: DateTime<Utc>,
}

/// A multipart upload in progress. Nothing is visible under its key until
/// [`Upload::complete`] returns `Ok`.
///
/// An upload that is dropped without `complete` or `abort` (a cancelled
/// run) is cleaned up in the background; [`wait_for_cleanup`] waits for that.
/// A writer killed outright leaves a [`PendingUpload`].
#[async_trait]
pub trait Upload: Send {
    /// Append bytes. Parts may be of any size; the implementation batches
    /// them into the part size the service needs and may upload several
    /// parts at once.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Make the object visible under its key, atomically.
    ///
    /// If this fails, or its future is dropped before it returns, nothing
    /// stays visible under the key and no pending upload stays open. A
    /// completion whose answer was lost may have landed, so that cleanup
    /// deletes the key: upload only to keys that no committed object uses.
    /// (Cleanup needs the service: what an unreachable service keeps is found
    /// by [`Sink::list_pending`], or listed as an object without manifest.)
    async fn complete(self: Box<Self>) -> Result<()>;

    /// Discard everything written. Nothing remains under the key.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// A place that stores backups.
///
/// Required methods are the few every store can provide; build on them with
/// [`SinkExt`].
#[async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// Where this sink points, as a URL without credentials
    /// (`s3://bucket/prefix`, `file:///var/backups`). Safe to log.
    fn location(&self) -> &str;

    /// What tells this store apart from another one at the same
    /// [`location`](Self::location): for S3-compatible and GCS sinks, the
    /// endpoint and region too (the same bucket name on MinIO and on AWS
    /// are two stores). No credentials. Defaults to the location.
    fn identity(&self) -> String {
        self.location().to_string()
    }

    /// Check, before any data is produced, that the sink is reachable, that
    /// the credentials are accepted and that the bucket or directory exists.
    ///
    /// # Errors
    /// [`Error::Sink`] naming what is wrong (missing bucket, access denied,
    /// unwritable directory).
    async fn check(&self) -> Result<()>;

    /// Store a small object in one request, as [`PutOptions::mode`] says.
    ///
    /// # Errors
    /// [`Error::Sink`]; with [`PutMode::Create`], [`Error::AlreadyExists`]
    /// when the key already exists (also when an earlier attempt of the same
    /// request landed and only its response was lost: the caller reads the
    /// object back to tell); with [`PutMode::Update`],
    /// [`Error::Precondition`] when the object is not at the given version
    /// or does not exist (the same caveat: a lost response of a write that
    /// landed reads as a precondition failure).
    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<()>;

    /// [`put`](Self::put), returning the version the new object got (its
    /// [`ObjectInfo::version`]) when the sink can tell, so that a caller
    /// can [`PutMode::Update`] it next without reading it again.
    ///
    /// The provided implementation calls `put` and returns `None`.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    async fn put_versioned(
        &self,
        key: &str,
        data: Bytes,
        opts: PutOptions,
    ) -> Result<Option<String>> {
        self.put(key, data, opts).await.map(|()| None)
    }

    /// Start a streaming upload to `key`.
    async fn upload(&self, key: &str) -> Result<Box<dyn Upload>>;

    /// Read an object as a stream.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the key does not exist.
    async fn get(&self, key: &str) -> Result<ByteStream>;

    /// Size and time of one object.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the key does not exist.
    async fn head(&self, key: &str) -> Result<ObjectInfo>;

    /// Every object below `prefix` as a stream: the keys `<prefix>/…` (a
    /// directory-like prefix, without trailing slash; `""` for everything),
    /// each once, in no particular order (object stores happen to answer
    /// in key order; a local directory walk does not).
    ///
    /// Pages are fetched as the stream is polled (S3 and GCS: one
    /// `ListObjectsV2` request per page of [`SinkOptions::list_page_size`]
    /// keys; local: one directory at a time), so a caller can stop early
    /// and never holds the whole listing.
    ///
    /// A prefix with nothing below it is an empty stream, never
    /// [`Error::NotFound`]. A failure is the stream's last item: the items
    /// before it are not the whole listing.
    fn list_stream(&self, prefix: &str) -> BoxStream<'_, Result<ObjectInfo>>;

    /// [`list_stream`](Self::list_stream), collected: every object below
    /// `prefix`, in no particular order.
    ///
    /// # Errors
    /// [`Error::Sink`] if the listing fails; never a partial or empty list.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.list_stream(prefix).try_collect().await
    }

    /// One level of the tree below `prefix` (directory-like, without
    /// trailing slash; `""` for the root), as with a `/` delimiter: the
    /// objects directly under it and the common prefixes of the deeper
    /// ones, each sorted by key. A common prefix is listed only if some
    /// object lies below it. A missing prefix gives an empty result, never
    /// [`Error::NotFound`].
    ///
    /// The provided implementation reads the whole
    /// [`list_stream`](Self::list_stream) and groups it; every sink of this
    /// crate asks the store for one level only.
    ///
    /// # Errors
    /// [`Error::Sink`] if the listing fails; never a partial result.
    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        let prefix = prefix.trim_matches('/').to_string();
        let below = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let mut common = std::collections::BTreeSet::new();
        let mut objects = Vec::new();
        let mut stream = self.list_stream(&prefix);
        while let Some(obj) = stream.try_next().await? {
            let Some(rest) = obj.key.strip_prefix(&below) else {
                continue;
            };
            match rest.split_once('/') {
                Some((dir, _)) => {
                    common.insert(join_key(&prefix, dir));
                }
                None => objects.push(obj),
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(ListResult {
            common_prefixes: common.into_iter().collect(),
            objects,
        })
    }

    /// Delete an object. Deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Every pending upload (see [`PendingUpload`]) whose key is below
    /// `prefix` (a directory-like prefix, without trailing slash; `""` for
    /// everything), in no particular order. Uploads still being written by a
    /// live process are listed too: tell them apart by
    /// [`PendingUpload::started`].
    ///
    /// # Errors
    /// [`Error::Sink`] if the listing fails or cannot be completed; never a
    /// partial or empty list.
    async fn list_pending(&self, prefix: &str) -> Result<Vec<PendingUpload>>;

    /// Remove a pending upload as [`Sink::list_pending`] reported it, with
    /// whatever storage it holds. Removing one that is already gone
    /// (completed, aborted, removed) is not an error. Never touches a
    /// visible object.
    ///
    /// # Errors
    /// [`Error::Sink`] if the removal fails, or if `upload` does not name a
    /// pending upload this sink could have made.
    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()>;

    /// The store's lifecycle rules that can delete this sink's objects
    /// (prefixes relative to the sink); `None` when the store has no such
    /// rules (a local folder) or no way to read them here (a plain
    /// `object_store` sink). S3, Spaces and GCS buckets are read.
    ///
    /// # Errors
    /// [`Error::Sink`] when the rules exist but cannot be read.
    async fn lifecycle_rules(&self) -> Result<Option<Vec<LifecycleRule>>> {
        Ok(None)
    }
}

/// One lifecycle rule of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LifecycleRule {
    /// Its id.
    pub id: String,
    /// The key prefix it applies to (relative to the sink; empty: all).
    pub prefix: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// It expires (deletes) objects this many days old.
    pub expire_days: Option<u32>,
    /// It expires objects on this date (S3: every object it reaches, once
    /// the date has come).
    pub expire_date: Option<String>,
    /// It only reaches objects created before this date (GCS's
    /// `CreatedBefore`).
    pub created_before: Option<String>,
}

/// Conveniences built on [`Sink`], available on every sink.
#[async_trait]
pub trait SinkExt: Sink {
    /// Read a whole object into memory. For small objects (manifests).
    async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        let mut stream = self.get(key).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(buf))
    }

    /// Stream an object and return its size and SHA-256 (lowercase hex).
    async fn sha256(&self, key: &str) -> Result<(u64, String)> {
        let mut stream = self.get(key).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Upload bytes through the streaming path in one call.
    async fn put_streamed(&self, key: &str, data: Bytes) -> Result<()> {
        let mut upload = self.upload(key).await?;
        if let Err(e) = upload.write(data).await {
            let _ = upload.abort().await;
            return Err(e);
        }
        upload.complete().await
    }
}

impl<T: Sink + ?Sized> SinkExt for T {}

/// Settings for building a sink from a URL, beyond what the URL says.
///
/// Every field is optional: unset fields fall back to the URL's query
/// parameters, then to the provider's standard environment variables and
/// files. Secrets set here are never logged.
#[derive(Clone, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SinkOptions {
    /// S3-compatible endpoint (`http://127.0.0.1:9000`). Default: `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Region. Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, `~/.aws/config`, `us-east-1`.
    pub region: Option<String>,
    /// Access key id. Default: `AWS_ACCESS_KEY_ID`, then `~/.aws/credentials`.
    pub access_key_id: Option<String>,
    /// Secret access key. Default: `AWS_SECRET_ACCESS_KEY`, then `~/.aws/credentials`.
    pub secret_access_key: Option<String>,
    /// Session token. Default: `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// Path to a GCS service-account JSON key. Default: `GOOGLE_APPLICATION_CREDENTIALS`.
    pub service_account_path: Option<String>,
    /// Part size for multipart uploads, in bytes (default 8 MiB, minimum 5 MiB).
    pub part_size: Option<usize>,
    /// Parts uploaded at once (default 4).
    pub upload_concurrency: Option<usize>,
    /// Attempts per request on transient errors (default 5).
    pub max_retries: Option<usize>,
    /// Keys per listing request on S3, Spaces and GCS (default: the
    /// service's, 1000; at most 1000). Smaller pages mean more requests;
    /// tests use it to list across pages.
    pub list_page_size: Option<usize>,
}

impl fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkOptions")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("service_account_path", &self.service_account_path)
            .field("part_size", &self.part_size)
            .field("upload_concurrency", &self.upload_concurrency)
            .field("max_retries", &self.max_retries)
            .field("list_page_size", &self.list_page_size)
            .finish()
    }
}

impl SinkOptions {
    /// Check the numbers against what the services accept.
    ///
    /// # Errors
    /// A message naming the key and the range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        use crate::units::check_range;
        if let Some(p) = self.part_size {
            check_range("sink_options.part_size", p, MIN_PART_SIZE..=MAX_PART_SIZE)?;
        }
        if let Some(c) = self.upload_concurrency {
            check_range("sink_options.upload_concurrency", c, 1..=64)?;
        }
        if let Some(r) = self.max_retries {
            check_range("sink_options.max_retries", r, 0..=100)?;
        }
        if let Some(n) = self.list_page_size {
            check_range("sink_options.list_page_size", n, 1..=1000)?;
        }
        Ok(())
    }
}

/// S3's largest part: 5 GiB.
pub(crate) const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
pub(crate) const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
pub(crate) const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
pub(crate) const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;

/// Build a sink from a URL.
///
/// | URL | sink |
/// |---|---|
/// | `file:///var/backups/app`, `/var/backups/app`, `./backups` | [`LocalSink`] |
/// | `s3://bucket/prefix` | S3 or any S3-compatible service (`AWS_ENDPOINT_URL`) |
/// | `spaces://bucket/prefix?region=nyc3` | DigitalOcean Spaces (S3 with the region's endpoint) |
/// | `gs://bucket/prefix` | Google Cloud Storage |
/// | `memory://` | in-memory, for tests |
///
/// Query parameters `endpoint` and `region` override the environment.
///
/// # Errors
/// [`Error::Usage`] for a malformed URL or unknown scheme; [`Error::Config`]
/// for missing or unreadable credentials settings.
pub fn sink_from_url(url: &str, opts: &SinkOptions) -> Result<Arc<dyn Sink>> {
    if !url.contains("://") {
        // A plain path, or `file:relative/dir`.
        let path = url.strip_prefix("file:").unwrap_or(url);
        return Ok(Arc::new(LocalSink::new(path)?));
    }
    let parsed =
        url::Url::parse(url).map_err(|e| Error::usage(format!("invalid sink URL {url:?}: {e}")))?;
    let query: BTreeMap<String, String> = parsed.query_pairs().into_owned().collect();
    let known = ["endpoint", "region"];
    if let Some(k) = query.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::usage(format!(
            "sink URL {url:?}: unknown parameter {k:?} (known: endpoint, region)"
        )));
    }
    let mut opts = opts.clone();
    if let Some(e) = query.get("endpoint") {
        opts.endpoint = Some(e.clone());
    }
    if let Some(r) = query.get("region") {
        opts.region = Some(r.clone());
    }
    let bucket = parsed.host_str().unwrap_or_default().to_string();
    let prefix = parsed.path().trim_matches('/').to_string();
    let need_bucket = || {
        if bucket.is_empty() {
            Err(Error::usage(format!("sink URL {url:?} names no bucket")))
        } else {
            Ok(())
        }
    };
    match parsed.scheme() {
        "file" => {
            if parsed
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(Error::usage(format!(
                    "sink URL {url:?}: file URLs take an absolute path (file:///var/backups)"
                )));
            }
            Ok(Arc::new(LocalSink::new(parsed.path())?))
        }
        "s3" => {
            need_bucket()?;
            let cfg = S3Config::from_options(&bucket, &prefix, &opts, s3::Flavor::S3)?;
            Ok(Arc::new(cfg.build()?))
        }
        "spaces" => {
            need_bucket()?;
            let cfg = S3Config::from_options(&bucket, &prefix, &opts, s3::Flavor::Spaces)?;
            Ok(Arc::new(cfg.build()?))
        }
        "gs" | "gcs" => {
            need_bucket()?;
            let cfg = GcsConfig::from_options(&bucket, &prefix, &opts)?;
            Ok(Arc::new(cfg.build()?))
        }
        "memory" => Ok(Arc::new(ObjectStoreSink::memory())),
        other => Err(Error::usage(format!(
            "unknown sink scheme {other:?} in {url:?} (use file, s3, spaces, gs or memory)"
        ))),
    }
}

/// Background cleanups of dropped uploads still running (see
/// [`wait_for_cleanup`]).
static PENDING_CLEANUPS: AtomicUsize = AtomicUsize::new(0);

/// Run `cleanup` in the background on `handle`, counted for
/// [`wait_for_cleanup`] until it finishes or is cancelled.
pub(crate) fn spawn_cleanup(
    handle: &tokio::runtime::Handle,
    cleanup: impl std::future::Future<Output = ()> + Send + 'static,
) {
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            PENDING_CLEANUPS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    PENDING_CLEANUPS.fetch_add(1, Ordering::SeqCst);
    let counted = Counted;
    handle.spawn(async move {
        let _counted = counted;
        cleanup.await;
    });
}

/// Wait (up to `timeout`) for the cleanups of dropped uploads to finish: the
/// aborts of abandoned multipart uploads, and the removal of what a
/// cancelled completion may have made visible. A process that cancels a
/// backup and then exits calls this so the service keeps nothing behind.
pub async fn wait_for_cleanup(timeout: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while PENDING_CLEANUPS.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Join a sink-relative key onto a prefix.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{key}"),
    }
}

/// Reject keys that could escape the sink root or are otherwise malformed.
pub(crate) fn check_key(location: &str, key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.ends_with('/')
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(Error::sink_err(
            location,
            format!("invalid object key {key:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_file_urls_and_plain_paths_are_local() {
        let cwd = std::env::current_dir().unwrap();
        for url in ["file:backups", "backups", "./backups"] {
            let sink = sink_from_url(url, &SinkOptions::default()).unwrap();
            assert!(
                sink.location()
                    .starts_with(&format!("file://{}", cwd.display())),
                "{url}"
            );
            assert!(sink.location().ends_with("backups"), "{url}");
        }
    }

    #[test]
    fn unknown_scheme_is_a_usage_error() {
        let err = sink_from_url("ftp://host/x", &SinkOptions::default()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        assert!(err.to_string().contains("ftp"));
    }

    #[test]
    fn unknown_query_parameter_is_a_usage_error() {
        let err = sink_from_url("s3://b/p?colour=red", &SinkOptions::default()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
    }

    #[test]
    fn bucketless_url_is_a_usage_error() {
        let err = sink_from_url("s3:///p", &SinkOptions::default()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        for key in ["../x", "a/../b", "/abs", "a//b", "", "a/"] {
            assert!(check_key("file:///x", key).is_err(), "{key}");
        }
        assert!(check_key("file:///x", "app/backups/2026/data.zst").is_ok());
    }

    #[test]
    fn options_debug_hides_secrets() {
        let opts = SinkOptions {
            secret_access_key: Some("hunter2".into()),
            access_key_id: Some("AKIA".into()),
            ..Default::default()
        };
        let text = format!("{opts:?}");
        assert!(!text.contains("hunter2") && !text.contains("AKIA"));
    }
}
