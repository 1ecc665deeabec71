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
///
/// One receiver follows one task at a time. Work that runs several tasks
/// (the databases of one run, and later parallel WAL pushes or the objects
/// of a mirror) asks for a handle per task with [`Progress::task`], so each
/// task's phases stay apart from its siblings'.
pub trait Progress: Send + Sync {
    /// A phase starts; `total` is its size in bytes when known.
    fn start(&self, _phase: Phase, _total: Option<u64>) {}
    /// `bytes` more of the current phase are done.
    fn advance(&self, _bytes: u64) {}
    /// The current phase is over.
    fn finish(&self, _phase: Phase) {}
    /// A receiver for the task `name` (a source name, a segment, a key),
    /// or `None` to have the task report here (the default: fine for work
    /// that runs one task at a time).
    fn task(&self, _name: &str) -> Option<Arc<dyn Progress>> {
        None
    }
}

/// The receiver for task `name` of `parent`: its own when `parent` gives
/// one, else `parent` itself.
pub fn for_task(parent: &Arc<dyn Progress>, name: &str) -> Arc<dyn Progress> {
    parent.task(name).unwrap_or_else(|| parent.clone())
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

impl ProgressHandle {
    /// The handle for task `name` (see [`Progress::task`]).
    pub fn task(&self, name: &str) -> Self {
        Self(for_task(&self.0, name))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records `(task, event)`; hands out one child per task.
    #[derive(Default)]
    struct Recorder {
        name: String,
        log: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl Progress for Recorder {
        fn start(&self, phase: Phase, _total: Option<u64>) {
            self.log
                .lock()
                .unwrap()
                .push((self.name.clone(), format!("start {}", phase.as_str())));
        }
        fn advance(&self, bytes: u64) {
            self.log
                .lock()
                .unwrap()
                .push((self.name.clone(), format!("+{bytes}")));
        }
        fn task(&self, name: &str) -> Option<Arc<dyn Progress>> {
            Some(Arc::new(Recorder {
                name: name.to_string(),
                log: self.log.clone(),
            }))
        }
    }

    #[test]
    fn concurrent_tasks_keep_their_events_apart() {
        let root = Recorder::default();
        let log = root.log.clone();
        let root: Arc<dyn Progress> = Arc::new(root);
        let (a, b) = (for_task(&root, "app"), for_task(&root, "shop"));
        a.start(Phase::Upload, None);
        b.start(Phase::Snapshot, None);
        a.advance(5);
        b.advance(7);
        let log = log.lock().unwrap();
        let of = |t: &str| {
            log.iter()
                .filter(|(n, _)| n == t)
                .map(|(_, e)| e.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(of("app"), ["start upload", "+5"]);
        assert_eq!(of("shop"), ["start snapshot", "+7"]);
        // A receiver without tasks gets every event itself.
        let plain: Arc<dyn Progress> = Arc::new(NoProgress);
        assert!(Arc::ptr_eq(&for_task(&plain, "x"), &plain));
    }
}
