//! The one [`Sink`] implementation over `object_store`: S3, Spaces, GCS and
//! memory are constructors of it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, WriteMultipart};

use super::uploads::XmlUploads;
use super::{
    ByteStream, DEFAULT_PART_SIZE, DEFAULT_UPLOAD_CONCURRENCY, ObjectInfo, PendingUpload,
    PutOptions, Sink, Upload, check_key, join_key,
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
        }
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
    } else if has("401") {
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
        let path = self.path(key)?;
        let mut put_opts = object_store::PutOptions::default();
        if opts.create_only {
            put_opts.mode = PutMode::Create;
        }
        self.store
            .put_opts(&path, PutPayload::from(data), put_opts)
            .await
            .map(|_| ())
            .map_err(|e| map_err(&self.location, key, e))
    }

    async fn upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let path = self.path(key)?;
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| map_err(&self.location, key, e))?;
        Ok(Box::new(ObjectUpload {
            writer: Some(WriteMultipart::new_with_chunk_size(upload, self.part_size)),
            concurrency: self.concurrency,
            location: self.location.clone(),
            key: key.to_string(),
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
            size: meta.size,
            last_modified: meta.last_modified,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let full = join_key(&self.prefix, prefix.trim_matches('/'));
        let path = (!full.is_empty()).then(|| Path::from(full.as_str()));
        let metas: Vec<_> = self
            .store
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(|e| map_err(&self.location, prefix, e))?;
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: self.strip(m.location.as_ref()),
                size: m.size,
                last_modified: m.last_modified,
            })
            .collect())
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

struct ObjectUpload {
    /// `None` once completed or aborted.
    writer: Option<WriteMultipart>,
    concurrency: usize,
    location: String,
    key: String,
}

static PENDING_ABORTS: AtomicUsize = AtomicUsize::new(0);

/// Wait (up to `timeout`) for the aborts of dropped uploads to reach the
/// service. A process that cancels a backup and then exits calls this so the
/// service does not keep the abandoned parts.
pub async fn wait_for_cleanup(timeout: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while PENDING_ABORTS.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl ObjectUpload {
    fn writer(&mut self) -> Result<&mut WriteMultipart> {
        self.writer
            .as_mut()
            .ok_or_else(|| Error::sink_err(&self.location, "upload already finished"))
    }
}

#[async_trait]
impl Upload for ObjectUpload {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let concurrency = self.concurrency;
        let result = self.writer()?.wait_for_capacity(concurrency).await;
        result.map_err(|e| map_err(&self.location, &self.key, e))?;
        self.writer()?.put(data);
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<()> {
        let writer = self.writer.take();
        let Some(writer) = writer else {
            return Err(Error::sink_err(&self.location, "upload already finished"));
        };
        writer
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| map_err(&self.location, &self.key, e))
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        writer
            .abort()
            .await
            .map_err(|e| map_err(&self.location, &self.key, e))
    }
}

impl Drop for ObjectUpload {
    /// A dropped upload (a cancelled run) is aborted in the background, so
    /// the service keeps no orphaned parts. Nothing was visible either way.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            PENDING_ABORTS.fetch_add(1, Ordering::SeqCst);
            handle.spawn(async move {
                let _ = writer.abort().await;
                PENDING_ABORTS.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}
