//! [`VerifyJob`]: every check again on a stored backup, plus the checks
//! that need a local decompressed copy ([`verify_local`], which a backup's
//! drill shares).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{failures_to_error, run_verifiers};
use crate::catalog::{BackupEntry, Catalog, Selector};
use crate::codec::{READ_CHUNK, artifact_reader, sink_error};
use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::{Manifest, Verdict};
use crate::progress::{Phase, Progress, ProgressHandle};
use crate::record::{CheckRecord, RecordKind};
use crate::sink::{PutOptions, Sink};
use crate::verify::{self, Verifier};

/// Download and decompress the artifact of `manifest` into a private temp
/// dir under `temp_root` and run `verifiers` (those that need a local copy)
/// on it. Bytes that are wrong or missing are failed verdicts; a sink that
/// fails, or a local disk that does (exit 78), are errors of the run.
pub(super) async fn verify_local(
    sink: Arc<dyn Sink>,
    manifest: &Manifest,
    verifiers: &[Arc<dyn Verifier>],
    temp_root: &Path,
    progress: ProgressHandle,
    keys: Option<&crate::crypt::Identities>,
) -> Result<Vec<Verdict>> {
    // Checks that read the stored data themselves, as it streams (the
    // physical backup's manifest check): no local copy to make.
    if verifiers.iter().all(|v| !v.needs_local_copy()) {
        return run_verifiers(verifiers, manifest, &*sink, None, keys).await;
    }
    crate::tempdir::sweep(temp_root);
    let temp = crate::tempdir::PrivateDir::new(temp_root, "verify").map_err(|e| {
        Error::config(
            temp_root.display().to_string(),
            format!("cannot create a temporary directory: {e}"),
        )
    })?;
    let copy = temp.path().join("artifact");
    let t_download = Instant::now();
    let reader = match artifact_reader(&*sink, manifest, progress.clone(), keys).await {
        Ok(r) => Ok(r),
        Err(Error::NotFound { key, .. }) => Err(format!("{key} is missing from the sink")),
        Err(e) => return Err(e),
    };
    // A tar every verifier wants unpacked: unpack it as it streams.
    let unpacked = !verifiers.is_empty() && verifiers.iter().all(|v| v.wants_unpacked_tar());
    let copy = if unpacked {
        temp.path().join("unpacked")
    } else {
        copy
    };
    let copied = match reader {
        Ok(reader) => {
            let copy2 = copy.clone();
            tokio::task::spawn_blocking(move || {
                if unpacked {
                    unpack_to_dir(reader, &copy2)
                } else {
                    copy_to_new_file(reader, &copy2)
                }
            })
            .await
            .map_err(|e| Error::verification("download", format!("worker failed: {e}")))?
        }
        Err(missing) => Err(CopyError::Data(missing)),
    };
    progress.finish(Phase::Download);
    match copied {
        Ok(_) => {
            crate::failpoint::point("verify:downloaded");
            run_verifiers(verifiers, manifest, &*sink, Some(&copy), keys).await
        }
        // The backup's bytes are wrong or gone: a verdict on it.
        Err(CopyError::Data(why)) => Ok(verifiers
            .iter()
            .map(|v| {
                Verdict::fail(
                    v.name(),
                    format!("cannot read the backup's data: {why}"),
                    t_download,
                )
            })
            .collect()),
        // The sink could not be read: the check did not run.
        Err(CopyError::Sink(e)) => Err(e),
        // Our own disk failed: an error of this run, never a verdict on the
        // backup (exit 78, as for an unusable temp dir).
        Err(CopyError::Local(e)) => Err(Error::config(
            temp_root.display().to_string(),
            format!(
                "cannot write the decompressed copy of the backup ({} bytes): {e}; point --temp-dir (temp_dir) at a disk with room",
                manifest.artifact.raw_size
            ),
        )),
    }
}

/// Why copying a downloaded stream to a local file failed.
enum CopyError {
    /// The stored bytes are wrong (checksum, decompression) or missing.
    Data(String),
    /// The sink failed while streaming.
    Sink(Error),
    /// The local file could not be created or written.
    Local(io::Error),
}

/// Unpack the tar `reader` streams into the new directory `dir`, reading
/// to the stream's end (so the verifying reader checks the SHA-256), and
/// telling the backup's bad bytes from the sink's and the local disk's
/// failures.
fn unpack_to_dir(reader: Box<dyn Read + Send>, dir: &Path) -> std::result::Result<u64, CopyError> {
    match crate::source::postgres::physical::unpack(reader, dir) {
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(match sink_error(e) {
            Ok(Error::NotFound { key, .. }) => {
                CopyError::Data(format!("{key} is missing from the sink"))
            }
            Ok(sink) => CopyError::Sink(sink),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::StorageFull
                        | io::ErrorKind::PermissionDenied
                        | io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                CopyError::Local(e)
            }
            Err(e) => CopyError::Data(e.to_string()),
        }),
    }
}

/// Copy `reader` into a new `0600` file at `path`, telling read failures
/// (the backup's data, or the sink) from write failures (the local disk).
fn copy_to_new_file(
    mut reader: Box<dyn Read + Send>,
    path: &Path,
) -> std::result::Result<u64, CopyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(CopyError::Local)?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(match sink_error(e) {
                    Ok(Error::NotFound { key, .. }) => {
                        CopyError::Data(format!("{key} is missing from the sink"))
                    }
                    Ok(sink) => CopyError::Sink(sink),
                    Err(e) => CopyError::Data(e.to_string()),
                });
            }
        };
        f.write_all(&buf[..n]).map_err(CopyError::Local)?;
        total += n as u64;
    }
    f.flush().map_err(CopyError::Local)?;
    Ok(total)
}

