//! [`BackupJob`]: snapshot, stream through the codec into the sink, check,
//! optionally drill, then commit the manifest.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::commit::{CommitError, Uncommitted, commit_manifest};
use super::verify::verify_local;
use super::{Clock, delete_all, failures_to_error, run_verifiers, system_clock};
use crate::codec::{self, Compress, stream_to_upload};
use crate::error::{Error, Result};
use crate::layout;
use crate::lock::{self, LockMode};
use crate::manifest::{
    Artifact, AttachmentInfo, Compression, MANIFEST_VERSION, Manifest, SourceInfo, ToolInfo,
    check_source_name, new_backup_id,
};
use crate::progress::{Phase, Progress, ProgressHandle};
use crate::sink::{PutOptions, Sink};
use crate::source::{DumpOptions, Source};
use crate::verify::{self, Verifier};

fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// What a finished backup produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupReport {
    /// The manifest as written.
    pub manifest: Manifest,
    /// The backup's directory in the sink.
    pub dir: String,
    /// The sink's location (safe to log).
    pub sink_location: String,
    /// Wall time of the whole run.
    pub duration: Duration,
    /// Why the restore drill asked for with [`BackupJob::drill`] could not
    /// run (the backup was committed as checked), if it could not.
    pub drill_error: Option<String>,
}

/// A backup of one source to one sink. Build it, then [`run`](Self::run) it
/// inside any tokio runtime.
///
/// ```no_run
/// # async fn demo() -> backup_core::Result<()> {
/// use backup_core::{BackupJob, sink_from_url, source_from_url, SinkOptions};
/// let source = source_from_url("sqlite:///srv/app.db")?;
/// let sink = sink_from_url("file:///var/backups/app", &SinkOptions::default())?;
/// let report = BackupJob::new(source, sink).name("app").run().await?;
/// println!("{} verified", report.manifest.backup_id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BackupJob {
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    name: Option<String>,
    min_size: u64,
    level: Option<i32>,
    threads: u32,
    extra_verifiers: Vec<Arc<dyn Verifier>>,
    drill: Option<Arc<dyn Verifier>>,
    lock_mode: LockMode,
    lock_dir: Option<PathBuf>,
    temp_dir: Option<PathBuf>,
    progress: ProgressHandle,
    clock: Clock,
    recipients: Option<crate::crypt::Recipients>,
}

