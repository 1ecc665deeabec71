//! One tokio runtime per process, rebuilt after `fork`.
//!
//! A forked child inherits the parent's memory but none of its threads: the
//! parent's runtime would hang the first time the child used it (delta-rs
//! #2744). The runtime is therefore keyed by process id; a child that calls
//! in builds its own and leaks the inherited one (dropping it would try to
//! join worker threads that do not exist in the child).

use std::sync::Mutex;

use tokio::runtime::{Builder, Handle, Runtime};

#[derive(Debug)]
struct PerProcess {
    pid: u32,
    runtime: Runtime,
}

static RUNTIME: Mutex<Option<PerProcess>> = Mutex::new(None);

/// The runtime of the current process, started on first use.
pub(crate) fn handle() -> std::io::Result<Handle> {
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let pid = std::process::id();
    if let Some(current) = slot.as_ref().filter(|r| r.pid == pid) {
        return Ok(current.runtime.handle().clone());
    }
    if let Some(inherited) = slot.take() {
        std::mem::forget(inherited.runtime);
    }
    // The same runtime shape as the `lifeboat` binary builds for itself.
    let runtime = Builder::new_multi_thread()
        .enable_all()
        .thread_name("lifeboat-worker")
        .build()?;
    let handle = runtime.handle().clone();
    *slot = Some(PerProcess { pid, runtime });
    Ok(handle)
}
