//! The WAL archive: [`push`] is PostgreSQL's `archive_command`, [`fetch`]
//! its `restore_command`.
//!
//! Each archived file is one object, `<source>/wal/<timeline>/<name>.zst`
//! ([`layout::wal_segment_key`]): a zstd skippable frame holding a
//! [`WalObject`] (the file's name, size and SHA-256, and for segments the
//! cluster's system identifier), then the file compressed with zstd's own
//! content checksum. `zstd -d` reads it as the file itself.
//!
//! The contract of `push`:
//! - it returns only once the object is committed (a create-only put: the
//!   local sink fsyncs the file and its directory, an object store has
//!   answered the PUT);
//! - a file already archived with the same SHA-256 is success (PostgreSQL
//!   pushes a segment again after a crash between our exit and its own
//!   bookkeeping); a *different* file under the same name is refused, and
//!   nothing is overwritten, ever;
//! - a segment's long page header must name the archive's cluster (system
//!   identifier), WAL format and segment size, recorded by the first push
//!   in `<source>/wal/archive.json`, and the WAL position its name says.
//!
//! The contract of `fetch`: the file is written to a temporary name beside
//! the destination, fsynced, checked (size and SHA-256 against the object's
//! metadata) and only then renamed into place. "Not in the archive" is
//! [`Error::NotFound`]; the CLI turns it into exit 1 and every other
//! failure into [`WAL_FETCH_FATAL_EXIT`], which PostgreSQL takes as fatal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec;
use crate::error::{Error, Result};
use crate::layout;
use crate::rt::blocking;
use crate::sink::{PutOptions, Sink, SinkExt};
use crate::source::postgres::walfile::{WalFileName, WalHeader};

/// The exit code of `lifeboat wal fetch` for every failure other than "not
/// in the archive" (exit 1). PostgreSQL treats a `restore_command` exit
/// status above 125 as fatal and stops recovery, instead of taking the
/// failure for the end of the archive and promoting at the wrong point.
pub const WAL_FETCH_FATAL_EXIT: i32 = 200;

/// Which cluster a WAL archive belongs to: `<source>/wal/archive.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    /// Always `lifeboat-wal-archive`.
    pub format: String,
    /// The cluster's system identifier, as a decimal string (it does not
    /// fit a JSON number exactly).
    pub system_identifier: String,
    /// The WAL page magic (the WAL format of one major version).
    pub wal_magic: u16,
    /// The WAL segment size in bytes.
    pub segment_size: u32,
    /// The WAL block size.
    pub block_size: u32,
    /// When the first push wrote it.
    pub created_at: DateTime<Utc>,
    /// The host that wrote it.
    pub host: String,
}

const ARCHIVE_FORMAT: &str = "lifeboat-wal-archive";

impl ArchiveInfo {
    fn of(h: &WalHeader) -> Self {
        Self {
            format: ARCHIVE_FORMAT.into(),
            system_identifier: h.system_identifier.to_string(),
            wal_magic: h.magic,
            segment_size: h.segment_size,
            block_size: h.block_size,
            created_at: Utc::now(),
            host: crate::rt::host_name(),
        }
    }

    /// Why a segment with header `h` does not belong here, if it does not.
    fn mismatch(&self, h: &WalHeader) -> Option<String> {
        if self.system_identifier != h.system_identifier.to_string() {
            return Some(format!(
                "it comes from the cluster with system identifier {}, and this archive holds the WAL of cluster {} (a second cluster, or a copy of the server, is archiving under the same source name: give it its own --name)",
                h.system_identifier, self.system_identifier
            ));
        }
        if self.wal_magic != h.magic {
            return Some(format!(
                "its WAL format ({:#06x}) is another PostgreSQL major version's than this archive's ({:#06x}): archive the upgraded cluster under a new --name",
                h.magic, self.wal_magic
            ));
        }
        if self.segment_size != h.segment_size || self.block_size != h.block_size {
            return Some(format!(
                "its segment size {} / block size {} differ from this archive's {} / {}",
                h.segment_size, h.block_size, self.segment_size, self.block_size
            ));
        }
        None
    }
}

/// PostgreSQL's default WAL segment size, for an archive whose
/// `archive.json` was never written (only history files pushed so far).
pub const DEFAULT_SEGMENT_SIZE: u32 = 16 << 20;

/// One archived WAL file, as a listing finds it.
#[derive(Debug, Clone)]
pub struct ArchivedFile {
    /// Its key in the sink.
    pub key: String,
    /// Its WAL file name.
    pub name: WalFileName,
    /// When the sink stored it.
    pub stored_at: DateTime<Utc>,
}

/// A source's WAL archive, listed once: what `status`, `prune` and the
/// point-in-time planning read.
#[derive(Debug, Clone)]
pub struct ArchiveListing {
    /// Every archived WAL file (keys that are not one are left out).
    pub files: Vec<ArchivedFile>,
}

impl ArchiveListing {
    /// List `<source>/wal/`; `None` when it holds no WAL file.
    ///
    /// # Errors
    /// A listing failure.
    pub async fn read(sink: &dyn Sink, source: &str) -> Result<Option<Self>> {
        let files: Vec<ArchivedFile> = sink
            .list(&format!("{}/", layout::wal_prefix(source)))
            .await?
            .into_iter()
            .filter_map(|o| {
                let (_, _, name) = layout::parse_wal_segment_key(&o.key)?;
                Some(ArchivedFile {
                    name: WalFileName::parse(name)?,
                    key: o.key,
                    stored_at: o.last_modified,
                })
            })
            .collect();
        Ok((!files.is_empty()).then_some(Self { files }))
    }

    /// When the newest file was stored: the end of what the archive can
    /// recover to.
    pub fn newest_stored_at(&self) -> Option<DateTime<Utc>> {
        self.files.iter().map(|f| f.stored_at).max()
    }

    /// The archive's segment size from `archive.json`:
    /// [`DEFAULT_SEGMENT_SIZE`] when there is none, `None` when it cannot
    /// be read as one.
    ///
    /// # Errors
    /// The sink failed reading it.
    pub async fn segment_size(sink: &dyn Sink, source: &str) -> Result<Option<u32>> {
        match sink.get_bytes(&layout::wal_archive_key(source)).await {
            Ok(raw) => Ok(serde_json::from_slice::<ArchiveInfo>(&raw)
                .ok()
                .map(|i| i.segment_size)),
            Err(Error::NotFound { .. }) => Ok(Some(DEFAULT_SEGMENT_SIZE)),
            Err(e) => Err(e),
        }
    }
}

/// The log/segment part of a WAL file name (16 hex digits) for segment
/// number `segno`, timeline left out.
pub fn segment_position_name(segno: u64, segment_size: u32) -> String {
    let per_log = 0x1_0000_0000u64 / u64::from(segment_size.max(1));
    format!("{:08X}{:08X}", segno / per_log, segno % per_log)
}

/// The metadata in front of each archived file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalObject {
    /// The file's name (`000000010000000000000001`).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes (not of the stored, compressed object).
    pub sha256: String,
    /// For segments: the cluster's system identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    /// When what follows this metadata is `age(zstd(file))`: to whom. The
    /// metadata itself stays readable, so that a re-push can be compared
    /// without a secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::manifest::Encryption>,
}

/// What [`push`] did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WalPushReport {
    /// The file's name.
    pub name: String,
    /// Its key in the sink.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// The stored object's size.
    pub stored_size: u64,
    /// The SHA-256 of the file.
    pub sha256: String,
    /// The same file was already archived: nothing was written.
    pub already_archived: bool,
    /// Wall time.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

/// What [`fetch`] did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WalFetchReport {
    /// The file's name.
    pub name: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its SHA-256, checked against the archive's record.
    pub sha256: String,
    /// Whether an earlier call had fetched it ahead into the spool.
    pub prefetched: bool,
    /// Wall time.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn parse_name(name: &str) -> Result<WalFileName> {
    WalFileName::parse(name).ok_or_else(|| {
        Error::usage(format!(
            "{name:?} is not the name of a WAL file PostgreSQL archives (a segment such as 000000010000000000000001, a .partial segment, a .history or a .backup file)"
        ))
    })
}

