//! What the process runs on: blocking work moved off the async workers, file
//! writes in pieces, and the host's name.

use std::fmt;

/// A blocking task that did not finish: it panicked, or the runtime shut
/// down before it ran. Shown as `worker failed: …`.
#[derive(Debug)]
pub(crate) struct WorkerFailed(tokio::task::JoinError);

impl fmt::Display for WorkerFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker failed: {}", self.0)
    }
}

impl From<WorkerFailed> for String {
    fn from(w: WorkerFailed) -> Self {
        w.to_string()
    }
}

/// Blocking work returning [`crate::Error`] is the local sink's file work, so
/// a worker that failed there is a sink error (of the `file://` sink).
impl From<WorkerFailed> for crate::Error {
    fn from(w: WorkerFailed) -> Self {
        crate::Error::sink_err("file://", w.to_string())
    }
}

/// Run `f` on tokio's blocking pool and wait for it. If it does not finish
/// (a panic, a runtime shutting down), the caller gets `E::from(WorkerFailed)`.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> std::result::Result<T, E> + Send + 'static,
) -> std::result::Result<T, E>
where
    T: Send + 'static,
    E: From<WorkerFailed> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(WorkerFailed(e).into()))
}

/// The most [`write_in_pieces`] hands the kernel in one `write`.
pub(crate) const WRITE_PIECE: usize = 256 * 1024;

/// `w.write_all(data)`, [`WRITE_PIECE`] bytes at a time. One `write` of
/// megabytes into a new file can cost the kernel several times the CPU of
/// the same bytes in pieces: measured on ext4 (Linux 6.18), 40 files of
/// 5 MB took 0.29-0.44 s of CPU written whole and 0.04-0.05 s in pieces of
/// 128-256 KiB; pieces of 2 MiB and more were as slow as one write. (The
/// likely cause, not proven: the page cache sizes the folios it allocates
/// by the length of the write, and large ones are expensive to find.)
pub(crate) fn write_in_pieces(w: &mut impl std::io::Write, data: &[u8]) -> std::io::Result<()> {
    data.chunks(WRITE_PIECE)
        .try_for_each(|piece| w.write_all(piece))
}

/// This host's name (for manifests and notifications): the kernel's, else
/// `$HOSTNAME`, else `unknown`.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// This process's effective uid, from `/proc/self`; `None` when it cannot
/// be read.
pub(crate) fn effective_uid() -> Option<u32> {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_that_panics_is_an_error_of_the_callers_type() {
        let ok: Result<u8, String> = blocking(|| Ok(7)).await;
        assert_eq!(ok, Ok(7));
        let err: Result<u8, String> = blocking(|| panic!("boom")).await;
        assert!(err.unwrap_err().starts_with("worker failed"));
        let err: crate::Result<u8> = blocking(|| panic!("boom")).await;
        assert_eq!(err.unwrap_err().kind(), crate::ErrorKind::Sink);
    }

    /// A writer that records the length of every `write` it is given.
    struct Lengths(Vec<usize>, Vec<u8>);
    impl std::io::Write for Lengths {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.len());
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_in_pieces_are_whole_and_none_is_larger_than_a_piece() {
        let data: Vec<u8> = (0..WRITE_PIECE * 2 + 17).map(|i| (i % 251) as u8).collect();
        let mut w = Lengths(Vec::new(), Vec::new());
        write_in_pieces(&mut w, &data).unwrap();
        assert_eq!(w.1, data);
        assert_eq!(w.0, vec![WRITE_PIECE, WRITE_PIECE, 17]);
        let mut empty = Lengths(Vec::new(), Vec::new());
        write_in_pieces(&mut empty, &[]).unwrap();
        assert!(empty.0.is_empty());
    }

    #[test]
    fn the_host_has_a_name() {
        assert!(!host_name().is_empty());
    }
}
