//! The commit: `manifest.json` written create-only and idempotently, and
//! the guard that removes a dropped run's uploaded objects before it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::delete_all;
use crate::error::Error;
use crate::sink::{PutOptions, Sink};

/// Objects of a backup that are visible but not yet committed: deleted in
/// the background if the run is dropped before [`disarm`](Self::disarm)
/// (counted for [`crate::sink::wait_for_cleanup`]).
pub(super) struct Uncommitted {
    sink: Arc<dyn Sink>,
    pub(super) keys: Vec<String>,
    armed: bool,
}

impl Uncommitted {
    pub(super) fn new(sink: Arc<dyn Sink>) -> Self {
        Self {
            sink,
            keys: Vec::new(),
            armed: true,
        }
    }

    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        if !self.armed || self.keys.is_empty() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return; // listed as incomplete; retention removes it
        };
        let (sink, keys) = (self.sink.clone(), std::mem::take(&mut self.keys));
        crate::sink::spawn_cleanup(&handle, async move {
            delete_all(&*sink, &keys).await;
        });
    }
}

/// Why a manifest commit failed.
pub(super) enum CommitError {
    /// The manifest is certainly not in the sink: the backup's other objects
    /// may be deleted.
    NotWritten(Error),
    /// The manifest may be in the sink (or another one is at its key): its
    /// data must never be deleted.
    Unknown(Error),
}

/// Write `manifest.json`, the commit marker, with create-only semantics, and
/// make the commit idempotent.
///
/// A request can land while its response is lost (a 5xx or a dropped
/// connection after the write). The retry, or our own re-check, then finds
/// the key taken. So on any failure the manifest is read back: the same
/// bytes mean the commit happened; no object means it did not; anything
/// else (another manifest, or a sink that cannot be read) means its data
/// must stay where it is.
pub(super) async fn commit_manifest(
    sink: &dyn Sink,
    key: &str,
    body: Vec<u8>,
) -> std::result::Result<(), CommitError> {
    use crate::sink::SinkExt;
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        let err = match sink
            .put(key, Bytes::from(body.clone()), PutOptions::create_only())
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match sink.get_bytes(key).await {
            Ok(stored) if stored[..] == body[..] => {
                tracing::warn!(key, error = %err.display_chain(), "the manifest write reported a failure but the manifest is stored, byte for byte: the backup is committed");
                return Ok(());
            }
            Ok(_) => {
                return Err(CommitError::Unknown(Error::sink_err(
                    sink.location(),
                    format!(
                        "another manifest is already stored at {key}; nothing of this backup was deleted"
                    ),
                )));
            }
            // Not there now: a transient failure is worth another try (the
            // data is already stored and proven).
            Err(Error::NotFound { .. }) if err.is_retryable() && attempt < ATTEMPTS => {
                tracing::warn!(key, attempt, error = %err.display_chain(), "the manifest was not written; trying again");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                attempt += 1;
            }
            // A definite refusal (403, a bad request): it never lands.
            Err(Error::NotFound { .. }) if !err.is_retryable() => {
                return Err(CommitError::NotWritten(err));
            }
            // A timeout, a dropped connection or a 5xx: the write may still
            // land after our read. Its data must stay; without a manifest
            // it is incomplete and retention removes it after the grace.
            Err(Error::NotFound { .. }) => return Err(CommitError::Unknown(err)),
            Err(read_err) => {
                tracing::warn!(key, error = %read_err.display_chain(), "cannot read the manifest back after a failed write");
                return Err(CommitError::Unknown(err));
            }
        }
    }
}
