//! SQLite through the online backup API.
//!
//! Backup: a checkpoint that never stalls the application (PASSIVE, then
//! TRUNCATE bounded to 200 ms); with the WAL then empty, the database file
//! itself is streamed inside one read transaction; otherwise
//! `sqlite3_backup_step(-1)` copies every page inside one read transaction
//! into a private `0600` snapshot file. Other processes keep
//! writing meanwhile (WAL mode), or wait on their busy timeout for the copy
//! (rollback-journal mode). The snapshot is streamed to the pipeline while
//! `PRAGMA integrity_check` and the exact row counts run on it; the backup
//! is only committed if the check passes.
//!
//! Restore: the decompressed stream goes to a hidden file beside the target,
//! is proven (checksum at end of stream, `integrity_check`, row counts equal
//! to the manifest's), and only then renamed over it in one atomic step
//! (see [`swap`] for the rules on replacing a live file).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{Dump, DumpOptions, DumpOutcome, RestoreOptions, RestoreOutcome, Source};
use crate::error::{Error, Result};
use crate::manifest::{Fingerprint, Manifest, TableCount, Verdict};
use crate::rt::blocking;

mod details;
mod swap;
pub(crate) mod verify;

pub use details::SqliteDetails;
pub use verify::{SqliteDrill, SqliteIntegrity};

const HEADER: &[u8; 16] = b"SQLite format 3\0";
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// The longest the TRUNCATE checkpoint may hold the writer lock waiting for
/// readers: an application writer waits at most this long (plus the
/// checkpoint's own I/O) on our account.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    path: PathBuf,
}

impl SqliteSource {
    /// A source for the database at `path` (made absolute against the
    /// current directory). Nothing is opened until it is used.
    pub fn new(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.to_path_buf())
        };
        Self { path }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::source_err(self.location(), message)
    }

    fn restore_err(&self, message: impl Into<String>) -> Error {
        Error::restore_err(self.path.display().to_string(), message)
    }
}

/// `path` with symlinks, `.` and `..` resolved: the file itself if it
/// exists, else its (resolved) directory joined with its name, else `path`
/// with `.` and `..` removed lexically.
pub(crate) fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
        && let Ok(p) = fs::canonicalize(parent)
    {
        return p.join(name);
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Check that `path` is an existing SQLite database file, without creating or
/// modifying anything.
fn check_database_file(path: &Path) -> std::result::Result<(), String> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("database file {} does not exist", path.display()));
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(format!("cannot read {}: permission denied", path.display()));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut header = [0u8; 16];
    let mut f = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => {
            format!("cannot read {}: permission denied", path.display())
        }
        _ => format!("cannot open {}: {e}", path.display()),
    })?;
    if f.read_exact(&mut header).is_err() || &header != HEADER {
        return Err(format!(
            "{} is not a SQLite database (no SQLite header)",
            path.display()
        ));
    }
    Ok(())
}

/// An SQLite URI that opens `path` read-only and immutable: no locks, no
/// `-wal`/`-shm` side files. Only for files nobody else writes (snapshots,
/// restore staging files).
fn immutable_uri(path: &Path) -> String {
    let mut out = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out.push_str("?immutable=1");
    out
}

fn open_immutable(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

fn describe(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => "not a SQLite database".into(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => format!("database is corrupt: {e}"),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            format!("database stayed locked: {e}")
        }
        _ => e.to_string(),
    }
}

/// Run `PRAGMA integrity_check` on a database file nobody else writes.
/// Returns `Ok(None)` when it reports `ok`, or the first problems found.
///
/// # Errors
/// The file cannot be opened as a database.
pub fn integrity_check(path: &Path) -> std::result::Result<Option<String>, String> {
    let conn = open_immutable(path).map_err(|e| describe(&e))?;
    integrity_check_conn(&conn)
}