impl std::fmt::Debug for BackupJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupJob")
            .field("source", &self.source.location())
            .field("sink", &self.sink.location())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl BackupJob {
    /// A backup of `source` into `sink` with the defaults: name from the
    /// source, 1 KiB size floor, checksum read-back, zstd at the source's
    /// level on every core, fail at once if another run holds the lock.
    pub fn new(source: Arc<dyn Source>, sink: Arc<dyn Sink>) -> Self {
        Self {
            source,
            sink,
            name: None,
            min_size: verify::size::DEFAULT_MIN_SIZE,
            level: None,
            threads: default_threads(),
            extra_verifiers: Vec::new(),
            drill: None,
            lock_mode: LockMode::FailFast,
            lock_dir: None,
            temp_dir: None,
            progress: ProgressHandle::default(),
            clock: system_clock(),
            recipients: None,
        }
    }

    /// Encrypt the artifact and attachments with age to `recipients`
    /// (after compression). The run also encrypts to a key of its own,
    /// made in memory and dropped with the run, with which its drill reads
    /// the stored copy back (see [`crate::crypt`]).
    pub fn recipients(mut self, recipients: crate::crypt::Recipients) -> Self {
        self.recipients = Some(recipients);
        self
    }

    /// Read the time from `clock` instead of the system clock: the backup's
    /// id, layout date and recorded times follow it.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The source name in the bucket layout (default: from the source).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The size floor for the uncompressed dump, in bytes (default 1024).
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }

    /// zstd level, 1 to 19 (default: the source's, 3 for SQLite and 1 for
    /// PostgreSQL).
    pub fn compression_level(mut self, level: i32) -> Self {
        self.level = Some(level);
        self
    }

    fn level(&self) -> i32 {
        self.level
            .unwrap_or_else(|| self.source.default_compression_level())
    }

    /// Compression threads (default: every core).
    pub fn threads(mut self, threads: u32) -> Self {
        self.threads = threads;
        self
    }

    /// Add a verifier that runs after the upload.
    pub fn verifier(mut self, v: Arc<dyn Verifier>) -> Self {
        self.extra_verifiers.push(v);
        self
    }

    /// Prove the stored backup restores before it is committed: `drill`
    /// (a verifier that reads the decompressed artifact, such as
    /// [`PgDrill`](crate::PgDrill)) runs on a copy downloaded back
    /// from the sink, after every other check passed. Its verdict goes into
    /// the manifest. A failed drill does not delete the backup (its data
    /// matches the snapshot, and `restore --partial` can still recover what
    /// loads): it is committed, listed as failed, never counted as verified,
    /// and [`BackupReport::manifest`]`.verified()` is `false`.
    pub fn drill(mut self, drill: Arc<dyn Verifier>) -> Self {
        self.drill = Some(drill);
        self
    }

    /// What to do when another run holds the lock.
    pub fn lock_mode(mut self, mode: LockMode) -> Self {
        self.lock_mode = mode;
        self
    }

    /// Directory for lock files (default [`lock::default_lock_dir`]).
    pub fn lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    /// Directory for the SQLite snapshot (default: the system temp dir).
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// Receive progress.
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = ProgressHandle::new(p);
        self
    }

    fn check(&self) -> Result<String> {
        crate::units::check_range("threads", self.threads, 1..=crate::units::MAX_THREADS)
            .map_err(Error::usage)?;
        if !(1..=19).contains(&self.level()) {
            return Err(Error::usage(format!(
                "compression level {} is out of range (1 to 19)",
                self.level()
            )));
        }
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| self.source.default_name());
        check_source_name(&name)?;
        Ok(name)
    }

    /// Take the backup, verify it, and write its manifest.
    ///
    /// # Errors
    /// Any [`Error`]; on every error path nothing is left visible in the sink
    /// (an upload that started is aborted, a stored object whose
    /// verification failed is deleted, and no manifest is written).
    pub async fn run(self) -> Result<BackupReport> {
        let name = self.check()?;
        let t0 = Instant::now();
        let lock_dir = self.lock_dir.clone().unwrap_or_else(lock::default_lock_dir);
        let _lock = lock::acquire(
            &lock::lock_path(&lock_dir, &self.source.lock_key()),
            self.lock_mode,
        )
        .await?;
        // What runs killed with -9 left in the temp dir (snapshot copies,
        // passfiles) goes first.
        crate::tempdir::sweep(&self.temp_dir.clone().unwrap_or_else(std::env::temp_dir));
        // One after the other: a failed preflight must not leave a sink
        // check running in the background.
        self.source.preflight().await?;
        self.sink.check().await?;
        // Open uploads and partial files a killed run of this source left,
        // once they are past the grace period (a younger one may be another
        // host's run in progress). Never fails the backup.
        let stale = crate::leftovers::find(
            &*self.sink,
            &name,
            crate::retention::DEFAULT_INCOMPLETE_GRACE,
            (self.clock)(),
        )
        .await;
        match stale {
            Ok(l) if l.iter().any(|l| l.stale) => {
                if let Err(e) = crate::leftovers::remove(&*self.sink, &l).await {
                    tracing::warn!(error = %e.display_chain(), "could not remove what an interrupted run left");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e.display_chain(), "could not look for what interrupted runs left")
            }
        }

        let started_at = (self.clock)();
        let backup_id = new_backup_id(started_at);
        let dir = layout::backup_dir(&name, started_at, &backup_id);
        let key = layout::data_key(&dir, self.source.extension());
        tracing::info!(source = %self.source.location(), sink = %self.sink.location(), %backup_id, "backup started");

        self.progress.start(Phase::Snapshot, None);
        let dump = self
            .source
            .dump(&DumpOptions {
                temp_dir: self.temp_dir.clone(),
                zstd_level: self.level(),
                zstd_threads: self.threads,
            })
            .await?;
        self.progress.finish(Phase::Snapshot);
        let raw_hint = dump.size_hint;
        let outcome_task = tokio::spawn(dump.outcome);
        let guard = dump.guard;
        let attachments_in = dump.attachments;
        let precompressed = dump.precompressed;

        // With recipients, also this run's own key: its drill decrypts with it.
        let sealed = self.recipients.as_ref().map(|r| r.with_run_key());
        let (run_recipients, run_keys) = match sealed {
            Some((r, k)) => (Some(r), Some(k)),
            None => (None, None),
        };
        let upload = self.sink.upload(&key).await?;
        let streamed = stream_to_upload(
            dump.reader,
            upload,
            if precompressed {
                Compress::Already
            } else {
                Compress::Zstd {
                    level: self.level(),
                    threads: self.threads,
                }
            },
            self.progress.clone(),
            raw_hint,
            run_recipients.clone(),
        )
        .await;
        let (upload, compressed) = match streamed {
            Ok(v) => v,
            Err(e) => {
                // A child that failed ends its stream early: when reading
                // the dump failed (not the upload), the source's own account
                // (exit status, message) says more, if it comes at once.
                let reading = matches!(&e, Error::Source { location, .. } if location == "dump");
                let mut outcome_task = outcome_task;
                let own = if reading {
                    tokio::time::timeout(Duration::from_secs(3), &mut outcome_task)
                        .await
                        .ok()
                } else {
                    None
                };
                outcome_task.abort();
                return Err(match own {
                    Some(Ok(Err(source))) => source,
                    _ => e,
                });
            }
        };
        let outcome = match outcome_task.await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                let _ = upload.abort().await;
                return Err(e);
            }
            Err(e) => {
                let _ = upload.abort().await;
                return Err(Error::source_err(
                    self.source.location(),
                    format!("snapshot check failed: {e}"),
                ));
            }
        };
        if let Some(bad) = outcome.verdicts.iter().find(|v| !v.passed) {
            let _ = upload.abort().await;
            return Err(Error::verification(
                bad.verifier.clone(),
                bad.detail.clone(),
            ));
        }
        // A stream the server compressed: the source counted its raw bytes.
        let raw_size = match (precompressed, outcome.raw_size) {
            (false, _) => compressed.raw_size,
            (true, Some(n)) => n,
            (true, None) => {
                let _ = upload.abort().await;
                return Err(Error::source_err(
                    self.source.location(),
                    "the source compressed its stream but did not count its raw size",
                ));
            }
        };
        upload.complete().await?;
        // From here until the commit the data is visible without a manifest:
        // if this future is dropped (Ctrl-C, SIGTERM), the guard deletes it.
        let mut uncommitted = Uncommitted::new(self.sink.clone());
        uncommitted.keys.push(key.clone());
        crate::failpoint::point("backup:uploaded");
        crate::failpoint::pause("backup:uploaded").await;
        let mut written = vec![key.clone()];
        let attachments = match store_attachments(
            &*self.sink,
            &dir,
            attachments_in,
            self.level(),
            run_recipients.as_ref(),
            &mut written,
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                uncommitted.disarm();
                delete_all(&*self.sink, &written).await;
                return Err(e);
            }
        };
        uncommitted.keys = written.clone();

        let mut manifest = Manifest {
            format: crate::manifest::MANIFEST_FORMAT.into(),
            format_version: MANIFEST_VERSION,
            backup_id: backup_id.clone(),
            source: SourceInfo {
                kind: self.source.kind().into(),
                name: name.clone(),
                location: self.source.location(),
            },
            started_at,
            finished_at: started_at,
            host: crate::rt::host_name(),
            tool: ToolInfo::current(),
            artifact: Artifact {
                key: key.clone(),
                raw_size,
                stored_size: compressed.stored_size,
                sha256: compressed.sha256,
                compression: Compression::zstd(self.level()),
                encryption: self.recipients.as_ref().map(|r| r.encryption()),
                format: Some(self.source.artifact_format().into()),
            },
            fingerprint: outcome.fingerprint,
            verdicts: Vec::new(),
            attachments,
            storage: None,
        };
        let kind = crate::source::SourceKind::parse(&manifest.source.kind);
        manifest.storage = Some(manifest.describe_storage(self.sink.location(), |steps| {
            if let Some(kind) = kind {
                kind.manual_restore(&manifest, steps);
            }
        }));

        self.progress.start(Phase::Verify, None);
        let mut verifiers = verify::default_verifiers(self.min_size);
        verifiers.extend(self.extra_verifiers.iter().cloned());
        let verdicts = run_verifiers(&verifiers, &manifest, &*self.sink, None, None).await;
        self.progress.finish(Phase::Verify);
        let verdicts = match verdicts {
            Ok(v) => v,
            Err(e) => {
                uncommitted.disarm();
                delete_all(&*self.sink, &written).await;
                return Err(e);
            }
        };
        let mut all = outcome.verdicts;
        all.extend(verdicts);
        if let Err(e) = failures_to_error(&all) {
            uncommitted.disarm();
            delete_all(&*self.sink, &written).await;
            return Err(e);
        }
        let mut drill_error = None;
        // A source that ran the drill's own check on the stream as it was
        // stored (a server-compressed base backup), with the read-back
        // SHA-256 proving the sink holds exactly those bytes, needs no
        // second pass. An encrypted copy is still read back: that proves
        // it decrypts.
        let checked_on_the_way = |name: &str| {
            // Only a stream the source passed on as it came (precompressed)
            // had its check run on the stored bytes; other sources check
            // their snapshot before it is compressed.
            precompressed
                && self.recipients.is_none()
                && all.iter().any(|v| v.passed && v.verifier == name)
                && all.iter().any(|v| v.passed && v.verifier == "checksum")
        };
        if let Some(drill) = &self.drill
            && checked_on_the_way(drill.name())
        {
            tracing::info!(
                verifier = drill.name(),
                "checked on its way to the sink, and the read-back SHA-256 matches: no second read"
            );
        } else if let Some(drill) = &self.drill {
            // The drill reads back what the sink holds, as a restore would.
            manifest.verdicts = all.clone();
            self.progress.start(Phase::Verify, None);
            let temp_root = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
            let drilled = verify_local(
                self.sink.clone(),
                &manifest,
                std::slice::from_ref(drill),
                &temp_root,
                self.progress.clone(),
                run_keys.as_ref(),
            )
            .await;
            self.progress.finish(Phase::Verify);
            match drilled {
                Ok(v) => all.extend(v),
                // The drill could not run (no scratch server, no room): the
                // backup is as good as its checks say; commit it as checked.
                Err(e) => {
                    tracing::warn!(error = %e.display_chain(), "the restore drill could not run; the backup is committed as checked, not drilled");
                    drill_error = Some(e.display_chain());
                }
            }
        }
        manifest.verdicts = all;
        manifest.finished_at = (self.clock)().max(started_at);
        let manifest_key = layout::manifest_key(&dir);
        // Never commit over data that is gone (a concurrent prune, a
        // lifecycle rule): every object must still be there, at its size.
        for (k, size) in std::iter::once((&manifest.artifact.key, manifest.artifact.stored_size))
            .chain(manifest.attachments.iter().map(|a| (&a.key, a.stored_size)))
        {
            match self.sink.head(k).await {
                Ok(h) if h.size == size => {}
                Ok(h) => {
                    uncommitted.disarm();
                    return Err(Error::sink_err(
                        self.sink.location(),
                        format!(
                            "{k} changed before the commit ({} bytes, {size} expected); nothing was committed",
                            h.size
                        ),
                    ));
                }
                Err(Error::NotFound { .. }) => {
                    uncommitted.disarm();
                    delete_all(&*self.sink, &written).await;
                    return Err(Error::sink_err(
                        self.sink.location(),
                        format!(
                            "{k} was deleted before the commit (a concurrent prune or a lifecycle rule?); nothing was committed"
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        crate::failpoint::point("backup:before-commit");
        // A manifest write may land even if this run is cancelled now: the
        // data must stay.
        uncommitted.disarm();
        match commit_manifest(&*self.sink, &manifest_key, manifest.to_json()).await {
            Ok(()) => {}
            Err(CommitError::NotWritten(e)) => {
                delete_all(&*self.sink, &written).await;
                return Err(e);
            }
            Err(CommitError::Unknown(e)) => {
                // The manifest may be in the sink: its data must stay. If it
                // is not, the directory is incomplete and retention removes
                // it after the grace period.
                tracing::error!(key = %manifest_key, "could not tell whether the manifest was stored; the backup's objects are left in place (complete if the manifest landed, else removed by retention as incomplete)");
                return Err(e);
            }
        }
        crate::failpoint::point("backup:committed");
        drop(guard);
        write_restore_guide(&*self.sink, &manifest).await;
        Ok(BackupReport {
            manifest,
            dir,
            sink_location: self.sink.location().to_string(),
            duration: t0.elapsed(),
            drill_error,
        })
    }
}

/// `<source>/restore.md`: how to find and restore this source's backups
/// with standard tools, written once (create-only) beside them. Best effort:
/// the backup is already committed.
pub(crate) async fn write_restore_guide(sink: &dyn Sink, manifest: &Manifest) {
    let name = &manifest.source.name;
    let key = layout::restore_guide_key(name);
    let steps = manifest
        .storage
        .as_ref()
        .map(|s| s.manual_restore.join("\n"))
        .unwrap_or_default();
    let text = format!(
        "# Restoring {name} without Lifeboat\n\n\
         Every backup of `{name}` ({kind}, {location}) is a directory\n\
         `{pattern}/` holding the data and a `{manifest_file}`,\n\
         written last: a directory without a manifest is an interrupted run, never a backup.\n\
         Backup ids start with their UTC start time, so the newest directory holds the newest backup.\n\n\
         Each `{manifest_file}` says, under `storage.manual_restore`, how to restore that backup by hand,\n\
         and under `artifact` the SHA-256 and size of the stored bytes, under `fingerprint` the tables and\n\
         exact row counts it must hold. For the backup `{id}` these steps were:\n\n{steps}\n\n\
         With Lifeboat: `lifeboat restore --from <this sink> --source {name} --latest --to <target>`.\n",
        pattern = layout::backup_dir_pattern(name),
        manifest_file = layout::MANIFEST_FILE,
        kind = manifest.source.kind,
        location = manifest.source.location,
        id = manifest.backup_id,
    );
    match sink
        .put(&key, Bytes::from(text), PutOptions::create_only())
        .await
    {
        Ok(()) | Err(Error::AlreadyExists { .. }) => {}
        Err(e) => {
            tracing::warn!(key = %key, error = %e.display_chain(), "could not write the restore guide; the backup stands")
        }
    }
}

/// Compress (and encrypt) and store a dump's attachments beside the
/// artifact.
async fn store_attachments(
    sink: &dyn Sink,
    dir: &str,
    attachments: Vec<crate::source::Attachment>,
    level: i32,
    recipients: Option<&crate::crypt::Recipients>,
    written: &mut Vec<String>,
) -> Result<Vec<AttachmentInfo>> {
    let mut out = Vec::new();
    for a in attachments {
        let raw_size = a.data.len() as u64;
        let encoded = codec::encode_attachment(a.data, level, &a.name, recipients).await?;
        let key = layout::attachment_key(dir, &a.file_name);
        let (sha256, stored_size) = (encoded.sha256, encoded.stored_size);
        sink.put(&key, encoded.bytes, PutOptions::create_only())
            .await?;
        written.push(key.clone());
        let format = if a.file_name.ends_with(".sql") {
            "SQL script (psql -f)"
        } else {
            "raw bytes"
        };
        out.push(AttachmentInfo {
            name: a.name,
            key,
            raw_size,
            stored_size,
            sha256,
            compression: Some(Compression::zstd(level)),
            encryption: recipients.map(|r| r.encryption()),
            format: Some(format.into()),
        });
    }
    Ok(out)
}