fn refuse(name: &str, why: impl std::fmt::Display) -> Error {
    Error::verification("wal-archive", format!("refusing to archive {name}: {why}"))
}

/// Archive the WAL file at `path` for source `source` (PostgreSQL's
/// `archive_command`, with `%p` as `path`).
///
/// # Errors
/// [`Error::Usage`] for a file whose name is not a WAL file's;
/// [`Error::Source`] when it cannot be read; [`Error::Verification`] (exit
/// 4) when it is not what its name says, belongs to another cluster, or a
/// different file is already archived under its name; sink errors.
pub async fn push(sink: &dyn Sink, source: &str, path: &Path, level: i32) -> Result<WalPushReport> {
    push_with(sink, source, path, level, None).await
}

/// [`push`], encrypting the compressed file to `recipients` when given
/// (the metadata frame stays plain: name, size and SHA-256 of the file).
///
/// # Errors
/// As [`push`].
pub async fn push_with(
    sink: &dyn Sink,
    source: &str,
    path: &Path,
    level: i32,
    recipients: Option<&crate::crypt::Recipients>,
) -> Result<WalPushReport> {
    let t0 = Instant::now();
    crate::manifest::check_source_name(source)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::usage(format!("{} has no file name", path.display())))?;
    let name = parse_name(file_name)?;
    let p = path.to_path_buf();
    // Reading and hashing 16 MiB is blocking work.
    let (data, sha256) = blocking(move || {
        let data = std::fs::read(&p).map_err(|e| {
            Error::source_err(
                p.display().to_string(),
                format!("cannot read the WAL file: {e}"),
            )
        })?;
        let sha256 = hex::encode(Sha256::digest(&data));
        Ok::<_, Error>((data, sha256))
    })
    .await?;
    let header = if name.has_header() {
        let h = WalHeader::parse(&data).map_err(|m| refuse(file_name, m))?;
        h.check_name(&name).map_err(|m| refuse(file_name, m))?;
        if name.kind() == crate::source::postgres::walfile::WalFileKind::Segment
            && data.len() as u64 != u64::from(h.segment_size)
        {
            return Err(refuse(
                file_name,
                format!(
                    "it is {} bytes long, and its header says segments are {}",
                    data.len(),
                    h.segment_size
                ),
            ));
        }
        check_archive(sink, source, &h, file_name).await?;
        Some(h)
    } else {
        None
    };
    let meta = WalObject {
        name: file_name.to_string(),
        size: data.len() as u64,
        sha256: sha256.clone(),
        system_identifier: header.map(|h| h.system_identifier.to_string()),
        encryption: recipients.map(|r| r.encryption()),
    };
    let meta_json = serde_json::to_vec(&meta).expect("serializes");
    let recipients = recipients.cloned();
    let stored = blocking(move || {
        let plain = codec::encode_with_metadata(&meta_json, &data, level)
            .map_err(|e| Error::source_err("wal", format!("cannot compress: {e}")))?;
        match &recipients {
            None => Ok(plain),
            Some(r) => seal(&plain, r)
                .map_err(|e| Error::source_err("wal", format!("cannot encrypt: {e}"))),
        }
    })
    .await?;
    let key = layout::wal_segment_key(source, name.timeline(), file_name);
    let stored_size = stored.len() as u64;
    let report = |already_archived| WalPushReport {
        name: file_name.to_string(),
        key: key.clone(),
        size: meta.size,
        stored_size,
        sha256: sha256.clone(),
        already_archived,
        duration: t0.elapsed(),
    };
    crate::failpoint::point("wal-push:before-commit");
    match sink
        .put(&key, Bytes::from(stored), PutOptions::create_only())
        .await
    {
        Ok(()) => {
            crate::failpoint::point("wal-push:committed");
            Ok(report(false))
        }
        Err(Error::AlreadyExists { .. }) => {
            let existing = sink.get_bytes(&key).await?;
            match read_meta(&existing) {
                Ok(m) if m.sha256 == meta.sha256 && m.size == meta.size => {
                    tracing::info!(name = %file_name, %key, "already archived, byte for byte: nothing to do");
                    Ok(report(true))
                }
                Ok(m) => Err(refuse(
                    file_name,
                    format!(
                        "a different {file_name} is already archived at {key} ({} bytes, SHA-256 {}; this one: {} bytes, {sha256}); it is never overwritten. Is another server archiving under the same source name?",
                        m.size, m.sha256, meta.size
                    ),
                )),
                Err(why) => Err(refuse(
                    file_name,
                    format!(
                        "{key} already exists and is not an object Lifeboat archived ({why}); it is never overwritten"
                    ),
                )),
            }
        }
        Err(e) => Err(e),
    }
}

/// Pushing ahead: while PostgreSQL waits for one `archive_command`, the
/// next segments it has already marked ready (`archive_status/*.ready`)
/// are pushed too, at most `parallel` at once. Each one pushed ahead gets a
/// marker in `spool` (its SHA-256, written only once its object is
/// committed); when PostgreSQL then asks for it, a file with that SHA-256
/// returns at once. A lost marker only costs the read-back of the stored
/// object (the create-only put finds it and compares).
#[derive(Debug, Clone)]
pub struct LookAhead {
    /// At most this many pushes at once (the asked-for file included).
    pub parallel: usize,
    /// Where the markers of pushed files, or the files fetched ahead, go
    /// (private to this source).
    pub spool: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    sha256: String,
    size: u64,
    stored_size: u64,
    key: String,
    /// The pushed file's inode, size and modification time (s, ns): the
    /// same file, untouched since, needs no second hash.
    #[serde(default)]
    identity: Option<(u64, u64, i64, i64)>,
    /// The sink it is stored in ([`Sink::identity`]: its location, and for
    /// S3 and GCS its endpoint and region): a marker vouches only to
    /// a push into the same sink, under the same key, so a spool kept
    /// across a change of `archive_command` cannot pass a file off as
    /// archived in the new place.
    #[serde(default)]
    sink: String,
}

/// A file's inode, size and modification time.
fn file_identity(p: &Path) -> Option<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Whether `name` is a WAL segment's (not a history, backup-history or
/// partial file's).
fn is_segment(name: &str) -> bool {
    WalFileName::parse(name)
        .is_some_and(|n| n.kind() == crate::source::postgres::walfile::WalFileKind::Segment)
}

fn marker_path(spool: &Path, name: &str) -> PathBuf {
    spool.join(format!("{name}.pushed"))
}

/// The next segments after `name` that PostgreSQL has marked ready in
/// `pg_wal/archive_status`, in order, without markers yet.
fn ready_after(dir: &Path, name: &str, spool: &Path, max: usize) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join("archive_status")) else {
        return Vec::new();
    };
    let mut next: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let f = e.file_name().to_string_lossy().to_string();
            let seg = f.strip_suffix(".ready")?.to_string();
            (is_segment(&seg) && seg.as_str() > name && !marker_path(spool, &seg).exists())
                .then_some(seg)
        })
        .collect();
    next.sort();
    next.truncate(max);
    next.into_iter().map(|n| dir.join(n)).collect()
}

