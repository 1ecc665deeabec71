//! Replacing a live SQLite file safely (`restore --force`).
//!
//! The rules:
//!
//! - Only a regular file (or a symlink to one) is ever replaced: a directory,
//!   FIFO, socket or device node is refused, and so is a dangling symlink.
//!   A symlink is followed: the file it points at is replaced, the link stays.
//! - A database another process has open or locked is refused: that
//!   process would go on writing to the replaced file, and its next COMMIT
//!   would be lost without a word. Checked twice: before the download, and
//!   again right before the swap.
//! - The swap is one `rename(2)` of the proven staging file over the target,
//!   so after a crash at any point the target path holds the old database
//!   or the new one, never nothing. Before it, the old database is made
//!   self-contained (its WAL checkpointed and removed), so no stale `-wal`
//!   can ever be replayed onto the new file.
//! - What a crash leaves (a hidden `.<name>.lifeboat-restore-<tag>` staging
//!   file) is removed by the next restore to the same target, which holds
//!   the same lock.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// What is at the target path.
#[derive(Debug)]
pub(crate) enum Target {
    /// Nothing yet.
    Missing,
    /// A regular file at `real` (the path itself, or where its symlink points).
    Existing { real: PathBuf, meta: fs::Metadata },
}

/// Look at the target path without changing anything.
///
/// # Errors
/// A message saying why this path must not be replaced.
pub(crate) fn inspect(path: &Path) -> Result<Target, String> {
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::Missing),
        Err(e) => return Err(format!("cannot inspect the target: {e}")),
    };
    let (real, meta) = if link.file_type().is_symlink() {
        match fs::metadata(path) {
            Ok(m) => (
                fs::canonicalize(path).map_err(|e| format!("cannot resolve the symlink: {e}"))?,
                m,
            ),
            Err(_) => {
                return Err(
                    "the target is a dangling symlink; remove it or restore to the path it should point at"
                        .into(),
                );
            }
        }
    } else {
        (path.to_path_buf(), link)
    };
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        return Ok(Target::Existing { real, meta });
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    };
    let via = if real != path {
        format!(" (through the symlink {})", path.display())
    } else {
        String::new()
    };
    Err(format!(
        "the target {}{via} is {kind}; only a regular file is ever replaced",
        real.display()
    ))
}

/// The database file and its side files.
pub(crate) fn with_side_files(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .collect()
}

/// Other processes that hold one of `files` open, as "pid (command)", from
/// `/proc` (those we may look at: all of them as root).
pub(crate) fn processes_using(files: &[PathBuf]) -> Vec<String> {
    let wanted: Vec<(u64, u64)> = files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| fs::metadata(fd.path()).is_ok_and(|m| wanted.contains(&(m.dev(), m.ino()))));
        if holds {
            let comm = fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.push(format!("{pid} ({})", comm.trim()));
        }
    }
    out
}

/// Refuse when another process has the database (or a side file) open.
pub(crate) fn refuse_if_in_use(real: &Path) -> Result<(), String> {
    let users = processes_using(&with_side_files(real));
    if users.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} is open in another process ({}); stop it first: a process that keeps the old file open would lose its next commits",
            real.display(),
            users.join(", ")
        ))
    }
}

/// Make the old database self-contained and prove nobody uses it: checkpoint
/// its WAL into the file and let SQLite remove the `-wal`/`-shm` (it does so
/// only when ours is the last connection), and take an exclusive lock once
/// (refused at once, not waited for, if anyone holds a lock). An old file
/// that is not a database is left as it is (its side files are set aside).
pub(crate) fn quiesce(real: &Path) -> Result<(), String> {
    let conn = match Connection::open_with_flags(
        real,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => return Err(format!("cannot open the old database: {e}")),
    };
    let busy = |e: &rusqlite::Error| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    };
    let in_use = || {
        format!(
            "{} is locked by another process (a transaction is open); stop it first",
            real.display()
        )
    };
    let mode: Result<String, _> = conn.pragma_query_value(None, "journal_mode", |r| r.get(0));
    let mode = match mode {
        Ok(m) => m.to_ascii_lowercase(),
        Err(e) if busy(&e) => return Err(in_use()),
        // Not a database (or corrupt): nothing to make consistent.
        Err(_) => return set_aside_side_files(real),
    };
    if mode == "wal" {
        match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(0) => {}
            Ok(_) => return Err(in_use()),
            Err(e) if busy(&e) => return Err(in_use()),
            Err(e) => return Err(format!("cannot checkpoint the old database: {e}")),
        }
    }
    match conn.execute_batch("BEGIN EXCLUSIVE; ROLLBACK;") {
        Ok(()) => {}
        Err(e) if busy(&e) => return Err(in_use()),
        Err(e) => return Err(format!("cannot lock the old database: {e}")),
    }
    conn.close()
        .map_err(|(_, e)| format!("cannot close the old database: {e}"))?;
    let side = |s: &str| PathBuf::from(format!("{}{s}", real.display()));
    // Our connection was not the last one if SQLite kept the -shm: another
    // process has the database open (idle, between transactions).
    if mode == "wal" && side("-shm").exists() {
        return Err(format!(
            "{} is open in another process (its shared-memory file stays in use); stop it first",
            real.display()
        ));
    }
    if fs::metadata(side("-wal")).is_ok_and(|m| m.len() > 0) {
        return Err(format!(
            "{} still has a write-ahead log after a checkpoint; another process is writing",
            real.display()
        ));
    }
    if side("-journal").exists() {
        return Err(format!(
            "{} has a hot journal (a crashed writer?); open it once with sqlite3 to recover it, then restore",
            real.display()
        ));
    }
    let _ = fs::remove_file(side("-wal"));
    Ok(())
}

/// For an old file that is not a database, or a database file that is gone
/// while its side files stay: move them out of the way so they can never be
/// applied to the new one.
pub(crate) fn set_aside_side_files(real: &Path) -> Result<(), String> {
    for f in with_side_files(real).into_iter().skip(1) {
        if f.exists() {
            let to = PathBuf::from(format!("{}.lifeboat-old", f.display()));
            fs::rename(&f, &to).map_err(|e| format!("cannot move {} aside: {e}", f.display()))?;
            tracing::warn!(file = %f.display(), moved_to = %to.display(), "a side file of an old database was moved aside, so it is never applied to the restored one");
        }
    }
    Ok(())
}

/// Remove staging files an interrupted restore left beside `target`
/// (the caller holds the target's lock, so none of them is in use).
pub(crate) fn sweep_staging(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let prefix = format!(".{}.lifeboat-restore-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            match fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(file = %e.path().display(), "removed a staging file an interrupted restore left")
                }
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot remove a staging file an interrupted restore left")
                }
            }
        }
    }
}
