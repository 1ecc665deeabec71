//! One run per source per host: an exclusive `flock` on a lock file. The
//! kernel releases it when the process exits, however it exits, so a crashed
//! run never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What to do when another run holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockMode {
    /// Fail at once with [`Error::Locked`] (exit 1).
    #[default]
    FailFast,
    /// Wait until the other run finishes.
    Wait,
    /// Take no lock (the caller coordinates runs itself).
    None,
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    _file: Option<File>,
    path: PathBuf,
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The default directory for lock files: `$LIFEBOAT_LOCK_DIR`, else the
/// system temp directory.
pub fn default_lock_dir() -> PathBuf {
    std::env::var_os("LIFEBOAT_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// The lock file for one source: the same database gets the same file
/// whatever name or sink a run uses.
pub fn lock_path(dir: &Path, source_location: &str) -> PathBuf {
    let digest = hex::encode(Sha256::digest(source_location.as_bytes()));
    dir.join(format!("lifeboat-{}.lock", &digest[..16]))
}

/// Take the lock at `path`.
///
/// # Errors
/// [`Error::Locked`] when another process holds it and `mode` is
/// [`LockMode::FailFast`]; [`Error::Config`] when the lock file cannot be
/// created.
pub async fn acquire(path: &Path, mode: LockMode) -> Result<LockGuard> {
    if mode == LockMode::None {
        return Ok(LockGuard {
            _file: None,
            path: path.to_path_buf(),
        });
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Error::config(
                path.display().to_string(),
                format!("cannot create lock file: {e} (set LIFEBOAT_LOCK_DIR or lock_dir)"),
            )
        })?;
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                if mode == LockMode::FailFast {
                    return Err(Error::Locked {
                        path: path.display().to_string(),
                    });
                }
                if !announced {
                    tracing::info!(lock = %path.display(), "another run holds the lock; waiting");
                    announced = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::config(
                    path.display().to_string(),
                    format!("cannot lock: {e}"),
                ));
            }
        }
    }
    Ok(LockGuard {
        _file: Some(file),
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_holder_fails_fast_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "sqlite:///x.db");
        let first = acquire(&path, LockMode::FailFast).await.unwrap();
        let err = acquire(&path, LockMode::FailFast).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Locked);
        assert_eq!(err.exit_code(), 1);
        drop(first);
        acquire(&path, LockMode::FailFast).await.unwrap();
    }

    #[tokio::test]
    async fn waiting_holder_gets_the_lock_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "sqlite:///y.db");
        let first = acquire(&path, LockMode::FailFast).await.unwrap();
        let p2 = path.clone();
        let waiter = tokio::spawn(async move { acquire(&p2, LockMode::Wait).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        drop(first);
        waiter.await.unwrap().unwrap();
    }
}