/// [`push`], and with `ahead` the next ready segments beside it.
///
/// Two ways to push ahead:
/// - **In the background**, when [`push_in_background`] gave a command line
///   to repeat (the CLI does): the first call that finds more ready
///   segments after its own starts a detached `wal push` of the same
///   command line ([`PUSHER_ENV`] set), which pushes every ready segment
///   after that file, `ahead.parallel` at a time, taking new ones as
///   PostgreSQL marks them, until none is left ([`push_ready_after`]). The
///   calls that follow find their markers, or wait for the pusher while it
///   runs and will reach them; when it is gone, or the file is not one it
///   pushes, the call pushes the file itself.
/// - **Inline** otherwise (a library caller): the next ready segments are
///   pushed beside the asked-for one, and the call returns when all are
///   done.
///
/// # Errors
/// As [`push`], for the file asked for; a file pushed ahead that fails is
/// logged and left for PostgreSQL to ask for again.
pub async fn push_ahead(
    sink: &dyn Sink,
    source: &str,
    path: &Path,
    level: i32,
    ahead: Option<&LookAhead>,
    recipients: Option<&crate::crypt::Recipients>,
) -> Result<WalPushReport> {
    let Some(ahead) = ahead.filter(|a| a.parallel > 1) else {
        return push_with(sink, source, path, level, recipients).await;
    };
    let t0 = Instant::now();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let spool = ahead.spool.clone();
    // The spool only saves work: a spool that cannot be used (a directory
    // another user made, a full disk) never fails the push, it only turns
    // the look-ahead off.
    if !spool_usable(&spool, "pushing one file at a time").await {
        return push_with(sink, source, path, level, recipients).await;
    }
    // Pushed ahead already: the same bytes need nothing more.
    if let Some(r) = vouched(sink, source, &spool, &name, path, t0).await? {
        return Ok(r);
    }
    // Markers of segments before this one are of no use any more (a
    // history file's name sorts after every older timeline's segments:
    // it cleans nothing).
    if is_segment(&name)
        && let Ok(entries) = std::fs::read_dir(&spool)
    {
        for e in entries.flatten() {
            let f = e.file_name().to_string_lossy().to_string();
            // A marker, or what a process killed while writing one left.
            let marked = f
                .strip_suffix(".pushed")
                .or_else(|| f.strip_prefix('.')?.split_once(".pushed.").map(|(n, _)| n));
            if marked.is_some_and(|n| n < name.as_str()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if PUSH_BACKGROUND.get().is_some() && std::env::var_os(PUSHER_ENV).is_none() {
        if let Some(r) = wait_for_pusher(sink, source, &spool, &name, path, t0).await? {
            return Ok(r);
        }
        if !ready_after(&dir, &name, &spool, 1).is_empty() && spawn_pusher(&spool) {
            tracing::info!(file = %name, "started a background pusher for the ready segments after this one");
        }
        return push_with(sink, source, path, level, recipients).await;
    }
    let next = ready_after(&dir, &name, &spool, ahead.parallel - 1);
    let extra = futures::future::join_all(next.iter().map(|p| async move {
        let r = push_with(sink, source, p, level, recipients).await;
        (p, r)
    }));
    let (own, extra) = tokio::join!(push_with(sink, source, path, level, recipients), extra);
    let mut pushed = 0;
    for (p, r) in extra {
        match r {
            Ok(r) => {
                crate::failpoint::point("wal-push:ahead-committed");
                let _ = write_marker(sink, &spool, p, &r);
                pushed += 1;
            }
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e.display_chain(), "could not push ahead; PostgreSQL will ask for it again")
            }
        }
    }
    if pushed > 0 {
        tracing::info!(file = %name, ahead = pushed, "pushed the next ready segments ahead");
    }
    own
}

/// The report for `path` when a marker in `spool` vouches for it (the
/// marker is then used up); `None` when there is none, or it is for other
/// bytes.
async fn vouched(
    sink: &dyn Sink,
    source: &str,
    spool: &Path,
    name: &str,
    path: &Path,
    t0: Instant,
) -> Result<Option<WalPushReport>> {
    let marker = marker_path(spool, name);
    let Ok(raw) = std::fs::read(&marker) else {
        return Ok(None);
    };
    let key = parse_name(name).map(|n| layout::wal_segment_key(source, n.timeline(), name));
    let m = match serde_json::from_slice::<Marker>(&raw) {
        Ok(m) if key.as_ref().is_ok_and(|k| *k == m.key) && m.sink == sink.identity() => m,
        // Unreadable, or for another sink or source name: of no use.
        _ => {
            let _ = std::fs::remove_file(&marker);
            return Ok(None);
        }
    };
    // The very file pushed ahead, untouched since (PostgreSQL does not
    // write a segment it marked ready): no need to read it again. Any
    // other file is hashed and compared.
    let same_file = m.identity.is_some() && m.identity == file_identity(path);
    let sha = if same_file {
        m.sha256.clone()
    } else {
        let p = path.to_path_buf();
        blocking(move || {
            std::fs::read(&p)
                .map(|d| hex::encode(Sha256::digest(&d)))
                .map_err(|e| Error::source_err(p.display().to_string(), e.to_string()))
        })
        .await?
    };
    let _ = std::fs::remove_file(&marker);
    if sha != m.sha256 {
        return Ok(None);
    }
    tracing::info!(file = %name, key = %m.key, same_file, "pushed ahead earlier, byte for byte");
    Ok(Some(WalPushReport {
        name: name.to_string(),
        key: m.key,
        size: m.size,
        stored_size: m.stored_size,
        sha256: sha,
        already_archived: true,
        duration: t0.elapsed(),
    }))
}

/// Record in `spool` that the file at `p` is committed as `r` says; false
/// when it cannot be written. Written whole (a temporary file renamed),
/// so a reader never sees half of one; a marker that cannot be written
/// only costs the later call a read-back.
fn write_marker(sink: &dyn Sink, spool: &Path, p: &Path, r: &WalPushReport) -> bool {
    let m = Marker {
        sink: sink.identity(),
        sha256: r.sha256.clone(),
        size: r.size,
        stored_size: r.stored_size,
        key: r.key.clone(),
        identity: file_identity(p).filter(|id| id.1 == r.size),
    };
    write_atomically(
        &marker_path(spool, &r.name),
        &serde_json::to_vec(&m).expect("serializes"),
    )
    .is_ok()
}

/// Set (to a one-time ticket, see [`background_role`]) in the environment
/// of the detached `wal push` that pushes ahead in the background. Such a
/// process never archives the file it is given (its starting point). Set
/// without a ticket, `wal push` fails, so a stray setting in the server's
/// environment stops archiving loudly instead of skipping files.
pub const PUSHER_ENV: &str = "LIFEBOAT_WAL_PUSHER";

/// How long a `wal push` waits for a background pusher to reach its file
/// before it pushes the file itself (both are safe at once: the
/// create-only put of the second finds the first's object and compares).
const PUSHER_WAIT: Duration = Duration::from_secs(60);

static PUSH_BACKGROUND: std::sync::OnceLock<(PathBuf, Vec<std::ffi::OsString>)> =
    std::sync::OnceLock::new();

/// Let [`push_ahead`] push ahead from a detached process: `exe` run with
/// `args` (this very `wal push` command line) and [`PUSHER_ENV`] set. The
/// CLI calls it; a library caller without a command line to repeat keeps
/// pushing ahead inline.
pub fn push_in_background(exe: PathBuf, args: Vec<std::ffi::OsString>) {
    let _ = PUSH_BACKGROUND.set((exe, args));
}

fn spawn_pusher(spool: &Path) -> bool {
    PUSH_BACKGROUND
        .get()
        .is_some_and(|cmd| spawn_background(cmd, PUSHER_ENV, spool, "pusher.log"))
}

/// The background pusher's lock file: held (exclusively) while one runs.
fn pusher_lock(spool: &Path) -> PathBuf {
    spool.join(".push.lock")
}

/// Where the running pusher says what it is doing (written whole each
/// time): see [`PusherState`].
fn pusher_state_path(spool: &Path) -> PathBuf {
    spool.join(".push.state")
}

/// What a running background pusher publishes for the calls that wait.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PusherState {
    /// The file it started after (which it never pushes).
    after: String,
    /// The segments it has queued or is pushing.
    pending: Vec<String>,
    /// The newest segment it has queued so far: it looks for newer ones
    /// whenever its queue runs dry.
    frontier: String,
    /// A push failed (or a marker could not be written): it takes no more.
    draining: bool,
}

