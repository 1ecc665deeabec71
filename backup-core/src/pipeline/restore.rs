//! [`RestoreJob`]: find a backup, stream it through the verifying read
//! chain into a [`RestoreTarget`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::{Catalog, Selector};
use crate::codec::artifact_reader;
use crate::error::{Error, Result};
use crate::lock::{self, LockMode};
use crate::manifest::{Manifest, Verdict};
use crate::progress::{Phase, Progress, ProgressHandle};
use crate::sink::Sink;
use crate::source::{RestoreOptions, RestoreOutcome, RestoreTarget};

/// A restore of one backup into a target database.
#[derive(Clone)]
pub struct RestoreJob {
    sink: Arc<dyn Sink>,
    target: Arc<dyn RestoreTarget>,
    source_name: Option<String>,
    selector: Selector,
    force: bool,
    lock_mode: LockMode,
    lock_dir: Option<PathBuf>,
    progress: ProgressHandle,
    keys: Option<crate::crypt::Identities>,
}

impl std::fmt::Debug for RestoreJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreJob")
            .field("sink", &self.sink.location())
            .field("target", &self.target.target_location())
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The backup restored.
    pub manifest: Manifest,
    /// What the target now holds.
    pub outcome: RestoreOutcome,
    /// Wall time.
    pub duration: Duration,
}

impl RestoreJob {
    /// Restore the newest backup in `sink` into `target`.
    pub fn new(sink: Arc<dyn Sink>, target: Arc<dyn RestoreTarget>) -> Self {
        Self {
            sink,
            target,
            source_name: None,
            selector: Selector::Latest,
            force: false,
            lock_mode: LockMode::FailFast,
            lock_dir: None,
            progress: ProgressHandle::default(),
            keys: None,
        }
    }

    /// Which source's backups (needed when the sink holds several).
    pub fn source_name(mut self, name: impl Into<String>) -> Self {
        self.source_name = Some(name.into());
        self
    }

    /// Which backup (default: the latest).
    pub fn select(mut self, selector: Selector) -> Self {
        self.selector = selector;
        self
    }

    /// Replace an existing target database.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// What to do when another run holds the target's lock.
    pub fn lock_mode(mut self, mode: LockMode) -> Self {
        self.lock_mode = mode;
        self
    }

    /// Directory for lock files.
    pub fn lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    /// Receive progress.
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = ProgressHandle::new(p);
        self
    }

    /// Decrypt an encrypted backup with these identities.
    pub fn identities(mut self, keys: crate::crypt::Identities) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Find the backup, download, check and restore it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such backup; [`Error::Restore`]
    /// when the target exists without `force`, the data is corrupt, or the
    /// restored database does not match the fingerprint.
    pub async fn run(self) -> Result<RestoreReport> {
        let t0 = Instant::now();
        let lock_dir = self.lock_dir.clone().unwrap_or_else(lock::default_lock_dir);
        let _lock = lock::acquire(
            &lock::lock_path(&lock_dir, &self.target.target_lock_key()),
            self.lock_mode,
        )
        .await?;
        crate::tempdir::sweep(&std::env::temp_dir());
        let entry = Catalog::new(self.sink.clone())
            .find_for_restore(self.source_name.as_deref(), &self.selector)
            .await?;
        let manifest = entry.manifest;
        // Hosts sharing the sink: a prune elsewhere keeps what this reads.
        let mark = crate::lease::ReaderMark::place(
            self.sink.clone(),
            &manifest.source.name,
            &manifest.backup_id,
            "restore",
        )
        .await;
        if !manifest.verified() {
            tracing::warn!(
                backup_id = %manifest.backup_id,
                failed = %Verdict::failures(&manifest.verdicts).join("; "),
                "this backup is not verified: it may not restore cleanly (--partial restores what loads)"
            );
        }
        if manifest.source.kind != self.target.target_kind() {
            return Err(Error::usage(format!(
                "backup {} is of a {} database; the target {} is {}",
                manifest.backup_id,
                manifest.source.kind,
                self.target.target_location(),
                self.target.target_kind()
            )));
        }
        let opts = RestoreOptions::force(self.force);
        self.target.check_target(&opts).await?;
        tracing::info!(backup_id = %manifest.backup_id, target = %self.target.target_location(), "restore started");
        let reader = artifact_reader(
            &*self.sink,
            &manifest,
            self.progress.clone(),
            self.keys.as_ref(),
        )
        .await?;
        let outcome = self.target.restore(reader, &manifest, &opts).await;
        self.progress.finish(Phase::Download);
        if let Some(m) = mark {
            m.remove().await;
        }
        Ok(RestoreReport {
            manifest,
            outcome: outcome?,
            duration: t0.elapsed(),
        })
    }
}