fn integrity_check_conn(conn: &Connection) -> std::result::Result<Option<String>, String> {
    let mut stmt = conn
        .prepare("PRAGMA integrity_check(20)")
        .map_err(|e| describe(&e))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| describe(&e))?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(None)
    } else {
        Ok(Some(rows.join("; ")))
    }
}

/// Tables (not virtual ones) with exact row counts, and engine facts, of a
/// database file nobody else writes.
///
/// # Errors
/// The file cannot be read as a database.
pub fn fingerprint(path: &Path) -> std::result::Result<Fingerprint, String> {
    let conn = open_immutable(path).map_err(|e| describe(&e))?;
    fingerprint_conn(&conn)
}

fn fingerprint_conn(conn: &Connection) -> std::result::Result<Fingerprint, String> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| describe(&e))?;
    let mut counts = Vec::with_capacity(tables.len());
    for name in tables {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))
            .map_err(|e| format!("counting rows of {name}: {}", describe(&e)))?;
        counts.push(TableCount {
            name,
            rows: rows as u64,
        });
    }
    let mut fp = Fingerprint::new(counts, format!("SQLite {}", rusqlite::version()));
    let pragma =
        |name: &str| -> Option<i64> { conn.pragma_query_value(None, name, |r| r.get(0)).ok() };
    fp.details = SqliteDetails {
        page_size: pragma("page_size"),
        page_count: pragma("page_count"),
        user_version: pragma("user_version"),
        freelist_count: pragma("freelist_count"),
        ..Default::default()
    }
    .into_details();
    Ok(fp)
}

/// How the snapshot is taken.
enum Snapshot {
    /// WAL mode with an empty WAL: inside one read transaction the database
    /// file itself is the snapshot and cannot change (a checkpoint must
    /// lock read-mark 0, which this reader holds), so it is streamed as is.
    Direct {
        conn: Box<Connection>,
        /// A second reader of the same snapshot (also on an empty WAL), so
        /// the check and the counts can run side by side.
        second: Option<Box<Connection>>,
        size: u64,
    },
    /// Anything else: a copy through the online backup API.
    Copied,
}

fn open_source(src_path: &Path) -> std::result::Result<(Connection, String, bool), String> {
    check_database_file(src_path)?;
    let rw = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let src = match Connection::open_with_flags(src_path, rw) {
        Ok(c) => c,
        // A read-only file can still be backed up; only the checkpoint is skipped.
        Err(_) => Connection::open_with_flags(
            src_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("cannot open: {}", describe(&e)))?,
    };
    src.busy_timeout(LOCK_WAIT).map_err(|e| describe(&e))?;
    let journal_mode: String = src
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .map_err(|e| format!("cannot read: {}", describe(&e)))?;
    let journal_mode = journal_mode.to_ascii_lowercase();
    let mut checkpointed = false;
    if journal_mode == "wal" && !src.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        checkpointed = checkpoint_without_stalling(&src)?;
    }
    Ok((src, journal_mode, checkpointed))
}

/// Empty the WAL if that can be done at once, never holding up the
/// application: a PASSIVE checkpoint first (it takes no writer lock and
/// waits for nobody), then TRUNCATE with a short bound. TRUNCATE holds the
/// writer lock while it waits for readers on older snapshots, so a long
/// wait (SQLite's busy timeout) would make the application's writes fail
/// with "database is locked". When readers stay, the backup API copies the
/// snapshot instead (it blocks no writer in WAL mode).
fn checkpoint_without_stalling(src: &Connection) -> std::result::Result<bool, String> {
    let run = |mode: &str| -> std::result::Result<(i64, i64, i64), String> {
        src.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(|e| format!("wal_checkpoint({mode}) failed: {}", describe(&e)))
    };
    run("PASSIVE")?;
    src.busy_timeout(CHECKPOINT_WAIT)
        .map_err(|e| describe(&e))?;
    let truncated = src.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    src.busy_timeout(LOCK_WAIT).map_err(|e| describe(&e))?;
    match truncated {
        Ok((0, _, done)) => {
            tracing::debug!(checkpointed = done, "wal checkpoint done");
            Ok(true)
        }
        Ok((_, log, done)) => {
            tracing::info!(
                wal_frames = log,
                checkpointed = done,
                "readers are active, so the WAL stays; the snapshot is copied with the backup API instead"
            );
            Ok(false)
        }
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ) =>
        {
            tracing::info!(
                "a writer is active, so the WAL stays; the snapshot is copied with the backup API instead"
            );
            Ok(false)
        }
        Err(e) => Err(format!("wal_checkpoint(TRUNCATE) failed: {}", describe(&e))),
    }
}

