//! `pg_dump` as a child process: the tail of its stderr, how it ended
//! (watched on a thread, so it can still be killed), the archive stream that
//! reports that end instead of a bare broken pipe, and the kill when a run
//! is cancelled.

use std::io::Read;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tables::locked_message;

const STDERR_KEEP: usize = 16 * 1024;

/// Collects the tail of a child's stderr on a thread.
pub(super) fn drain_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = e.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 2 * STDERR_KEEP {
                    buf.drain(..buf.len() - STDERR_KEEP);
                }
            }
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        tail[tail.len().saturating_sub(5)..].join(" / ")
    })
}

/// The table(s) a `pg_dump` that gave up waiting for a lock names in its
/// error (`Query was: LOCK TABLE public.items IN ACCESS SHARE MODE`).
fn pg_dump_lock_failure(stderr: &str) -> Option<String> {
    if !(stderr.contains("statement timeout") || stderr.contains("lock timeout")) {
        return None;
    }
    let after = stderr.split("LOCK TABLE ").nth(1)?;
    let tables = after.split(" IN ").next()?.trim();
    let tables = tables.strip_prefix("ONLY ").unwrap_or(tables);
    (!tables.is_empty()).then(|| tables.to_string())
}

/// How `pg_dump` ended, published by [`watch_pg_dump`]: `Ok(())`, or its
/// failure in words.
#[derive(Debug, Default)]
pub(super) struct DumpEnd {
    result: Mutex<Option<std::result::Result<(), String>>>,
    cv: std::sync::Condvar,
}

impl DumpEnd {
    /// Block until pg_dump has ended (or `timeout` passed: `None`).
    pub(super) fn wait(
        &self,
        timeout: Option<Duration>,
    ) -> Option<std::result::Result<(), String>> {
        let g = self.result.lock().unwrap_or_else(|e| e.into_inner());
        let g = match timeout {
            Some(t) => {
                self.cv
                    .wait_timeout_while(g, t, |r| r.is_none())
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => self
                .cv
                .wait_while(g, |r| r.is_none())
                .unwrap_or_else(|e| e.into_inner()),
        };
        g.clone()
    }
}

/// Watch `pg_dump` on a thread until it exits, and say how it ended. The
/// child stays in its mutex (polled, not waited on) so that [`KillOnDrop`]
/// can still kill it.
pub(super) fn watch_pg_dump(
    child: Arc<Mutex<Option<Child>>>,
    stderr: std::thread::JoinHandle<String>,
    lock_wait: u64,
) -> Arc<DumpEnd> {
    let end = Arc::new(DumpEnd::default());
    let published = end.clone();
    std::thread::spawn(move || {
        let status = loop {
            {
                let mut g = child.lock().unwrap_or_else(|e| e.into_inner());
                match g.as_mut().map(|c| c.try_wait()) {
                    None => break None,
                    Some(Ok(Some(s))) => break Some(Ok(s)),
                    Some(Err(e)) => break Some(Err(e)),
                    Some(Ok(None)) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = stderr.join().unwrap_or_default();
        let result = match status {
            None => Err("pg_dump was stopped".to_string()),
            Some(Err(e)) => Err(format!("pg_dump: {e}")),
            Some(Ok(s)) if s.success() => Ok(()),
            Some(Ok(s)) => Err(match pg_dump_lock_failure(&stderr) {
                Some(table) => locked_message(&table, lock_wait),
                None => {
                    let how = match s.code() {
                        Some(c) => format!("exited with status {c}"),
                        None => "was killed".to_string(),
                    };
                    format!("pg_dump {how}: {stderr}")
                }
            }),
        };
        *published.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        published.cv.notify_all();
    });
    end
}

/// The archive stream. When it breaks off because `pg_dump` failed, the
/// error says why pg_dump failed (a lock wait, a permission), not only that
/// the archive was cut short.
pub(super) struct DumpReader<R> {
    pub(super) inner: R,
    pub(super) end: Arc<DumpEnd>,
}

impl<R: Read> Read for DumpReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(out).map_err(|e| {
            // pg_dump's output has ended: it is exiting, if not gone.
            match self.end.wait(Some(Duration::from_secs(30))) {
                Some(Err(why)) => std::io::Error::other(why),
                _ => e,
            }
        })
    }
}

/// Kills `pg_dump` if the run is cancelled before it finished.
pub(super) struct KillOnDrop(pub(super) Arc<Mutex<Option<Child>>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.lock()
            && let Some(mut c) = g.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_dump_lock_timeouts_name_the_table() {
        let err = "pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout / \
                   pg_dump: detail: Query was: LOCK TABLE public.items IN ACCESS SHARE MODE";
        assert_eq!(pg_dump_lock_failure(err).as_deref(), Some("public.items"));
        assert_eq!(
            pg_dump_lock_failure("pg_dump: error: connection failed"),
            None
        );
    }
}
