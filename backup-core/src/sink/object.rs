//! The one [`Sink`] implementation over `object_store`: S3, Spaces, GCS and
//! memory are constructors of it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, PutPayloadMut,
    UpdateVersion,
};
use tokio::task::JoinSet;

use super::uploads::XmlUploads;
use super::{
    ByteStream, DEFAULT_PART_SIZE, DEFAULT_UPLOAD_CONCURRENCY, ListResult, ObjectInfo,
    PendingUpload, PutMode, PutOptions, Sink, Upload, check_key, join_key, spawn_cleanup,
};
use crate::error::{Error, Result};

/// A sink backed by any [`ObjectStore`].
pub struct ObjectStoreSink {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    part_size: usize,
    concurrency: usize,
    pending: Pending,
    /// The store's own paged listing, where it has one (S3, Spaces, GCS):
    /// used with [`page_size`](Self::page_size) keys per request.
    paged: Option<Arc<dyn PaginatedListStore>>,
    /// Keys per listing request; `None`: the service's default.
    page_size: Option<usize>,
    versions: Versions,
    /// [`Sink::identity`], when the builder knows more than the location.
    identity: Option<String>,
}

/// Which of `object_store`'s version fields is the store's
/// [`ObjectInfo::version`] and the token of [`PutMode::Update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versions {
    /// The ETag: S3 (`If-Match`), memory.
    ETag,
    /// The generation: GCS (`x-goog-if-generation-match`).
    Generation,
}

/// How the store's pending (interrupted) multipart uploads are found.
pub(crate) enum Pending {
    /// The store keeps no state for an unfinished upload (memory: the parts
    /// live in the upload object itself).
    None,
    /// A store wrapped by [`ObjectStoreSink::new`]: nothing is known about it.
    Unknown,
    /// The S3-compatible XML API (S3, Spaces, GCS).
    Xml(XmlUploads),
}

impl fmt::Debug for ObjectStoreSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreSink")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreSink {
    /// Wrap a store. `location` is how the sink is named in logs and errors
    /// and must not contain credentials; `prefix` is prepended to every key.
    ///
    /// `object_store` cannot list a store's open multipart uploads, so a sink
    /// made this way answers [`Sink::list_pending`] with an error; the
    /// constructors for S3, Spaces, GCS ([`S3Config`](super::S3Config),
    /// [`GcsConfig`](super::GcsConfig)) and [`memory`](Self::memory) know how.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, location: impl Into<String>) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            location: location.into(),
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            pending: Pending::Unknown,
            paged: None,
            page_size: None,
            versions: Versions::ETag,
            identity: None,
        }
    }

    /// Tell this store apart from others at the same location by
    /// `identity` (no credentials): see [`Sink::identity`].
    #[must_use]
    pub fn with_identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// An in-memory sink, for tests and examples.
    pub fn memory() -> Self {
        let mut sink = Self::new(
            Arc::new(object_store::memory::InMemory::new()),
            "",
            "memory://",
        );
        sink.pending = Pending::None;
        sink
    }

    pub(crate) fn with_pending(mut self, pending: Pending) -> Self {
        self.pending = pending;
        self
    }

    /// List through the store's paged listing, `page_size` keys per request
    /// (`None`: the service's default).
    pub(crate) fn with_paged_listing(
        mut self,
        paged: Arc<dyn PaginatedListStore>,
        page_size: Option<usize>,
    ) -> Self {
        self.paged = Some(paged);
        self.page_size = page_size;
        self
    }

    pub(crate) fn with_versions(mut self, versions: Versions) -> Self {
        self.versions = versions;
        self
    }

    fn info(&self, meta: ObjectMeta) -> ObjectInfo {
        let version = match self.versions {
            Versions::ETag => meta.e_tag,
            Versions::Generation => meta.version,
        };
        ObjectInfo {
            key: self.strip(meta.location.as_ref()),
            size: meta.size,
            last_modified: meta.last_modified,
            version,
        }
    }

    /// The full, directory-like prefix of a sink-relative one: `None` for
    /// the root, else `<prefix>/…` without trailing slash.
    fn list_path(&self, prefix: &str) -> Option<Path> {
        let full = join_key(&self.prefix, prefix.trim_matches('/'));
        (!full.is_empty()).then(|| Path::from(full.as_str()))
    }

    /// One page of the paged listing below `path` (with a `/` appended, as
    /// `ObjectStore::list` does), continuing from `token`.
    async fn list_page(
        &self,
        paged: &dyn PaginatedListStore,
        path: Option<&Path>,
        delimiter: bool,
        token: Option<String>,
        what: &str,
    ) -> Result<(object_store::ListResult, Option<String>)> {
        let prefix = path.map(|p| format!("{}/", p.as_ref()));
        let opts = PaginatedListOptions {
            delimiter: delimiter.then_some(std::borrow::Cow::Borrowed("/")),
            max_keys: self.page_size,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = paged
            .list_paginated(prefix.as_deref(), opts)
            .await
            .map_err(|e| map_err(&self.location, what, e))?;
        let next = page.page_token.filter(|t| !t.is_empty());
        if next.is_some() && next == token {
            // The same token again would loop forever; stopping would pass a
            // partial listing off as the whole.
            return Err(Error::sink_err(
                &self.location,
                format!(
                    "cannot list {what:?}: the service answered a page with the token it was asked for"
                ),
            ));
        }
        Ok((page.result, next))
    }

    /// Set the multipart part size (at least 5 MiB) and how many parts are
    /// uploaded at once.
    pub fn with_upload_tuning(mut self, part_size: usize, concurrency: usize) -> Self {
        self.part_size = part_size.max(super::MIN_PART_SIZE);
        self.concurrency = concurrency.max(1);
        self
    }

    fn path(&self, key: &str) -> Result<Path> {
        check_key(&self.location, key)?;
        Path::parse(join_key(&self.prefix, key)).map_err(|e| {
            Error::sink_err(&self.location, format!("invalid object key {key:?}: {e}"))
        })
    }

    fn strip(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(&self.prefix)
                .map(|s| s.trim_start_matches('/').to_string())
                .unwrap_or_else(|| full.to_string())
        }
    }
}

