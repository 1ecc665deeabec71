//! Progress from the worker threads, queued for the Python thread.
//!
//! Worker threads never call into Python: they only update this queue under
//! a short lock. The thread that waits for the operation (holding the GIL
//! for a moment every poll) drains it and calls the user's callback, so a
//! slow callback slows nothing but its own reporting.

use std::sync::Mutex;

use backup_core::{Phase, Progress};

/// One report: `(phase, bytes done in the phase, total bytes if known)`.
pub(crate) type Event = (&'static str, u64, Option<u64>);

/// Collects [`Progress`] calls as [`Event`]s.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Phase starts and finishes, in order: never coalesced.
    events: Vec<Event>,
    /// The running phase and its total.
    current: Option<(&'static str, Option<u64>)>,
    done: u64,
    /// `done` as last handed out, so unchanged progress is not repeated.
    reported: u64,
}

impl Collector {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The events since the last call: queued starts and finishes, then the
    /// running phase's position if it moved.
    pub(crate) fn take(&self) -> Vec<Event> {
        let mut s = self.state();
        let mut out = std::mem::take(&mut s.events);
        if let Some((phase, total)) = s.current
            && s.done != s.reported
        {
            out.push((phase, s.done, total));
            s.reported = s.done;
        }
        out
    }
}

impl Progress for Collector {
    fn start(&self, phase: Phase, total: Option<u64>) {
        let mut s = self.state();
        s.current = Some((phase.as_str(), total));
        s.done = 0;
        s.reported = 0;
        s.events.push((phase.as_str(), 0, total));
    }

    fn advance(&self, bytes: u64) {
        let mut s = self.state();
        s.done = s.done.saturating_add(bytes);
    }

    fn finish(&self, phase: Phase) {
        let mut s = self.state();
        let total = s.current.and_then(|(_, t)| t);
        let done = s.done;
        s.events.push((phase.as_str(), done, total));
        s.current = None;
        s.reported = done;
    }
}
