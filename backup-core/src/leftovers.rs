//! What interrupted writes left behind for one source: open multipart
//! uploads and hidden partial files (see [`PendingUpload`]). They hold
//! storage but no object, so neither the catalog nor retention sees them.
//!
//! [`find`] lists them under `<source>/` and marks the ones older than a
//! grace period as stale; [`remove`] removes the stale ones. An upload within
//! the grace period may belong to a run that is still going (on this host or
//! another), so it is reported and left alone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sink::{PendingUpload, Sink, check_key};

/// One pending upload of a source, as `lifeboat list --json` shows it under
/// `"leftovers"`: `{"key", "id", "started", "stale"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    /// The interrupted upload.
    #[serde(flatten)]
    pub upload: PendingUpload,
    /// Started longer ago than the grace period: no live run can still own
    /// it, and [`remove`] removes it.
    pub stale: bool,
}

/// The pending uploads under `<source_name>/`, oldest first, each marked
/// stale when it started more than `grace` before `now`.
///
/// # Errors
/// [`Error::Usage`] for a source name that is not one key segment;
/// [`Error::Sink`] if the sink cannot list them (never an empty list then).
pub async fn find(
    sink: &dyn Sink,
    source_name: &str,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Leftover>> {
    if source_name.contains('/') || check_key(sink.location(), source_name).is_err() {
        return Err(Error::usage(format!("invalid source name {source_name:?}")));
    }
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut found: Vec<Leftover> = sink
        .list_pending(crate::layout::source_prefix(source_name))
        .await?
        .into_iter()
        .map(|upload| Leftover {
            stale: now.signed_duration_since(upload.started) > grace,
            upload,
        })
        .collect();
    found.sort_by(|a, b| {
        (a.upload.started, &a.upload.key, &a.upload.id).cmp(&(
            b.upload.started,
            &b.upload.key,
            &b.upload.id,
        ))
    });
    Ok(found)
}

/// Remove the stale ones of `leftovers` (those within the grace period stay)
/// and return how many were removed. Each is tried even if an earlier one
/// failed.
///
/// # Errors
/// The first failure, after trying them all.
pub async fn remove(sink: &dyn Sink, leftovers: &[Leftover]) -> Result<usize> {
    let mut removed = 0;
    let mut first_error = None;
    for l in leftovers.iter().filter(|l| l.stale) {
        match sink.abort_pending(&l.upload).await {
            Ok(()) => {
                tracing::info!(key = %l.upload.key, started = %l.upload.started, "removed an interrupted upload");
                removed += 1;
            }
            Err(e) => {
                tracing::warn!(key = %l.upload.key, error = %e.display_chain(), "could not remove an interrupted upload");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalSink;
    use crate::sink::{ObjectStoreSink, SinkExt};
    use bytes::Bytes;

    async fn leave_partial(sink: &LocalSink, key: &str) {
        let mut up = sink.upload(key).await.unwrap();
        up.write(Bytes::from_static(b"half a backup"))
            .await
            .unwrap();
        std::mem::forget(up); // a killed writer runs no cleanup
    }

    #[tokio::test]
    async fn only_stale_leftovers_of_the_source_are_found_stale_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(dir.path()).unwrap();
        leave_partial(&sink, "app/backups/2026/01/02/id1/data.db.zst").await;
        leave_partial(&sink, "app/drills/x.json").await;
        leave_partial(&sink, "application/backups/other").await;
        sink.put_streamed("app/backups/done/data", Bytes::from_static(b"ok"))
            .await
            .unwrap();

        let now = Utc::now();
        let fresh = find(&sink, "app", Duration::from_secs(3600), now)
            .await
            .unwrap();
        let mut keys: Vec<_> = fresh.iter().map(|l| l.upload.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "app/backups/2026/01/02/id1/data.db.zst",
                "app/drills/x.json"
            ],
            "everything under app/, nothing of application/ nor visible objects"
        );
        assert!(fresh.iter().all(|l| !l.stale), "within the grace period");
        assert_eq!(remove(&sink, &fresh).await.unwrap(), 0);
        assert_eq!(sink.list_pending("app").await.unwrap().len(), 2);

        let later = now + chrono::Duration::hours(2);
        let stale = find(&sink, "app", Duration::from_secs(3600), later)
            .await
            .unwrap();
        assert!(stale.iter().all(|l| l.stale));
        assert_eq!(remove(&sink, &stale).await.unwrap(), 2);
        assert!(sink.list_pending("app").await.unwrap().is_empty());
        assert_eq!(sink.list_pending("application").await.unwrap().len(), 1);
        assert_eq!(
            sink.get_bytes("app/backups/done/data").await.unwrap(),
            "ok",
            "a visible object is never touched"
        );
        // The directories only the partial files used are gone too.
        assert!(!dir.path().join("app/backups/2026").exists());
        assert!(!dir.path().join("app/drills").exists());
    }

    #[tokio::test]
    async fn leftovers_serialize_flat_for_list_json() {
        let started = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let l = Leftover {
            upload: PendingUpload {
                key: "app/backups/x/data.db.zst".into(),
                id: "upload-1".into(),
                started,
            },
            stale: true,
        };
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({
                "key": "app/backups/x/data.db.zst",
                "id": "upload-1",
                "started": "2026-01-02T03:04:05Z",
                "stale": true
            })
        );
    }

    #[tokio::test]
    async fn a_bad_source_name_or_a_failed_listing_is_an_error() {
        let sink = ObjectStoreSink::memory();
        for name in ["", "a/b", "..", "/x"] {
            let err = find(&sink, name, Duration::ZERO, Utc::now())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Usage, "{name:?}");
        }
        // A store nobody told us how to list: an error, not "no leftovers".
        let unknown = ObjectStoreSink::new(
            std::sync::Arc::new(object_store::memory::InMemory::new()),
            "",
            "custom://",
        );
        let err = find(&unknown, "app", Duration::ZERO, Utc::now())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Sink);
    }
}