/// The published state of the pusher running on `spool`, `Some(None)`
/// while it has not said yet; `None` when no pusher runs.
fn running_pusher(spool: &Path) -> Option<Option<PusherState>> {
    use rustix::fs::{FlockOperation, flock};
    let f = std::fs::File::open(pusher_lock(spool)).ok()?;
    match flock(&f, FlockOperation::NonBlockingLockShared) {
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {}
        // Free (or locks do not work here): nobody to wait for.
        _ => return None,
    }
    Some(
        std::fs::read(pusher_state_path(spool))
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok()),
    )
}

/// While a background pusher runs that has `name` queued, or will queue
/// it (a segment newer than all it has queued, while it still takes
/// more), wait for its marker, at most [`PUSHER_WAIT`]. `None`: push it
/// yourself.
async fn wait_for_pusher(
    sink: &dyn Sink,
    source: &str,
    spool: &Path,
    name: &str,
    path: &Path,
    t0: Instant,
) -> Result<Option<WalPushReport>> {
    if !is_segment(name) {
        return Ok(None);
    }
    let deadline = Instant::now() + PUSHER_WAIT;
    loop {
        // Who runs is read before the marker is looked for: a pusher that
        // wrote the marker and ended in between is caught by the look.
        let pusher = running_pusher(spool);
        if let Some(r) = vouched(sink, source, spool, name, path, t0).await? {
            return Ok(Some(r));
        }
        let wait = match &pusher {
            None => false,
            // Just started: it says what it does in a moment.
            Some(None) => true,
            Some(Some(st)) => {
                name > st.after.as_str()
                    && (st.pending.iter().any(|p| p == name)
                        || (!st.draining && name > st.frontier.as_str()))
            }
        };
        if !wait {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            tracing::warn!(file = %name, waited_s = PUSHER_WAIT.as_secs(), "the background pusher has not pushed this file; pushing it here");
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The background pusher: push every segment PostgreSQL has marked ready
/// after `after` (its path in `pg_wal`), oldest first, `ahead.parallel` at
/// a time, looking again for new ones as it goes, and leave a marker for
/// each one committed. It ends when none is left, or after the first
/// failure (the pushes under way finish first): PostgreSQL's own call for
/// that file then pushes it and reports why. One runs per spool (a lock
/// file); another one started meanwhile returns at once. Returns how many
/// it pushed.
///
/// # Errors
/// A file name that is not a WAL file's; nothing else.
pub async fn push_ready_after(
    sink: &dyn Sink,
    source: &str,
    after: &Path,
    level: i32,
    ahead: &LookAhead,
    recipients: Option<&crate::crypt::Recipients>,
) -> Result<usize> {
    use futures::StreamExt;
    use rustix::fs::{FlockOperation, flock};
    crate::manifest::check_source_name(source)?;
    let name = after
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::usage(format!("{} has no file name", after.display())))?;
    parse_name(name)?;
    let spool = &ahead.spool;
    if !spool_usable(spool, "not pushing ahead").await {
        return Ok(0);
    }
    let Ok(lock) = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(pusher_lock(spool))
    else {
        return Ok(0);
    };
    if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(0);
    }
    let mut state = PusherState {
        after: name.to_string(),
        frontier: name.to_string(),
        ..PusherState::default()
    };
    let publish = |st: &PusherState| {
        write_atomically(
            &pusher_state_path(spool),
            &serde_json::to_vec(st).expect("serializes"),
        )
        .is_ok()
    };
    if !publish(&state) {
        return Ok(0);
    }
    let dir = after.parent().unwrap_or(Path::new(".")).to_path_buf();
    let parallel = ahead.parallel.max(1);
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    let mut queue = std::collections::VecDeque::new();
    let mut running = futures::stream::FuturesUnordered::new();
    let mut in_flight: Vec<String> = Vec::new();
    let mut pushed = 0;
    loop {
        while !state.draining && running.len() < parallel {
            if queue.is_empty() {
                let more = ready_after(&dir, &state.frontier, spool, parallel * 4);
                if let Some(last) = more.last() {
                    state.frontier = name_of(last);
                }
                queue.extend(more);
            }
            let Some(p) = queue.pop_front() else { break };
            in_flight.push(name_of(&p));
            running.push(async move {
                let r = push_with(sink, source, &p, level, recipients).await;
                (p, r)
            });
        }
        // What a waiting call may count on, before waiting for the next
        // one to finish: what is under way and what is queued.
        state.pending = in_flight
            .iter()
            .cloned()
            .chain(queue.iter().map(|p: &PathBuf| name_of(p)))
            .collect();
        if !publish(&state) {
            state.draining = true;
        }
        let Some((p, r)) = running.next().await else {
            break;
        };
        match r {
            Ok(r) => {
                crate::failpoint::point("wal-push:ahead-committed");
                crate::failpoint::pause("wal-push:ahead-committed").await;
                if write_marker(sink, spool, &p, &r) {
                    pushed += 1;
                } else {
                    state.draining = true;
                    tracing::warn!(file = %r.name, spool = %spool.display(), "pushed, but its marker cannot be written; taking no more");
                }
            }
            Err(e) => {
                state.draining = true;
                tracing::warn!(file = %p.display(), error = %e.display_chain(), "could not push ahead; PostgreSQL will ask for it again");
            }
        }
        // Not pending any more: a call waiting for it finds the marker
        // (or, with none, pushes it itself once the state says so).
        let done = name_of(&p);
        in_flight.retain(|n| *n != done);
        if state.draining {
            queue.clear();
        }
    }
    let _ = std::fs::remove_file(pusher_state_path(spool));
    tracing::info!(after = %name, pushed, "background pusher done");
    drop(lock);
    Ok(pushed)
}

/// Whether `spool` can be used: created if need be, ours, and private
/// (what is in it vouches for stored objects). A spool that cannot be used
/// is a warning, never a failure.
async fn spool_usable(spool: &Path, otherwise: &'static str) -> bool {
    let spool = spool.to_path_buf();
    blocking(move || {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let ok = std::fs::create_dir_all(&spool)
            .and_then(|()| std::fs::metadata(&spool))
            .and_then(|m| {
                if Some(m.uid()) != crate::rt::effective_uid() {
                    return Err(std::io::Error::other("it belongs to another user"));
                }
                std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700))
            });
        Ok::<_, Error>(match ok {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(spool = %spool.display(), error = %e, "the WAL spool directory cannot be used; {otherwise}");
                false
            }
        })
    })
    .await
    .unwrap_or(false)
}

/// An object from [`codec::encode_with_metadata`] with what follows its
/// metadata frame encrypted.
fn seal(plain: &[u8], r: &crate::crypt::Recipients) -> std::io::Result<Vec<u8>> {
    let (_, payload) = codec::split_metadata(plain).map_err(std::io::Error::other)?;
    let head = plain.len() - payload.len();
    let mut out = plain[..head].to_vec();
    out.extend(r.encrypt(payload)?);
    Ok(out)
}

/// The metadata of a stored WAL object, without opening the rest.
pub(crate) fn read_meta(stored: &[u8]) -> std::result::Result<WalObject, String> {
    let (meta, _) = codec::split_metadata(stored)?;
    serde_json::from_slice(meta).map_err(|e| format!("unreadable metadata: {e}"))
}