/// Map an `object_store` error to ours, with a short message a person can act
/// on and the original kept as the cause.
pub(crate) fn map_err(location: &str, key: &str, err: object_store::Error) -> Error {
    use object_store::Error as E;
    let (message, retryable) = match &err {
        E::NotFound { .. } => {
            return Error::NotFound {
                location: location.to_string(),
                key: key.to_string(),
            };
        }
        E::AlreadyExists { .. } | E::Precondition { .. } => {
            return Error::AlreadyExists {
                location: location.to_string(),
                key: key.to_string(),
            };
        }
        E::PermissionDenied { .. } => (
            "access denied (403): the credentials lack permission for this bucket or prefix"
                .to_string(),
            false,
        ),
        E::Unauthenticated { .. } => (
            "authentication failed (401): check the credentials".to_string(),
            false,
        ),
        _ => classify_generic(&err.to_string()),
    };
    Error::Sink {
        location: location.to_string(),
        message,
        retryable,
        source: Some(Box::new(err)),
    }
}

/// `object_store` reports most service errors as `Generic` with the HTTP
/// status and the service's error code in the text.
fn classify_generic(text: &str) -> (String, bool) {
    let has = |s: &str| text.contains(s);
    if has("NoSuchBucket") || has("bucket does not exist") || has("The specified bucket") {
        ("bucket does not exist".into(), false)
    } else if has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
        || has("AccessDenied")
        || has("403 Forbidden")
        || has("status 403")
    {
        ("access denied: check the credentials (InvalidAccessKeyId, SignatureDoesNotMatch or AccessDenied)".into(), false)
    } else if has("401 Unauthorized") || has("status code: 401") {
        (
            "authentication failed (401): check the credentials".into(),
            false,
        )
    } else if has("error sending request")
        || has("connection")
        || has("Connection")
        || has("timed out")
    {
        ("cannot reach the storage service".into(), true)
    } else if has(" 5") && (has("500") || has("502") || has("503") || has("504")) {
        ("the storage service failed (5xx)".into(), true)
    } else {
        ("request failed".into(), false)
    }
}

#[async_trait]
impl Sink for ObjectStoreSink {
    fn location(&self) -> &str {
        &self.location
    }

    fn identity(&self) -> String {
        self.identity
            .clone()
            .unwrap_or_else(|| self.location.clone())
    }

