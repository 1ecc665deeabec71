//! Progress reporting as a trait: the CLI draws a bar, bindings forward to
//! callbacks, services ignore it.

use std::fmt;
use std::sync::Arc;

/// A phase of work, as reported to [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Taking the snapshot.
    Snapshot,
    /// Compressing and uploading; units are raw (uncompressed) bytes.
    Upload,
    /// Running verifiers.
    Verify,
    /// Downloading and writing a restore; units are stored bytes.
    Download,
}

impl Phase {
    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Snapshot => "snapshot",
            Phase::Upload => "upload",
            Phase::Verify => "verify",
            Phase::Download => "download",
        }
    }
}

/// Receives progress of long work. Every method has a no-op default. Called
/// from worker threads: implementations must be cheap and must not block.
pub trait Progress: Send + Sync {
    /// A phase starts; `total` is its size in bytes when known.
    fn start(&self, _phase: Phase, _total: Option<u64>) {}
    /// `bytes` more of the current phase are done.
    fn advance(&self, _bytes: u64) {}
    /// The current phase is over.
    fn finish(&self, _phase: Phase) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A shareable progress handle.
#[derive(Clone)]
pub struct ProgressHandle(pub(crate) Arc<dyn Progress>);

impl ProgressHandle {
    /// Wrap a progress receiver.
    pub fn new(p: Arc<dyn Progress>) -> Self {
        Self(p)
    }
}

impl Default for ProgressHandle {
    fn default() -> Self {
        Self(Arc::new(NoProgress))
    }
}

impl fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressHandle")
    }
}

impl std::ops::Deref for ProgressHandle {
    type Target = dyn Progress;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
