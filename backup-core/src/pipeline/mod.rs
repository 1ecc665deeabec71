//! The streaming pipeline: snapshot → zstd (multithreaded) → SHA-256 →
//! multipart upload → verifiers → `manifest.json`, and back again for
//! restore and verification. One job per module:
//!
//! - [`backup`]: [`BackupJob`], from a source to a committed backup;
//! - [`commit`]: the idempotent manifest commit and the guard that removes
//!   what a dropped run uploaded before it;
//! - [`restore`]: [`RestoreJob`], from a stored backup into a target;
//! - [`verify`](mod@verify): [`VerifyJob`], and the download-and-check of a local copy
//!   that a backup's drill shares.
//!
//! The bytes themselves go through [`crate::codec`] both ways.
//!
//! Memory stays bounded whatever the database size: the compressor works on
//! 1 MiB reads, hands compressed 1 MiB chunks to the uploader over a channel
//! of four, and the upload keeps at most `upload_concurrency` parts of
//! `part_size` in flight. Dropping a job's future cancels it: the upload is
//! abandoned (never completed, so never visible), temporary files are
//! removed, and no manifest is written.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, Verdict};
use crate::sink::Sink;
use crate::verify::{Verifier, VerifyInput};

mod backup;
mod commit;
mod restore;
mod verify;

pub use crate::source::DEFAULT_LEVEL;
pub(crate) use backup::write_restore_guide;
pub use backup::{BackupJob, BackupReport};
pub use restore::{RestoreJob, RestoreReport};
pub use verify::{VerifyJob, VerifyReport};

/// Where a job reads the time: the system clock, or an injected one (tests
/// of retention and health drive dated backups this way).
pub type Clock = Arc<dyn Fn() -> chrono::DateTime<Utc> + Send + Sync>;

fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Best-effort removal of what a failed run wrote.
async fn delete_all(sink: &dyn Sink, keys: &[String]) {
    for k in keys {
        if let Err(e) = sink.delete(k).await {
            tracing::warn!(key = %k, error = %e.display_chain(), "could not remove an object of the failed backup; it has no manifest and is listed as incomplete");
        }
    }
}

/// Run verifiers concurrently; their verdicts in the given order.
async fn run_verifiers(
    verifiers: &[Arc<dyn Verifier>],
    manifest: &Manifest,
    sink: &dyn Sink,
    local_copy: Option<&Path>,
    keys: Option<&crate::crypt::Identities>,
) -> Result<Vec<Verdict>> {
    let input = VerifyInput::new(manifest, sink, local_copy).with_keys(keys);
    let futures = verifiers.iter().map(|v| {
        let input = &input;
        async move {
            let verdict = v.verify(input).await?;
            tracing::info!(
                verifier = %verdict.verifier,
                passed = verdict.passed,
                ms = verdict.duration_ms,
                detail = %verdict.detail,
                "verdict"
            );
            Ok::<_, Error>(verdict)
        }
    });
    futures::future::try_join_all(futures).await
}

fn failures_to_error(verdicts: &[Verdict]) -> Result<()> {
    let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.passed).collect();
    if failed.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = failed.iter().map(|v| v.verifier.as_str()).collect();
    Err(Error::verification(
        names.join(","),
        Verdict::failures(verdicts).join("; "),
    ))
}