    async fn check(&self) -> Result<()> {
        // A delimited listing of the root is the cheapest request that proves
        // the bucket exists and the credentials may read it.
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        self.store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map(|_| ())
            .map_err(|e| map_err(&self.location, "", e))
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<()> {
        self.put_versioned(key, data, opts).await.map(|_| ())
    }

    async fn put_versioned(
        &self,
        key: &str,
        data: Bytes,
        opts: PutOptions,
    ) -> Result<Option<String>> {
        use object_store::PutMode as Mode;
        let path = self.path(key)?;
        let update = matches!(opts.mode, PutMode::Update { .. });
        let mode = match opts.mode {
            PutMode::Create => Mode::Create,
            PutMode::Overwrite => Mode::Overwrite,
            PutMode::Update { version } => Mode::Update(match self.versions {
                Versions::ETag => UpdateVersion {
                    e_tag: Some(version),
                    version: None,
                },
                Versions::Generation => UpdateVersion {
                    e_tag: None,
                    version: Some(version),
                },
            }),
        };
        let put_opts = object_store::PutOptions::from(mode);
        match self
            .store
            .put_opts(&path, PutPayload::from(data), put_opts)
            .await
        {
            Ok(r) => Ok(match self.versions {
                Versions::ETag => r.e_tag,
                Versions::Generation => r.version,
            }),
            // S3 answers an `If-Match` on a missing key with 404; GCS and
            // memory with a failed precondition: the same thing here.
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. }
                | object_store::Error::AlreadyExists { .. },
            ) if update => Err(Error::Precondition {
                location: self.location.clone(),
                key: key.to_string(),
            }),
            Err(e) => Err(map_err(&self.location, key, e)),
        }
    }

    async fn upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let path = self.path(key)?;
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| map_err(&self.location, key, e))?;
        Ok(Box::new(ObjectUpload {
            upload: Some(upload),
            buffer: PutPayloadMut::new(),
            parts: JoinSet::new(),
            completing: false,
            store: self.store.clone(),
            path,
            part_size: self.part_size,
            concurrency: self.concurrency,
            location: self.location.clone(),
            key: key.to_string(),
            sent: 0,
        }))
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        let path = self.path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| map_err(&self.location, key, e))?;
        let location = self.location.clone();
        let key = key.to_string();
        Ok(result
            .into_stream()
            .map_err(move |e| map_err(&location, &key, e))
            .boxed())
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let path = self.path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| map_err(&self.location, key, e))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            ..self.info(meta)
        })
    }

    fn list_stream(&self, prefix: &str) -> BoxStream<'_, Result<ObjectInfo>> {
        let what = prefix.to_string();
        let path = self.list_path(prefix);
        let Some(paged) = self.paged.clone() else {
            return self
                .store
                .list(path.as_ref())
                .map(move |r| match r {
                    Ok(meta) => Ok(self.info(meta)),
                    Err(e) => Err(map_err(&self.location, &what, e)),
                })
                .boxed();
        };
        // `Some(token)`: a page to fetch (the first has no token); `None`: done.
        futures::stream::try_unfold(Some(None), move |state: Option<Option<String>>| {
            let (paged, path, what) = (paged.clone(), path.clone(), what.clone());
            async move {
                let Some(token) = state else {
                    return Ok::<_, Error>(None);
                };
                let (page, next) = self
                    .list_page(&*paged, path.as_ref(), false, token, &what)
                    .await?;
                let infos: Vec<_> = page.objects.into_iter().map(|m| self.info(m)).collect();
                Ok(Some((infos, next.map(Some))))
            }
        })
        .map_ok(|infos| futures::stream::iter(infos.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        let path = self.list_path(prefix);
        let mut common = std::collections::BTreeSet::new();
        let mut objects = Vec::new();
        if let Some(paged) = &self.paged {
            let mut token = None;
            loop {
                let (page, next) = self
                    .list_page(&**paged, path.as_ref(), true, token, prefix)
                    .await?;
                common.extend(page.common_prefixes);
                objects.extend(page.objects);
                match next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
        } else {
            let result = self
                .store
                .list_with_delimiter(path.as_ref())
                .await
                .map_err(|e| map_err(&self.location, prefix, e))?;
            common.extend(result.common_prefixes);
            objects = result.objects;
        }
        let mut objects: Vec<_> = objects.into_iter().map(|m| self.info(m)).collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let mut common_prefixes: Vec<_> = common
            .into_iter()
            .map(|p| self.strip(p.as_ref().trim_end_matches('/')))
            .collect();
        common_prefixes.sort();
        common_prefixes.dedup();
        Ok(ListResult {
            common_prefixes,
            objects,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(&self.location, key, e)),
        }
    }

    async fn list_pending(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let xml = match &self.pending {
            Pending::None => return Ok(Vec::new()),
            Pending::Unknown => return Err(unknown_pending(&self.location)),
            Pending::Xml(xml) => xml,
        };
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(&self.location, prefix)?;
        }
        // A directory-like prefix, as for `list`: `a` must not match `ab/…`.
        let mut full = join_key(&self.prefix, prefix);
        if !full.is_empty() {
            full.push('/');
        }
        Ok(xml
            .list(&full)
            .await?
            .into_iter()
            .map(|u| PendingUpload {
                key: self.strip(&u.key),
                id: u.upload_id,
                started: u.initiated,
            })
            .collect())
    }

    async fn lifecycle_rules(&self) -> Result<Option<Vec<super::LifecycleRule>>> {
        let Pending::Xml(xml) = &self.pending else {
            return Ok(None);
        };
        let Some(rules) = xml.lifecycle().await? else {
            return Ok(None);
        };
        // Bucket-relative prefixes to sink-relative ones, keeping the rules
        // that can reach this sink's keys.
        let base = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix.trim_end_matches('/'))
        };
        Ok(Some(
            rules
                .into_iter()
                .filter_map(|mut r| {
                    if r.prefix.starts_with(&base) {
                        r.prefix = r.prefix[base.len()..].to_string();
                        Some(r)
                    } else if base.starts_with(&r.prefix) {
                        r.prefix = String::new();
                        Some(r)
                    } else {
                        None
                    }
                })
                .collect(),
        ))
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        let xml = match &self.pending {
            Pending::None => return Ok(()),
            Pending::Unknown => return Err(unknown_pending(&self.location)),
            Pending::Xml(xml) => xml,
        };
        let path = self.path(&upload.key)?;
        if upload.id.is_empty() {
            return Err(Error::sink_err(
                &self.location,
                format!("pending upload of {:?} has no upload id", upload.key),
            ));
        }
        xml.abort(path.as_ref(), &upload.id).await
    }
}