/// Verification of a stored backup: everything [`BackupJob`] checked, again,
/// plus the checks that need the data itself (SQLite `integrity_check` and
/// row counts against the fingerprint).
#[derive(Clone, Debug)]
pub struct VerifyJob {
    sink: Arc<dyn Sink>,
    source_name: Option<String>,
    selector: Selector,
    min_size: u64,
    temp_dir: Option<PathBuf>,
    progress: ProgressHandle,
    postgres: crate::source::PostgresOptions,
    extra: Vec<Arc<dyn Verifier>>,
    keys: Option<crate::crypt::Identities>,
}

/// The verdicts on one stored backup.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The backup.
    pub manifest: Manifest,
    /// The backup's directory in the sink.
    pub dir: String,
    /// One verdict per verifier.
    pub verdicts: Vec<Verdict>,
    /// Wall time.
    pub duration: Duration,
}

impl VerifyJob {
    /// Verify the latest backup in `sink`.
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self {
            sink,
            source_name: None,
            selector: Selector::Latest,
            min_size: verify::size::DEFAULT_MIN_SIZE,
            temp_dir: None,
            progress: ProgressHandle::default(),
            postgres: Default::default(),
            extra: Vec::new(),
            keys: None,
        }
    }

    /// Decrypt an encrypted backup with these identities.
    pub fn identities(mut self, keys: crate::crypt::Identities) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Which source's backups.
    pub fn source_name(mut self, name: impl Into<String>) -> Self {
        self.source_name = Some(name.into());
        self
    }

    /// Tool locations and `min_tables` for PostgreSQL backups.
    pub fn postgres_options(mut self, opts: crate::source::PostgresOptions) -> Self {
        self.postgres = opts;
        self
    }

    /// Add a verifier (a restore drill).
    pub fn verifier(mut self, v: Arc<dyn Verifier>) -> Self {
        self.extra.push(v);
        self
    }

    /// Which backup.
    pub fn select(mut self, selector: Selector) -> Self {
        self.selector = selector;
        self
    }

    /// Size floor (default 1 KiB).
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }

    /// Where the decompressed copy goes (default: the system temp dir).
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// Receive progress.
    pub fn progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = ProgressHandle::new(p);
        self
    }

    /// Run every verifier.
    ///
    /// # Errors
    /// [`Error::Verification`] naming each failed check; sink errors when the
    /// checks could not run.
    pub async fn run(self) -> Result<VerifyReport> {
        let entry = Catalog::new(self.sink.clone())
            .find(self.source_name.as_deref(), &self.selector)
            .await?;
        self.verify_entry(entry).await
    }

    /// Keep the result in the sink, for `status` (see
    /// [`layout::verification_key`]).
    /// `decrypted_with`: the fingerprints of the identities that decrypted
    /// an encrypted backup here (its proof for `status`).
    async fn record(
        &self,
        manifest: &Manifest,
        verdicts: &[Verdict],
        passed: bool,
        decrypted_with: Option<Vec<String>>,
    ) {
        let now = Utc::now();
        let key = layout::verification_key(&manifest.source.name, now, &manifest.backup_id);
        let mut evidence = serde_json::json!({ "verdicts": verdicts });
        if let Some(d) = decrypted_with {
            evidence["decrypted_with"] = d.into();
        }
        CheckRecord {
            kind: RecordKind::Verification,
            backup_id: manifest.backup_id.clone(),
            at: now,
            passed,
            evidence,
        }
        .store(&*self.sink, &key, PutOptions::default())
        .await;
    }

    /// Verify a backup already found.
    pub async fn verify_entry(&self, entry: BackupEntry) -> Result<VerifyReport> {
        let t0 = Instant::now();
        let BackupEntry { dir, manifest } = entry;
        let mark = crate::lease::ReaderMark::place(
            self.sink.clone(),
            &manifest.source.name,
            &manifest.backup_id,
            "verify",
        )
        .await;
        let mut verifiers: Vec<Arc<dyn Verifier>> =
            match crate::source::SourceKind::parse(&manifest.source.kind) {
                Some(kind) => {
                    kind.stored_verifiers(self.min_size, &self.postgres, self.temp_dir.clone())
                }
                None => verify::default_verifiers(self.min_size),
            };
        verifiers.extend(self.extra.iter().cloned());
        let (local, remote): (Vec<_>, Vec<_>) =
            verifiers.into_iter().partition(|v| v.needs_local_copy());

        let mut verdicts =
            run_verifiers(&remote, &manifest, &*self.sink, None, self.keys.as_ref()).await?;
        if !local.is_empty() {
            let temp_root = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
            verdicts.extend(
                verify_local(
                    self.sink.clone(),
                    &manifest,
                    &local,
                    &temp_root,
                    self.progress.clone(),
                    self.keys.as_ref(),
                )
                .await?,
            );
        }
        let outcome = failures_to_error(&verdicts);
        // The local checks read the plaintext: the keys that opened it.
        let decrypted_with = match (&manifest.artifact.encryption, &self.keys) {
            (Some(enc), Some(k)) if !local.is_empty() && outcome.is_ok() => Some(
                k.fingerprints()
                    .into_iter()
                    .filter(|f| enc.recipients.contains(f))
                    .collect(),
            ),
            _ => None,
        };
        self.record(&manifest, &verdicts, outcome.is_ok(), decrypted_with)
            .await;
        if let Some(m) = mark {
            m.remove().await;
        }
        outcome?;
        Ok(VerifyReport {
            manifest,
            dir,
            verdicts,
            duration: t0.elapsed(),
        })
    }
}