/// Check `h` against the archive's record, writing the record when this is
/// the archive's first segment.
async fn check_archive(sink: &dyn Sink, source: &str, h: &WalHeader, name: &str) -> Result<()> {
    let key = layout::wal_archive_key(source);
    let info = match sink.get_bytes(&key).await {
        Ok(raw) => parse_info(&key, &raw)?,
        Err(Error::NotFound { .. }) => {
            let mine = ArchiveInfo::of(h);
            let body = serde_json::to_vec_pretty(&mine).expect("serializes");
            match sink
                .put(&key, Bytes::from(body), PutOptions::create_only())
                .await
            {
                Ok(()) => {
                    tracing::info!(%key, system_identifier = h.system_identifier, "new WAL archive");
                    crate::failpoint::point("wal-push:archive-info-written");
                    return Ok(());
                }
                // Another push wrote it first: check against theirs.
                Err(Error::AlreadyExists { .. }) => parse_info(&key, &sink.get_bytes(&key).await?)?,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    match info.mismatch(h) {
        Some(why) => Err(refuse(name, why)),
        None => Ok(()),
    }
}

fn parse_info(key: &str, raw: &[u8]) -> Result<ArchiveInfo> {
    match serde_json::from_slice::<ArchiveInfo>(raw) {
        Ok(i) if i.format == ARCHIVE_FORMAT => Ok(i),
        Ok(i) => Err(Error::verification(
            "wal-archive",
            format!("{key} is of format {:?}, not {ARCHIVE_FORMAT}", i.format),
        )),
        Err(e) => Err(Error::verification(
            "wal-archive",
            format!("{key} cannot be read ({e}): nothing is archived or fetched until it is fixed"),
        )),
    }
}

/// Fetch the archived WAL file `name` of source `source` into `dest`
/// (PostgreSQL's `restore_command`, with `%f` as `name` and `%p` as
/// `dest`).
///
/// # Errors
/// [`Error::NotFound`] when the archive has no such file; [`Error::Usage`]
/// for a name that is not a WAL file's; [`Error::Verification`] when the
/// stored object does not match its record; [`Error::Restore`] when `dest`
/// cannot be written; sink errors.
pub async fn fetch(
    sink: &dyn Sink,
    source: &str,
    name: &str,
    dest: &Path,
) -> Result<WalFetchReport> {
    fetch_with(sink, source, name, dest, None).await
}

/// [`fetch`], decrypting an encrypted object with `keys`.
///
/// # Errors
/// As [`fetch`], and [`Error::Verification`] when the object is encrypted
/// and no key opens it.
pub async fn fetch_with(
    sink: &dyn Sink,
    source: &str,
    name: &str,
    dest: &Path,
    keys: Option<&crate::crypt::Identities>,
) -> Result<WalFetchReport> {
    let t0 = Instant::now();
    crate::manifest::check_source_name(source)?;
    let wal = parse_name(name)?;
    let key = layout::wal_segment_key(source, wal.timeline(), name);
    let stored = sink.get_bytes(&key).await?;
    install(&key, stored, name, dest, false, t0, keys).await
}

/// Decode a stored WAL object, check it against its own record (name, size,
/// SHA-256) and write it atomically to `dest`.
async fn install(
    key: &str,
    stored: Bytes,
    name: &str,
    dest: &Path,
    prefetched: bool,
    t0: Instant,
    keys: Option<&crate::crypt::Identities>,
) -> Result<WalFetchReport> {
    let bad = |why: String| Error::verification("wal-fetch", format!("{key}: {why}"));
    let keys = keys.cloned();
    // Decrypting, decompressing and hashing 16 MiB is blocking work.
    let (meta, data, sha256) = blocking(move || open_object(&stored, keys.as_ref()))
        .await
        .map_err(bad)?;
    if meta.name != name {
        return Err(bad(format!(
            "the stored file does not match its record (it says it is {}, not {name})",
            meta.name
        )));
    }
    let size = data.len() as u64;
    let dest_path = dest.to_path_buf();
    blocking(move || write_atomically(&dest_path, &data)).await?;
    Ok(WalFetchReport {
        name: name.to_string(),
        path: dest.to_path_buf(),
        size,
        sha256,
        prefetched,
        duration: t0.elapsed(),
    })
}

/// [`fetch`], reading ahead: segments after the one asked for are fetched,
/// decoded and checked (their own name, size and SHA-256) into
/// `ahead.spool`, each with a mark that vouches for it; PostgreSQL's next
/// calls then only move the file into place. A spooled file is used only
/// while it is the very file its mark was written for (inode, size,
/// modification time); one that is not is dropped and read from the sink.
///
/// Who fills the spool: with [`fill_in_background`] (the CLI), a detached
/// `wal fetch` of the same command line ([`FILLER_ENV`]) keeps
/// `parallel × 2` segments ready ahead while the server replays, started on
/// a miss and whenever fewer than `parallel` are left; without it, a miss
/// fetches the next `parallel - 1` segments together with its own. The
/// spool never fails a fetch: unusable, it only turns read-ahead off.
///
/// # Errors
/// As [`fetch`].
pub async fn fetch_ahead(
    sink: &dyn Sink,
    source: &str,
    name: &str,
    dest: &Path,
    ahead: Option<&LookAhead>,
    keys: Option<&crate::crypt::Identities>,
) -> Result<WalFetchReport> {
    use crate::source::postgres::walfile::WalFileKind;
    let Some(ahead) = ahead.filter(|a| a.parallel > 1) else {
        return fetch_with(sink, source, name, dest, keys).await;
    };
    let t0 = Instant::now();
    crate::manifest::check_source_name(source)?;
    let wal = parse_name(name)?;
    let spool = ahead.spool.clone();
    if wal.kind() != WalFileKind::Segment
        || !spool_usable(&spool, "fetching one file at a time").await
    {
        return fetch_with(sink, source, name, dest, keys).await;
    }
    let (taken, ready) = {
        let (spool, name, dest) = (spool.clone(), name.to_string(), dest.to_path_buf());
        blocking(move || {
            clean_spool(&spool, &name);
            // Where recovery is, for a filler running meanwhile.
            let _ = std::fs::write(spool.join(".position"), &name);
            let taken = take_spooled(&spool, &name, &dest);
            Ok::<_, Error>((taken, marks_after(&spool, &name)))
        })
        .await?
    };
    if let Some((size, sha256)) = taken {
        // Keep the queue topped up while the server replays this one.
        if ready < ahead.parallel {
            spawn_filler(&spool);
        }
        return Ok(WalFetchReport {
            name: name.to_string(),
            path: dest.to_path_buf(),
            size,
            sha256,
            prefetched: true,
            duration: t0.elapsed(),
        });
    }
    if spawn_filler(&spool) {
        return fetch_with(sink, source, name, dest, keys).await;
    }
    let (own, _) = tokio::join!(
        fetch_with(sink, source, name, dest, keys),
        fill_after(sink, source, &wal, ahead, ahead.parallel - 1, keys)
    );
    own
}

/// The environment variable that makes `wal fetch %f %p` a spool filler
/// (with the ticket [`background_role`] checks): it fills the spool with
/// the segments after `%f` and writes nothing to `%p`. Set without a
/// ticket, `wal fetch` fails (exit 200), so that a stray setting stops a
/// recovery instead of feeding it nothing.
pub const FILLER_ENV: &str = "LIFEBOAT_WAL_FETCH_FILLER";

/// How many segments a background filler keeps ready: `parallel` × this.
const QUEUE_FACTOR: usize = 2;

static BACKGROUND: std::sync::OnceLock<(PathBuf, Vec<std::ffi::OsString>)> =
    std::sync::OnceLock::new();

/// Let [`fetch_ahead`] fill its spool from a detached process: `exe` run
/// with `args` (this very `wal fetch` command line) and [`FILLER_ENV`]
/// set. The CLI calls it; a library caller without a command line to
/// repeat keeps filling the spool inline.
pub fn fill_in_background(exe: PathBuf, args: Vec<std::ffi::OsString>) {
    let _ = BACKGROUND.set((exe, args));
}

/// Start a detached filler for `spool`; false when there is no command
/// line to run (or it cannot be started).
fn spawn_filler(spool: &Path) -> bool {
    match BACKGROUND.get() {
        Some(cmd) if std::env::var_os(FILLER_ENV).is_none() => {
            spawn_background(cmd, FILLER_ENV, spool, "filler.log")
        }
        _ => false,
    }
}

/// What a `wal push` or `wal fetch` process is, by its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundRole {
    /// The variable is not set: the server's own call.
    Foreground,
    /// A helper another call started ([`spawn_background`]'s ticket was
    /// in the spool, and is now used up).
    Helper,
    /// The variable is set, with no ticket for it: a stray setting.
    Stray,
}

/// Which role the variable `var` gives this process, for `spool`. A helper
/// is recognised by a one-time ticket its starter left in the spool (a
/// private directory), so a variable copied into the server's environment
/// never turns a call into a helper.
pub fn background_role(var: &str, spool: &Path) -> BackgroundRole {
    let Some(v) = std::env::var_os(var) else {
        return BackgroundRole::Foreground;
    };
    let v = v.to_string_lossy();
    let well_formed = v.len() == 16 && v.chars().all(|c| c.is_ascii_hexdigit());
    if well_formed && std::fs::remove_file(ticket_path(spool, &v)).is_ok() {
        BackgroundRole::Helper
    } else {
        BackgroundRole::Stray
    }
}

fn ticket_path(spool: &Path, nonce: &str) -> PathBuf {
    spool.join(format!(".ticket-{nonce}"))
}

/// Start `cmd` detached (its own process group, no stdin or stdout) with
/// `var` set to a fresh one-time ticket left in `spool`, its log appended
/// to `spool/<log>` (emptied first once it passes 1 MiB). Such a helper
/// ends with exit 0 whatever it met (see [`background_role`]): once its
/// starter has exited it is the child of PID 1, which in a container may
/// be the server itself, and a server counts any other status of a child
/// it reaps as a crash of one of its own.
fn spawn_background(
    cmd: &(PathBuf, Vec<std::ffi::OsString>),
    var: &str,
    spool: &Path,
    log: &str,
) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let nonce = format!("{:016x}", rand::random::<u64>());
    let ticket = ticket_path(spool, &nonce);
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&ticket)
        .is_err()
    {
        return false;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(spool.join(log))
        .and_then(|f| {
            if f.metadata()?.len() > 1 << 20 {
                f.set_len(0)?;
            }
            Ok(f)
        });
    let stderr = log.map_or_else(|_| std::process::Stdio::null(), std::process::Stdio::from);
    let started = std::process::Command::new(&cmd.0)
        .args(&cmd.1)
        .env(var, &nonce)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        // Out of the server's process group: its signals are for its own.
        .process_group(0)
        .spawn()
        .is_ok();
    if !started {
        let _ = std::fs::remove_file(&ticket);
    }
    started
}

/// What vouches for a file in the fetch spool: its SHA-256 and size as
/// checked against the stored object, and the identity of the file it
/// was written to.
#[derive(Debug, Serialize, Deserialize)]
struct SpoolMark {
    sha256: String,
    size: u64,
    identity: (u64, u64, i64, i64),
}

fn spool_mark(spool: &Path, name: &str) -> PathBuf {
    spool.join(format!("{name}.ok"))
}

/// Remove from the spool what is of no use any more: files (and marks)
/// before `name`, the spool of older versions (`.zst`), and temporary
/// files a killed writer left (a minute old).
fn clean_spool(spool: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return;
    };
    for e in entries.flatten() {
        let f = e.file_name().to_string_lossy().to_string();
        let stale = if f.ends_with(".tmp") {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(60))
        } else if f.starts_with('.') {
            false
        } else if let Some(n) = f.strip_suffix(".zst") {
            n <= name
        } else {
            f.strip_suffix(".ok").unwrap_or(&f) < name
        };
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// How many vouched-for files the spool holds after `name`.
fn marks_after(spool: &Path, name: &str) -> usize {
    std::fs::read_dir(spool).map_or(0, |d| {
        d.flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|f| f.strip_suffix(".ok"))
                    .is_some_and(|n| n > name)
            })
            .count()
    })
}