fn unknown_pending(location: &str) -> Error {
    Error::sink_err(
        location,
        "cannot list or remove interrupted uploads: this store was wrapped without a way to reach its multipart uploads",
    )
}

/// A streaming upload over `object_store`'s [`MultipartUpload`]: parts of
/// `part_size` bytes, at most `concurrency` of them in flight (so memory
/// stays below `(concurrency + 1) × part_size` plus one written chunk).
///
/// Unlike `object_store::WriteMultipart`, it keeps the multipart upload until
/// the completion has answered, so a `complete()` that fails or is dropped
/// mid-request can still abort the upload and delete the key.
struct ObjectUpload {
    /// `None` once completed, aborted or cleaned up.
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: PutPayloadMut,
    parts: JoinSet<object_store::Result<()>>,
    /// The completion request has been sent: from then on the object may
    /// exist, and cleaning up must delete the key too.
    completing: bool,
    store: Arc<dyn ObjectStore>,
    path: Path,
    part_size: usize,
    concurrency: usize,
    location: String,
    key: String,
    /// Bytes handed to parts so far.
    sent: u64,
}

impl ObjectUpload {
    fn finished(&self) -> Error {
        Error::sink_err(&self.location, "upload already finished")
    }

    /// Wait until at most `max_in_flight` parts are in flight (`0`: all
    /// done); the first failed part fails the upload.
    async fn wait_for_parts(&mut self, max_in_flight: usize) -> Result<()> {
        while self.parts.len() > max_in_flight {
            match self.parts.join_next().await {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => return Err(map_err(&self.location, &self.key, e)),
                Some(Err(e)) => {
                    return Err(Error::sink_err(
                        &self.location,
                        format!("part upload task failed: {e}"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn send_part(&mut self, part: PutPayload) -> Result<()> {
        let Some(upload) = self.upload.as_mut() else {
            return Err(self.finished());
        };
        self.sent += part.content_length() as u64;
        // Spawned, so parts upload while the caller produces the next ones.
        self.parts.spawn(upload.put_part(part));
        Ok(())
    }

    /// Abort the multipart upload and, once a completion was sent, delete
    /// the key. Errors are ignored: this runs after a failure and what it
    /// cannot remove is found later through `list_pending` or the catalog.
    async fn clean_up(&mut self) {
        self.parts.shutdown().await;
        if let Some(upload) = self.upload.as_mut() {
            let _ = upload.abort().await;
            if self.completing {
                let _ = self.store.delete(&self.path).await;
            }
        }
        self.upload = None;
    }
}

#[async_trait]
impl Upload for ObjectUpload {
    async fn write(&mut self, mut data: Bytes) -> Result<()> {
        if self.upload.is_none() {
            return Err(self.finished());
        }
        while !data.is_empty() {
            let room = self.part_size - self.buffer.content_length();
            if data.len() < room {
                self.buffer.push(data);
                break;
            }
            self.buffer.push(data.split_to(room));
            let part = std::mem::take(&mut self.buffer).freeze();
            let limit = self.concurrency - 1;
            self.wait_for_parts(limit).await?;
            self.send_part(part)?;
        }
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<()> {
        if self.upload.is_none() {
            return Err(self.finished());
        }
        if self.buffer.content_length() > 0 {
            let part = std::mem::take(&mut self.buffer).freeze();
            self.send_part(part)?;
        }
        if let Err(e) = self.wait_for_parts(0).await {
            self.clean_up().await;
            return Err(e);
        }
        // If this future is dropped from here on, `Drop` aborts the upload
        // and deletes the key in the background.
        self.completing = true;
        let upload = self.upload.as_mut().expect("checked above");
        match upload.complete().await {
            Ok(_) => {
                self.upload = None;
                Ok(())
            }
            Err(e) => {
                let err = map_err(&self.location, &self.key, e);
                // The completion may have landed with its answer lost (a
                // dropped connection, a 5xx, a retry that then finds no
                // upload). The key is new and ours alone: holding every byte
                // sent means it did. (The checksum read-back that follows
                // proves the bytes before anything is committed.)
                if let Ok(meta) = self.store.head(&self.path).await
                    && meta.size == self.sent
                {
                    tracing::warn!(key = %self.key, error = %err.display_chain(), "the upload's completion reported a failure, but the object is stored with every byte: completed");
                    self.upload = None;
                    return Ok(());
                }
                self.clean_up().await;
                Err(err)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.parts.shutdown().await;
        let Some(mut upload) = self.upload.take() else {
            return Ok(());
        };
        upload
            .abort()
            .await
            .map_err(|e| map_err(&self.location, &self.key, e))
    }
}

impl Drop for ObjectUpload {
    /// A dropped upload (a cancelled run, or a `complete()` whose future was
    /// dropped mid-request) is cleaned up in the background: the multipart
    /// upload is aborted so the service keeps no parts, and if the
    /// completion was already sent, the key is deleted (no manifest can
    /// point at it yet). [`wait_for_cleanup`](super::wait_for_cleanup) waits
    /// for it.
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return; // no runtime to run it: `list_pending` finds the upload
        };
        let mut parts = std::mem::take(&mut self.parts);
        let delete = self
            .completing
            .then(|| (self.store.clone(), self.path.clone()));
        spawn_cleanup(&handle, async move {
            // Parts still in flight must not land after the abort.
            parts.shutdown().await;
            let _ = upload.abort().await;
            if let Some((store, path)) = delete {
                let _ = store.delete(&path).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_read_from_the_status_not_from_keys_or_times() {
        // A backup started at 04:01 has `T0401` in its keys: that is no 401.
        let text = "Error performing PUT http://127.0.0.1:37253/b/app/backups/2026/12/03/20261203T040146Z-426e/manifest.json in 250ms, after 2 retries - Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown</Code></Error>";
        assert_eq!(
            classify_generic(text),
            ("the storage service failed (5xx)".to_string(), true)
        );
        let text = "Error performing GET http://h/b/k in 1ms - Server returned non-2xx status code: 401 Unauthorized: ";
        assert!(!classify_generic(text).1);
        assert!(classify_generic(text).0.contains("401"));
    }
}