/// Take the snapshot: directly when the WAL is empty, else copied into `dst`.
fn take_snapshot(src_path: &Path, dst: &Path) -> std::result::Result<(Snapshot, String), String> {
    let (src, journal_mode, checkpointed) = open_source(src_path)?;
    if checkpointed {
        src.execute_batch("BEGIN").map_err(|e| describe(&e))?;
        // The first read starts the read transaction and picks its read mark.
        let (pages, page_size): (i64, i64) = src
            .query_row(
                "SELECT (SELECT page_count FROM pragma_page_count), (SELECT page_size FROM pragma_page_size)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| describe(&e))?;
        // An empty WAL now means it was empty when the transaction began (it
        // cannot be reset while we read), so we read the database file alone.
        let wal = std::path::PathBuf::from(format!("{}-wal", src_path.display()));
        let wal_empty = fs::metadata(&wal).map(|m| m.len() == 0).unwrap_or(true);
        if wal_empty {
            let second = second_reader(src_path, &wal);
            return Ok((
                Snapshot::Direct {
                    conn: Box::new(src),
                    second: second.map(Box::new),
                    size: (pages * page_size) as u64,
                },
                journal_mode,
            ));
        }
        src.execute_batch("COMMIT").map_err(|e| describe(&e))?;
    }
    copy_snapshot(&src, dst)?;
    Ok((Snapshot::Copied, journal_mode))
}

/// Another read transaction on the same snapshot: valid only if the WAL is
/// still empty once it has begun (then both read the unchanging file).
fn second_reader(src_path: &Path, wal: &Path) -> Option<Connection> {
    let c = Connection::open_with_flags(
        src_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    c.busy_timeout(LOCK_WAIT).ok()?;
    c.execute_batch("BEGIN").ok()?;
    c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .ok()?;
    fs::metadata(wal)
        .map(|m| m.len() == 0)
        .unwrap_or(true)
        .then_some(c)
}

/// Copy the live database into `dst` through the backup API.
fn copy_snapshot(src: &Connection, dst: &Path) -> std::result::Result<(), String> {
    // The snapshot is created 0600 before SQLite opens it.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| format!("cannot create snapshot file {}: {e}", dst.display()))?;
    let mut dst_conn = Connection::open(dst).map_err(|e| describe(&e))?;
    {
        let backup = Backup::new(src, &mut dst_conn).map_err(|e| describe(&e))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match backup
                .step(-1)
                .map_err(|e| format!("backup failed: {}", describe(&e)))?
            {
                StepResult::Done => break,
                StepResult::More => {}
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "database stayed locked for {}s; the backup could not start",
                        LOCK_WAIT.as_secs()
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(25)),
            }
        }
    }
    dst_conn.close().map_err(|(_, e)| describe(&e))?;
    Ok(())
}

/// A reader that tells the snapshot's holder when it is done (or dropped).
struct SignalOnDrop<R> {
    inner: R,
    _done: Vec<std::sync::mpsc::Sender<()>>,
}

impl<R: Read> Read for SignalOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

