//! Private temporary directories that the next run can tell from live ones.
//!
//! Every temporary directory Lifeboat makes (SQLite snapshot copies, the
//! decompressed copy `verify` checks, the directory holding a PostgreSQL
//! passfile, restore downloads, drill clusters) is a [`PrivateDir`]: mode
//! `0700`, named `lifeboat-<what>-<random>`, with a `.lifeboat-lock` file
//! inside that the owning process holds an exclusive `flock` on for as long
//! as the directory lives. Dropping it removes it. A `kill -9` cannot, but
//! the kernel releases the lock with the process, so [`sweep`] (run at the
//! start of each backup, verify and restore, and by `prune`) removes every
//! such directory whose lock it can take: its owner is gone. A directory
//! another live run holds is never touched.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The prefix of every temporary directory's name.
pub const PREFIX: &str = "lifeboat-";
const LOCK_FILE: &str = ".lifeboat-lock";

/// A temporary directory held by this process; removed on drop.
#[derive(Debug)]
pub struct PrivateDir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl PrivateDir {
    /// Create `<root>/lifeboat-<what>-<random>` (mode 0700) and take its lock.
    ///
    /// # Errors
    /// The directory or its lock file cannot be created.
    pub fn new(root: &Path, what: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{what}-"))
            .tempdir_in(root)?;
        // Locked under a temporary name and then renamed, so a sweeper never
        // sees an unlocked `.lifeboat-lock` of a live directory.
        let tmp = dir.path().join(".lifeboat-lock.new");
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        lock.try_lock()
            .map_err(|e| io::Error::other(e.to_string()))?;
        fs::rename(&tmp, dir.path().join(LOCK_FILE))?;
        Ok(Self { dir, _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A temporary directory a dead run left.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalLeftover {
    /// Its path.
    pub path: PathBuf,
    /// Bytes in it.
    pub bytes: u64,
}

fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Whether `dir` is one of ours whose owner is gone (its lock can be taken).
/// The lock, if taken, is returned so the caller can remove the directory
/// while holding it.
fn abandoned(dir: &Path) -> Option<File> {
    let name = dir.file_name()?.to_str()?;
    if !name.starts_with(PREFIX) || !dir.is_dir() {
        return None;
    }
    let lock = OpenOptions::new()
        .write(true)
        .open(dir.join(LOCK_FILE))
        .ok()?;
    lock.try_lock().ok()?;
    Some(lock)
}

/// A killed drill leaves its throwaway PostgreSQL server running on a data
/// directory inside its temp dir: stop it (SIGQUIT, PostgreSQL's immediate
/// shutdown) before the directory goes. The pid is trusted only if that
/// process runs on this very directory.
fn stop_orphaned_server(dir: &Path) {
    let Ok(pidfile) = fs::read_to_string(dir.join("data").join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = pidfile
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return;
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let ours = String::from_utf8_lossy(&cmdline).contains(&dir.display().to_string());
    if !ours {
        return;
    }
    let _ = std::process::Command::new("kill")
        .args(["-QUIT", &pid.to_string()])
        .status();
    for _ in 0..100 {
        let state = fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
            tracing::info!(pid, dir = %dir.display(), "stopped a throwaway PostgreSQL server a killed drill left running");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    tracing::warn!(pid, dir = %dir.display(), "a throwaway PostgreSQL server a killed drill left does not stop");
}

/// The abandoned temporary directories in `root`, without touching them.
pub fn find(root: &Path) -> Vec<LocalLeftover> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| abandoned(p).is_some())
        .map(|p| LocalLeftover {
            bytes: size_of(&p),
            path: p,
        })
        .collect()
}

/// Remove the abandoned temporary directories in `root`; what was removed.
/// Never fails: a directory that cannot be removed is logged and skipped.
pub fn sweep(root: &Path) -> Vec<LocalLeftover> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for p in entries.flatten().map(|e| e.path()) {
        let Some(_lock) = abandoned(&p) else {
            continue;
        };
        stop_orphaned_server(&p);
        let bytes = size_of(&p);
        match fs::remove_dir_all(&p) {
            Ok(()) => {
                tracing::info!(dir = %p.display(), bytes, "removed a temporary directory an interrupted run left");
                removed.push(LocalLeftover { path: p, bytes });
            }
            Err(e) => {
                tracing::warn!(dir = %p.display(), error = %e, "cannot remove a temporary directory an interrupted run left")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_directories_stay_and_abandoned_ones_go() {
        let root = tempfile::tempdir().unwrap();
        let live = PrivateDir::new(root.path(), "snap").unwrap();
        std::fs::write(live.path().join("data"), b"1234").unwrap();
        // An abandoned one: the lock file exists but nobody holds it.
        let dead = root.path().join("lifeboat-snap-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK_FILE), b"").unwrap();
        std::fs::write(dead.join("passfile"), b"secret").unwrap();
        // Not ours: no lock file, or another name.
        std::fs::create_dir(root.path().join("lifeboat-foreign")).unwrap();
        std::fs::create_dir(root.path().join("other")).unwrap();

        let found = find(root.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, dead);
        assert_eq!(found[0].bytes, 6);
        assert!(dead.exists(), "find removes nothing");

        let removed = sweep(root.path());
        assert_eq!(removed.len(), 1);
        assert!(!dead.exists());
        assert!(
            live.path().join("data").exists(),
            "a live directory was removed"
        );
        assert!(root.path().join("lifeboat-foreign").exists());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists(), "dropping removes it");
    }
}