/// Move `name` from the spool to `dest` when its mark vouches for it;
/// its size and SHA-256 then. `None` when it is not there, or not the
/// file its mark was written for (then both go, with a warning).
fn take_spooled(spool: &Path, name: &str, dest: &Path) -> Option<(u64, String)> {
    let mark_path = spool_mark(spool, name);
    let raw = std::fs::read(&mark_path).ok()?;
    let path = spool.join(name);
    let mark = serde_json::from_slice::<SpoolMark>(&raw)
        .ok()
        .filter(|m| file_identity(&path) == Some(m.identity) && m.identity.1 == m.size);
    let _ = std::fs::remove_file(&mark_path);
    let Some(mark) = mark else {
        tracing::warn!(file = %name, "the spooled copy is not the file its mark vouches for; reading it from the sink");
        let _ = std::fs::remove_file(&path);
        return None;
    };
    let moved = match std::fs::rename(&path, dest) {
        Ok(()) => Ok(()),
        // The spool is on another file system: copy, then drop it.
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|data| write_atomically(dest, &data).map_err(|e| e.display_chain()))
            .map(|()| {
                let _ = std::fs::remove_file(&path);
            }),
        Err(e) => Err(e.to_string()),
    };
    match moved {
        Ok(()) => Some((mark.size, mark.sha256)),
        Err(e) => {
            tracing::warn!(file = %name, error = %e, "could not take the spooled copy; reading it from the sink");
            let _ = std::fs::remove_file(&path);
            None
        }
    }
}

/// Decode and check a stored object (as [`fetch`] does) and put its file
/// into the spool, then the mark that vouches for it.
fn spool_object(
    spool: &Path,
    name: &str,
    stored: &[u8],
    keys: Option<&crate::crypt::Identities>,
) -> std::result::Result<(), String> {
    let (meta, data, sha256) = open_object(stored, keys)?;
    if meta.name != name {
        return Err(format!(
            "the stored file does not match its record (it says it is {})",
            meta.name
        ));
    }
    let path = spool.join(name);
    write_atomically(&path, &data).map_err(|e| e.display_chain())?;
    let identity = file_identity(&path).ok_or("the spooled file is gone")?;
    let mark = SpoolMark {
        sha256,
        size: data.len() as u64,
        identity,
    };
    let body = serde_json::to_vec(&mark).map_err(|e| e.to_string())?;
    write_atomically(&spool_mark(spool, name), &body).map_err(|e| e.display_chain())
}

/// Fill the spool with the segments after `after` (PostgreSQL's `%f`) for
/// a recovery: `ahead.parallel × 2` of them, `ahead.parallel` at a time,
/// until the archive has no more. One filler per spool at a time (a lock
/// file); another one started meanwhile returns at once. Returns how many
/// segments it spooled.
///
/// # Errors
/// A name that is not a WAL file's; nothing else (what cannot be fetched
/// ahead is fetched by PostgreSQL's own call).
pub async fn fill(
    sink: &dyn Sink,
    source: &str,
    after: &str,
    ahead: &LookAhead,
    keys: Option<&crate::crypt::Identities>,
) -> Result<usize> {
    use crate::source::postgres::walfile::WalFileKind;
    crate::manifest::check_source_name(source)?;
    let wal = parse_name(after)?;
    if wal.kind() != WalFileKind::Segment || !spool_usable(&ahead.spool, "not fetching ahead").await
    {
        return Ok(0);
    }
    Ok(fill_after(
        sink,
        source,
        &wal,
        ahead,
        ahead.parallel.max(1) * QUEUE_FACTOR,
        keys,
    )
    .await)
}