/// The `sqlite-integrity` verdict on what [`integrity_check`] found
/// (`None`: ok), for a check that began at `started`.
pub(crate) fn integrity_verdict(problems: Option<String>, started: Instant) -> Verdict {
    match problems {
        None => Verdict::pass("sqlite-integrity", "PRAGMA integrity_check: ok", started),
        Some(p) => Verdict::fail(
            "sqlite-integrity",
            format!("PRAGMA integrity_check: {p}"),
            started,
        ),
    }
}

/// Sets its flag when dropped: a blocking task holding the flag learns that
/// the future waiting for it was cancelled.
#[derive(Default)]
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `rusqlite::Connection` is `Send`; the wrapper only names the tuple.
struct SendSnapshot(Snapshot);

#[async_trait]
impl Source for SqliteSource {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// The canonical path: `/dir/./a.db`, `/dir/../dir/a.db` and a symlink
    /// to it are the same database.
    fn lock_key(&self) -> String {
        format!("sqlite://{}", canonical(&self.path).display())
    }

    fn artifact_format(&self) -> &'static str {
        "sqlite3 database file"
    }

    fn location(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn default_name(&self) -> String {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let clean: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if clean.is_empty() {
            "sqlite".into()
        } else {
            clean
        }
    }

    fn extension(&self) -> &'static str {
        "sqlite"
    }

    async fn preflight(&self) -> Result<()> {
        let path = self.path.clone();
        blocking(move || check_database_file(&path))
            .await
            .map_err(|m| self.err(m))
    }

    async fn dump(&self, opts: &DumpOptions) -> Result<Dump> {
        let temp_root = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let temp = Arc::new(
            crate::tempdir::PrivateDir::new(&temp_root, "sqlite").map_err(|e| {
                self.err(format!(
                    "cannot create a temporary directory in {}: {e}",
                    temp_root.display()
                ))
            })?,
        );
        let snap = temp.path().join("snapshot.db");
        let src = self.path.clone();
        let started = Instant::now();
        let (snapshot, journal_mode) = {
            let snap = snap.clone();
            blocking(move || take_snapshot(&src, &snap).map(|(s, j)| (SendSnapshot(s), j)))
                .await
                .map_err(|m| self.err(m))?
        };
        let (reader, size_hint, integrity, counts, method): (
            Box<dyn Read + Send>,
            Option<u64>,
            tokio::task::JoinHandle<std::result::Result<Verdict, String>>,
            tokio::task::JoinHandle<std::result::Result<Fingerprint, String>>,
            &str,
        ) = match snapshot.0 {
            Snapshot::Direct { conn, second, size } => {
                tracing::info!(
                    source = %self.location(),
                    journal_mode = %journal_mode,
                    bytes = size,
                    readers = 1 + usize::from(second.is_some()),
                    "snapshot is the database file, read inside one read transaction (WAL empty)"
                );
                let file = File::open(&self.path)
                    .map_err(|e| self.err(format!("cannot read {}: {e}", self.path.display())))?;
                let (done_a, wait_a) = std::sync::mpsc::channel::<()>();
                let (done_b, wait_b) = std::sync::mpsc::channel::<()>();
                let reader = SignalOnDrop {
                    inner: file.take(size),
                    _done: vec![done_a, done_b],
                };
                // Each connection holds the snapshot until the stream has
                // been read: check and count inside it meanwhile.
                let hold = |conn: Box<Connection>, wait: std::sync::mpsc::Receiver<()>| {
                    let _ = wait.recv();
                    let _ = conn.execute_batch("COMMIT");
                };
                let check = |conn: &Connection| {
                    let t = Instant::now();
                    integrity_check_conn(conn).map(|p| integrity_verdict(p, t))
                };
                let (integrity, counts) = match second {
                    Some(second) => (
                        tokio::task::spawn_blocking(move || {
                            let v = check(&conn);
                            hold(conn, wait_a);
                            v
                        }),
                        tokio::task::spawn_blocking(move || {
                            let fp = fingerprint_conn(&second);
                            hold(second, wait_b);
                            fp
                        }),
                    ),
                    None => {
                        let (v_tx, v_rx) = tokio::sync::oneshot::channel();
                        let counts = tokio::task::spawn_blocking(move || {
                            let _ = v_tx.send(check(&conn));
                            let fp = fingerprint_conn(&conn);
                            drop(wait_b);
                            hold(conn, wait_a);
                            fp
                        });
                        let integrity = tokio::spawn(async move {
                            v_rx.await
                                .unwrap_or_else(|_| Err("integrity check did not run".into()))
                        });
                        (integrity, counts)
                    }
                };
                (
                    Box::new(reader),
                    Some(size),
                    integrity,
                    counts,
                    "direct-read",
                )
            }
            Snapshot::Copied => {
                tracing::info!(
                    source = %self.location(),
                    journal_mode = %journal_mode,
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot copied with the online backup API"
                );
                let reader = File::open(&snap)
                    .map_err(|e| self.err(format!("cannot read snapshot: {e}")))?;
                let size_hint = reader.metadata().ok().map(|m| m.len());
                // Integrity check and row counts run on the snapshot while
                // the pipeline compresses and uploads it.
                let integrity = {
                    let snap = snap.clone();
                    let temp = temp.clone();
                    tokio::task::spawn_blocking(move || {
                        let _keep = temp;
                        let t = Instant::now();
                        integrity_check(&snap).map(|p| integrity_verdict(p, t))
                    })
                };
                let counts = {
                    let snap = snap.clone();
                    let temp = temp.clone();
                    tokio::task::spawn_blocking(move || {
                        let _keep = temp;
                        fingerprint(&snap)
                    })
                };
                (Box::new(reader), size_hint, integrity, counts, "backup-api")
            }
        };
        let location = self.location();
        let outcome = async move {
            let fail = |m: String| Error::source_err(&location, m);
            let integrity = integrity
                .await
                .map_err(|e| fail(format!("worker failed: {e}")))?
                .map_err(|m| fail(format!("snapshot unreadable: {m}")))?;
            let mut fingerprint = counts
                .await
                .map_err(|e| fail(format!("worker failed: {e}")))?
                .map_err(|m| fail(format!("snapshot unreadable: {m}")))?;
            fingerprint.details = SqliteDetails {
                journal_mode: Some(journal_mode),
                snapshot_method: Some(method.into()),
                ..SqliteDetails::from_fingerprint(&fingerprint)
            }
            .into_details();
            Ok(DumpOutcome {
                fingerprint,
                verdicts: vec![integrity],
                raw_size: None,
            })
        };
        Ok(Dump {
            reader,
            outcome: Box::pin(outcome),
            guard: Some(Box::new(temp)),
            size_hint,
            attachments: Vec::new(),
            precompressed: false,
        })
    }
}