/// Spool up to `count` segments after `wal` on its timeline that the spool
/// lacks, `ahead.parallel` at a time, stopping where the archive ends.
/// Returns how many it spooled; none when another filler holds the spool.
async fn fill_after(
    sink: &dyn Sink,
    source: &str,
    wal: &WalFileName,
    ahead: &LookAhead,
    count: usize,
    keys: Option<&crate::crypt::Identities>,
) -> usize {
    use rustix::fs::{FlockOperation, flock};
    let spool = &ahead.spool;
    let Ok(lock) = std::fs::File::create(spool.join(".fill.lock")) else {
        return 0;
    };
    if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
        return 0;
    }
    let segment_size = ArchiveListing::segment_size(sink, source)
        .await
        .ok()
        .flatten()
        .unwrap_or(DEFAULT_SEGMENT_SIZE);
    let Some(segno) = wal.segment_number(segment_size) else {
        return 0;
    };
    let wanted: Vec<String> = (1..=count as u64)
        .map(|i| {
            format!(
                "{:08X}{}",
                wal.timeline(),
                segment_position_name(segno + i, segment_size)
            )
        })
        .filter(|n| !spool_mark(spool, n).exists())
        .collect();
    let mut spooled = 0;
    for batch in wanted.chunks(ahead.parallel.max(1)) {
        // Recovery may have moved past some of them meanwhile.
        let position = std::fs::read_to_string(spool.join(".position")).unwrap_or_default();
        let batch: Vec<&String> = batch
            .iter()
            .filter(|n| n.as_str() > position.as_str())
            .collect();
        let got = futures::future::join_all(batch.into_iter().map(|n| async move {
            let key = layout::wal_segment_key(source, wal.timeline(), n);
            match sink.get_bytes(&key).await {
                Ok(stored) => {
                    let (spool, n2, keys) = (spool.clone(), n.clone(), keys.cloned());
                    let r = blocking(move || {
                        Ok::<_, Error>(spool_object(&spool, &n2, &stored, keys.as_ref()))
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.display_chain()));
                    (n, Some(r))
                }
                Err(Error::NotFound { .. }) => (n, None),
                Err(e) => (n, Some(Err(e.display_chain()))),
            }
        }))
        .await;
        let mut end = false;
        for (n, r) in got {
            match r {
                Some(Ok(())) => spooled += 1,
                // The end of the archive (for now).
                None => end = true,
                Some(Err(e)) => {
                    end = true;
                    tracing::warn!(file = %n, error = %e, "could not fetch ahead; it is read again when PostgreSQL asks for it");
                }
            }
        }
        if end {
            break;
        }
    }
    if spooled > 0 {
        tracing::debug!(after = %wal.as_str(), spooled, "fetched the next segments ahead");
    }
    drop(lock);
    spooled
}

/// A stored WAL object opened: its metadata, and its file decrypted (with
/// `keys`, when the metadata says it is encrypted) and decompressed, with
/// its SHA-256, checked against the metadata's size and SHA-256.
///
/// # Errors
/// A message saying what does not match or cannot be read.
pub(crate) fn open_object(
    stored: &[u8],
    keys: Option<&crate::crypt::Identities>,
) -> std::result::Result<(WalObject, Vec<u8>, String), String> {
    let (meta, rest) = codec::split_metadata(stored)?;
    let meta: WalObject =
        serde_json::from_slice(meta).map_err(|e| format!("unreadable metadata: {e}"))?;
    let opened;
    let payload = match &meta.encryption {
        None => rest,
        Some(enc) => {
            let keys = keys.ok_or_else(|| {
                format!("it is encrypted ({enc}): give the identity file (--identity)")
            })?;
            opened = keys.decrypt(rest)?;
            &opened[..]
        }
    };
    let data =
        zstd::stream::decode_all(payload).map_err(|e| format!("does not decompress: {e}"))?;
    let sha256 = hex::encode(Sha256::digest(&data));
    if meta.size != data.len() as u64 || meta.sha256 != sha256 {
        return Err(format!(
            "the stored file does not match its record (name {}, {} bytes, SHA-256 {}; read: {} bytes, {sha256})",
            meta.name,
            meta.size,
            meta.sha256,
            data.len()
        ));
    }
    Ok((meta, data, sha256))
}