#[async_trait]
impl crate::source::RestoreTarget for SqliteSource {
    fn target_kind(&self) -> &'static str {
        "sqlite"
    }

    fn target_location(&self) -> String {
        Source::location(self)
    }

    fn target_lock_key(&self) -> String {
        Source::lock_key(self)
    }

    async fn check_target(&self, opts: &RestoreOptions) -> Result<()> {
        match swap::inspect(&self.path).map_err(|m| self.restore_err(m))? {
            swap::Target::Missing => Ok(()),
            swap::Target::Existing { .. } if !opts.force => Err(self.restore_err(
                "the target already exists; pass --force to replace it (it stays in place, untouched, until the new one is proven)",
            )),
            swap::Target::Existing { real, .. } => {
                swap::refuse_if_in_use(&real).map_err(|m| self.restore_err(m))
            }
        }
    }

    async fn restore(
        &self,
        mut reader: Box<dyn Read + Send>,
        manifest: &Manifest,
        opts: &RestoreOptions,
    ) -> Result<RestoreOutcome> {
        self.check_target(opts).await?;
        // A symlink is followed: the file it points at is replaced, beside
        // itself, so the final rename stays on one filesystem.
        let (target, old_meta) = match swap::inspect(&self.path).map_err(|m| self.restore_err(m))? {
            swap::Target::Missing => (self.path.clone(), None),
            swap::Target::Existing { real, meta } => (real, Some(meta)),
        };
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "database".into());
        let tag = format!("{:08x}", rand::random::<u32>());
        let staging = parent.join(format!(".{name}.lifeboat-restore-{tag}"));
        let expected = manifest.fingerprint.clone();
        let this = self.clone();
        // The blocking work outlives a dropped (cancelled) future: it must
        // then stop before it replaces anything.
        let cancel = CancelOnDrop::default();
        let cancelled = cancel.0.clone();

        let result = tokio::task::spawn_blocking(move || -> Result<RestoreOutcome> {
            fs::create_dir_all(&parent).map_err(|e| {
                this.restore_err(format!("cannot create directory {}: {e}", parent.display()))
            })?;
            // We hold the target's lock: staging files beside it are an
            // interrupted run's.
            swap::sweep_staging(&target);
            // Stage: write the whole stream; the reader fails at end of
            // stream if the checksum does not match.
            let staged = (|| -> Result<(u64, Fingerprint)> {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&staging)
                    .map_err(|e| {
                        this.restore_err(format!("cannot create {}: {e}", staging.display()))
                    })?;
                let bytes = io::copy(&mut reader, &mut f).map_err(|e| {
                    this.restore_err(format!("download failed or the backup is corrupt: {e}"))
                })?;
                f.sync_all()
                    .map_err(|e| this.restore_err(format!("cannot sync: {e}")))?;
                drop(f);
                if let Some(problems) = integrity_check(&staging)
                    .map_err(|m| this.restore_err(format!("restored file is unreadable: {m}")))?
                {
                    return Err(this.restore_err(format!(
                        "restored file fails PRAGMA integrity_check: {problems}"
                    )));
                }
                let actual = fingerprint(&staging)
                    .map_err(|m| this.restore_err(format!("restored file is unreadable: {m}")))?;
                let diff = expected.diff(&actual);
                if !diff.is_empty() {
                    return Err(this.restore_err(format!(
                        "restored data differs from the backup's fingerprint: {}",
                        diff.join("; ")
                    )));
                }
                if let Some(meta) = &old_meta {
                    // The replacement keeps the old file's owner and mode
                    // (a new file stays 0600).
                    fs::set_permissions(&staging, fs::Permissions::from_mode(meta.mode() & 0o7777))
                        .map_err(|e| this.restore_err(format!("cannot set the mode: {e}")))?;
                    let _ = std::os::unix::fs::chown(&staging, Some(meta.uid()), Some(meta.gid()));
                }
                Ok((bytes, actual))
            })();
            crate::failpoint::point("sqlite-restore:staged");
            let (bytes, actual) = match staged {
                Ok(v) => v,
                Err(e) => {
                    let _ = fs::remove_file(&staging);
                    return Err(e);
                }
            };
            if cancelled.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = fs::remove_file(&staging);
                return Err(Error::Cancelled);
            }
            // Swap: prove again that nobody uses the old file, make it
            // self-contained, then one atomic rename over it.
            if old_meta.is_some() {
                let ready = swap::refuse_if_in_use(&target).and_then(|()| swap::quiesce(&target));
                if let Err(m) = ready {
                    let _ = fs::remove_file(&staging);
                    return Err(this.restore_err(m));
                }
                crate::failpoint::point("sqlite-restore:quiesced");
            }
            if cancelled.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = fs::remove_file(&staging);
                return Err(Error::Cancelled);
            }
            let placed = if old_meta.is_some() {
                fs::rename(&staging, &target)
            } else {
                // No database at the path, but an old one's -wal/-shm/
                // -journal may be (a deleted database's): they must never
                // meet the new file, or SQLite replays them onto it.
                if let Err(m) = swap::set_aside_side_files(&target) {
                    let _ = fs::remove_file(&staging);
                    return Err(this.restore_err(m));
                }
                // Publish without replacing: a file that appeared at the
                // path meanwhile was not checked, so it is never replaced.
                fs::hard_link(&staging, &target).map(|()| {
                    let _ = fs::remove_file(&staging);
                })
            };
            if let Err(e) = placed {
                let _ = fs::remove_file(&staging);
                let why = if e.kind() == io::ErrorKind::AlreadyExists {
                    "a file appeared at the target during the restore; it was left alone"
                        .to_string()
                } else {
                    format!("cannot move the restored file into place: {e}")
                };
                return Err(this.restore_err(why));
            }
            crate::failpoint::point("sqlite-restore:renamed");
            if let Ok(d) = File::open(&parent) {
                let _ = d.sync_all();
            }
            Ok(RestoreOutcome {
                target: this.location(),
                bytes,
                fingerprint: actual,
                replaced: old_meta.is_some(),
                report: Default::default(),
            })
        })
        .await
        .map_err(|e| self.restore_err(format!("worker failed: {e}")))??;
        drop(cancel);
        Ok(result)
    }
}