/// Write `data` to a temporary file beside `dest` and rename it over
/// `dest`: `dest` is either absent (or as it was) or complete. No fsync:
/// PostgreSQL makes a file it keeps from `restore_command` durable itself
/// (`durable_rename` in `KeepFileRestoredFromArchive`), a file it only
/// reads during recovery is fetched again after a crash, and a spooled
/// file is checked before use. (The fsync cost 32 ms of the 120-150 ms of
/// a fetch, measured with strace in the pgBackRest comparison.)
fn write_atomically(dest: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |what: &str, e: std::io::Error| {
        Error::restore_err(dest.display().to_string(), format!("{what}: {e}"))
    };
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file = dest
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} has no file name", dest.display())))?;
    let tmp = dir.join(format!(
        ".{}.lifeboat-{:08x}.tmp",
        file.to_string_lossy(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| err("cannot create a temporary file beside it", e))?;
        crate::rt::write_in_pieces(&mut f, data).map_err(|e| err("cannot write", e))?;
        std::fs::rename(&tmp, dest).map_err(|e| err("cannot move into place", e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The server's side of archiving: its `pg_stat_archiver` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiverStats {
    /// Files `archive_command` archived since the statistics were reset.
    pub archived_count: i64,
    /// The newest file it archived.
    pub last_archived_wal: Option<String>,
    /// When.
    pub last_archived_time: Option<DateTime<Utc>>,
    /// Times `archive_command` failed.
    pub failed_count: i64,
    /// The file of the newest failure.
    pub last_failed_wal: Option<String>,
    /// When.
    pub last_failed_time: Option<DateTime<Utc>>,
}

impl ArchiverStats {
    /// Read the server's `pg_stat_archiver` row.
    ///
    /// # Errors
    /// A connection or query failure.
    pub async fn read(conn: &crate::source::postgres::PgConn) -> Result<Self> {
        Self::query(&conn.connect().await?, conn).await
    }

    /// [`read`](Self::read) over a connection already open to `conn`.
    ///
    /// # Errors
    /// A query failure.
    pub async fn query(
        client: &tokio_postgres::Client,
        conn: &crate::source::postgres::PgConn,
    ) -> Result<Self> {
        let row = client
            .query_one(
                "SELECT json_build_object('archived_count', archived_count, 'last_archived_wal', last_archived_wal, 'last_archived_time', last_archived_time, 'failed_count', failed_count, 'last_failed_wal', last_failed_wal, 'last_failed_time', last_failed_time)::text FROM pg_stat_archiver",
                &[],
            )
            .await
            .map_err(|e| Error::source_err(conn.location(), format!("cannot read pg_stat_archiver: {e}")))?;
        let text: String = row.get(0);
        serde_json::from_str(&text).map_err(|e| {
            Error::source_err(
                conn.location(),
                format!("unexpected pg_stat_archiver row {text}: {e}"),
            )
        })
    }

    /// Whether `archive_command` is failing now: its newest failure came
    /// after its newest success.
    pub fn failing(&self) -> bool {
        match (self.last_failed_time, self.last_archived_time) {
            (Some(f), Some(a)) => f > a,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectStoreSink;

    /// A fake 16 MiB segment of cluster `sysid` named `name`.
    fn segment(name: &str, sysid: u64, fill: u8) -> Vec<u8> {
        let n = WalFileName::parse(name).unwrap();
        let size = 16u32 << 20;
        let mut b = vec![fill; size as usize];
        b[0..40].fill(0);
        b[0..2].copy_from_slice(&0xD110u16.to_ne_bytes());
        b[2..4].copy_from_slice(&0x0002u16.to_ne_bytes());
        b[4..8].copy_from_slice(&n.timeline().to_ne_bytes());
        let addr = n.segment_number(size).unwrap() * u64::from(size);
        b[8..16].copy_from_slice(&addr.to_ne_bytes());
        b[24..32].copy_from_slice(&sysid.to_ne_bytes());
        b[32..36].copy_from_slice(&size.to_ne_bytes());
        b[36..40].copy_from_slice(&8192u32.to_ne_bytes());
        b
    }

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    #[tokio::test]
    async fn push_is_idempotent_refuses_a_different_file_and_a_foreign_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ObjectStoreSink::memory();
        let seg = "000000010000000000000003";
        let p = write(dir.path(), seg, &segment(seg, 42, 7));
        let r = push(&sink, "app", &p, 3).await.unwrap();
        assert!(!r.already_archived);
        assert_eq!(r.key, "app/wal/00000001/000000010000000000000003.zst");
        assert!(r.stored_size < r.size / 100, "{r:?}");
        let info: ArchiveInfo =
            serde_json::from_slice(&sink.get_bytes("app/wal/archive.json").await.unwrap()).unwrap();
        assert_eq!(info.system_identifier, "42");

        // The same file again: success, nothing written.
        assert!(push(&sink, "app", &p, 3).await.unwrap().already_archived);

        // Different bytes under the same name: refused, the stored one stays.
        let other_dir = tempfile::tempdir().unwrap();
        let p2 = write(other_dir.path(), seg, &segment(seg, 42, 8));
        let e = push(&sink, "app", &p2, 3).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Verification, "{e}");
        assert!(e.to_string().contains("never overwritten"), "{e}");
        let out = dir.path().join("restored");
        let f = fetch(&sink, "app", seg, &out).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), segment(seg, 42, 7));
        assert_eq!(f.sha256, r.sha256);

        // Another cluster's segment: refused before anything is stored.
        let seg4 = "000000010000000000000004";
        let p3 = write(other_dir.path(), seg4, &segment(seg4, 43, 7));
        let e = push(&sink, "app", &p3, 3).await.unwrap_err();
        assert!(e.to_string().contains("system identifier 43"), "{e}");
        assert!(matches!(
            sink.head("app/wal/00000001/000000010000000000000004.zst")
                .await,
            Err(Error::NotFound { .. })
        ));
        // Under its own name it is welcome.
        push(&sink, "other", &p3, 3).await.unwrap();

        // A segment whose header is not where its name says.
        let p4 = write(
            other_dir.path(),
            "000000010000000000000005",
            &segment(seg4, 42, 7),
        );
        let e = push(&sink, "app", &p4, 3).await.unwrap_err();
        assert!(e.to_string().contains("as its name says"), "{e}");
        // Not a WAL file name at all.
        let p5 = write(other_dir.path(), "notes.txt", b"x");
        assert_eq!(
            push(&sink, "app", &p5, 3).await.unwrap_err().kind(),
            crate::ErrorKind::Usage
        );
    }

    #[tokio::test]
    async fn fetch_reads_ahead_in_batches_and_checks_what_it_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ObjectStoreSink::memory();
        let names: Vec<String> = (1..=5)
            .map(|i| format!("0000000100000000000000{i:02X}"))
            .collect();
        for (i, n) in names.iter().enumerate() {
            let p = write(dir.path(), n, &segment(n, 42, i as u8 + 1));
            push(&sink, "app", &p, 1).await.unwrap();
        }
        let spool = dir.path().join("spool");
        let ahead = LookAhead {
            parallel: 3,
            spool: spool.clone(),
        };
        let out = dir.path().join("out");
        let get = |i: usize| {
            let (sink, names, ahead, out) = (&sink, &names, &ahead, &out);
            async move { fetch_ahead(sink, "app", &names[i], out, Some(ahead), None).await }
        };
        // A miss fetches the file and the next two into the spool, decoded
        // and checked, each with its mark.
        let r = get(0).await.unwrap();
        assert!(!r.prefetched);
        assert_eq!(std::fs::read(&out).unwrap(), segment(&names[0], 42, 1));
        let listing = || {
            let mut v: Vec<String> = std::fs::read_dir(&spool)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('.'))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            listing(),
            [
                names[1].clone(),
                format!("{}.ok", names[1]),
                names[2].clone(),
                format!("{}.ok", names[2])
            ]
        );
        assert_eq!(
            std::fs::read(spool.join(&names[1])).unwrap(),
            segment(&names[1], 42, 2)
        );
        // The next call is served from the spool and takes it out.
        let r = get(1).await.unwrap();
        assert!(r.prefetched);
        assert_eq!(
            r.sha256,
            hex::encode(Sha256::digest(segment(&names[1], 42, 2)))
        );
        assert_eq!(std::fs::read(&out).unwrap(), segment(&names[1], 42, 2));
        assert!(!spool.join(&names[1]).exists());
        assert!(!spool_mark(&spool, &names[1]).exists());
        // A spooled file that is not the one its mark vouches for (written
        // again since) is dropped and read from the sink: never handed to
        // PostgreSQL.
        let bad = spool.join(&names[2]);
        let mut raw = std::fs::read(&bad).unwrap();
        raw[100] ^= 0xff;
        std::thread::sleep(Duration::from_millis(20));
        std::fs::remove_file(&bad).unwrap();
        std::fs::write(&bad, raw).unwrap();
        let r = get(2).await.unwrap();
        assert!(!r.prefetched);
        assert_eq!(std::fs::read(&out).unwrap(), segment(&names[2], 42, 3));
        // A filler fills parallel × 2 ahead, up to the archive's end; one
        // started while another holds the spool does nothing.
        let ahead2 = LookAhead {
            parallel: 2,
            spool: dir.path().join("spool2"),
        };
        std::fs::create_dir(&ahead2.spool).unwrap();
        let lock = std::fs::File::create(ahead2.spool.join(".fill.lock")).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        assert_eq!(
            fill(&sink, "app", &names[0], &ahead2, None).await.unwrap(),
            0
        );
        drop(lock);
        assert_eq!(
            fill(&sink, "app", &names[0], &ahead2, None).await.unwrap(),
            4
        );
        for (i, n) in names.iter().enumerate().skip(1) {
            let r = fetch_ahead(&sink, "app", n, &out, Some(&ahead2), None)
                .await
                .unwrap();
            assert!(r.prefetched, "{n}");
            assert_eq!(std::fs::read(&out).unwrap(), segment(n, 42, i as u8 + 1));
        }
        // What recovery has already passed is not fetched again.
        let ahead3 = LookAhead {
            parallel: 2,
            spool: dir.path().join("spool3"),
        };
        std::fs::create_dir(&ahead3.spool).unwrap();
        std::fs::write(ahead3.spool.join(".position"), &names[2]).unwrap();
        assert_eq!(
            fill(&sink, "app", &names[0], &ahead3, None).await.unwrap(),
            2
        );
        assert!(!spool_mark(&ahead3.spool, &names[2]).exists());
        assert!(spool_mark(&ahead3.spool, &names[3]).exists());
        // Past the end of the archive: not found, as without read-ahead.
        let e = fetch_ahead(
            &sink,
            "app",
            "000000010000000000000009",
            &out,
            Some(&ahead),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
    }

    #[tokio::test]
    async fn history_files_push_and_fetch_missing_is_not_found_and_corruption_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let sink = ObjectStoreSink::memory();
        let p = write(
            dir.path(),
            "00000002.history",
            b"1\t0/3000000\tno recovery target specified\n",
        );
        let r = push(&sink, "app", &p, 3).await.unwrap();
        assert_eq!(r.key, "app/wal/00000002/00000002.history.zst");
        let out = dir.path().join("RECOVERYHISTORY");
        fetch(&sink, "app", "00000002.history", &out).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&p).unwrap());

        let e = fetch(&sink, "app", "00000003.history", &out)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound, "{e}");

        // A stored object whose bytes changed: never written to dest.
        let key = "app/wal/00000001/000000010000000000000009.zst";
        let meta = serde_json::to_vec(&WalObject {
            name: "000000010000000000000009".into(),
            size: 3,
            sha256: "00".repeat(32),
            system_identifier: None,
            encryption: None,
        })
        .unwrap();
        let stored = codec::encode_with_metadata(&meta, b"abc", 3).unwrap();
        sink.put(key, Bytes::from(stored), PutOptions::default())
            .await
            .unwrap();
        let dest = dir.path().join("RECOVERYXLOG");
        let e = fetch(&sink, "app", "000000010000000000000009", &dest)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Verification, "{e}");
        assert!(!dest.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains("lifeboat"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn archived_objects_decompress_with_zstd_alone() {
        let stored = codec::encode_with_metadata(b"{}", b"hello wal", 3).unwrap();
        // The skippable frame is skipped by any zstd decoder.
        assert_eq!(zstd::stream::decode_all(&stored[..]).unwrap(), b"hello wal");
    }
}