/// Write a SQLite database for tests and examples: `tables` of `rows` rows each.
#[doc(hidden)]
pub fn write_sample_database(path: &Path, rows: usize) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         price_cents INTEGER, tags TEXT, created_at TEXT);
         CREATE INDEX IF NOT EXISTS items_name ON items(name);
         CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT);",
    )?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO items (name, price_cents, tags, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for i in 0..rows {
            stmt.execute((
                format!("item number {i}"),
                (i * 37 % 10_000) as i64,
                format!(r#"{{"colour":"c{}","size":{}}}"#, i % 7, i % 13),
                format!("2026-11-{:02}T03:00:00Z", 1 + i % 28),
            ))?;
        }
        let mut stmt = tx.prepare("INSERT INTO notes (body) VALUES (?1)")?;
        for i in 0..rows / 10 {
            stmt.execute([format!(
                "note {i}: the quick brown fox jumps over the lazy dog"
            )])?;
        }
    }
    tx.commit()?;
    let _ = io::stdout().flush();
    Ok(())
}

/// The manual restore of a SQLite backup: the artifact is the database.
pub(crate) fn manual_restore(steps: &mut crate::manifest::ManualSteps) {
    let raw = steps.raw_file().to_string();
    steps.push(format_args!(
        "{raw} is the SQLite database file itself: check it with sqlite3 {raw} 'PRAGMA integrity_check' (prints ok), then put it in place of the application's database while the application is stopped, with no -wal/-shm files beside it"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_query_characters() {
        assert_eq!(
            immutable_uri(Path::new("/a?b#c%d")),
            "file:/a%3fb%23c%25d?immutable=1"
        );
    }

    #[test]
    fn missing_and_foreign_files_are_refused_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.db");
        let err = check_database_file(&missing).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(!missing.exists());
        let text = dir.path().join("notes.txt");
        fs::write(&text, "hello, this is not a database at all").unwrap();
        let err = check_database_file(&text).unwrap_err();
        assert!(err.contains("not a SQLite database"), "{err}");
    }

    #[test]
    fn fingerprint_counts_rows_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        write_sample_database(&db, 250).unwrap();
        let snap = dir.path().join("snap.db");
        let (src, _, _) = open_source(&db).unwrap();
        copy_snapshot(&src, &snap).unwrap();
        let fp = fingerprint(&snap).unwrap();
        let names: Vec<_> = fp
            .tables
            .iter()
            .map(|t| (t.name.as_str(), t.rows))
            .collect();
        assert_eq!(names, vec![("items", 250), ("notes", 25)]);
        assert_eq!(integrity_check(&snap).unwrap(), None);
        let mode = fs::metadata(&snap).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
