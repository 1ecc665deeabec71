//! A running operation: the core's future on the shared runtime, a cancel
//! signal it selects on, and a slot for its outcome that Python threads can
//! wait on with the GIL released.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use backup_core::{Error, Progress};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;
use tokio::sync::Notify;

use crate::error::Failure;
use crate::progress::{Collector, Event};
use crate::runtime;

/// How long a cancelled operation may take to abort abandoned multipart
/// uploads at the sink, as the CLI allows on Ctrl-C.
const CLEANUP_GRACE: Duration = Duration::from_secs(5);

/// One of the operations of `backup_core::ops` (`ops::json::OPERATIONS`).
#[derive(Debug, Clone, Copy)]
struct Op(&'static str);

impl Op {
    fn parse(name: &str) -> PyResult<Self> {
        use backup_core::ops::json::OPERATIONS;
        OPERATIONS
            .iter()
            .find(|op| **op == name)
            .map(|op| Op(op))
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "unknown operation {name:?} ({})",
                    OPERATIONS.join(", ")
                ))
            })
    }

    fn name(self) -> &'static str {
        self.0
    }

    async fn call(
        self,
        options: Value,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<Value, Error> {
        let progress = progress.filter(|_| backup_core::ops::json::takes_progress(self.0));
        backup_core::ops::json::call(self.name(), options, progress).await
    }
}

type Outcome = Result<Value, Failure>;

#[derive(Debug, Default)]
struct State {
    outcome: Option<Outcome>,
    /// Python callables to call (with no arguments) once the outcome is in.
    callbacks: Vec<Py<PyAny>>,
}

/// What the runtime task and the Python side share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    finished: Condvar,
    cancel: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_done(&self) -> bool {
        self.state().outcome.is_some()
    }

    /// Wait until the outcome is in, or `timeout` passes; true when done.
    /// Blocks: call with the GIL released.
    fn wait(&self, timeout: Option<Duration>) -> bool {
        let mut state = self.state();
        let deadline = timeout.map(|t| Instant::now() + t);
        while state.outcome.is_none() {
            match deadline {
                None => {
                    state = self.finished.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    state = self
                        .finished
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        true
    }

    /// Store the outcome (first one wins), wake waiters, run callbacks.
    fn finish(&self, outcome: Outcome) {
        let callbacks = {
            let mut state = self.state();
            if state.outcome.is_some() {
                return;
            }
            state.outcome = Some(outcome);
            std::mem::take(&mut state.callbacks)
        };
        self.finished.notify_all();
        if !callbacks.is_empty() {
            // None when the interpreter is shutting down: nobody is left to
            // wake, and the callbacks are leaked rather than touched.
            let _ = Python::try_attach(|py| {
                for cb in callbacks {
                    if let Err(e) = cb.call0(py) {
                        e.write_unraisable(py, Some(cb.bind(py)));
                    }
                }
            });
        }
    }

    fn cancel(&self) {
        // notify_one keeps a permit when the task is not waiting yet, so a
        // cancel before the first poll is not lost.
        self.cancel.notify_one();
    }
}

/// Finishes the shared state however the task ends: with its outcome, or
/// with an internal error if it panicked or the runtime dropped it, so no
/// Python thread waits forever.
struct Finisher(Option<Arc<Shared>>);

impl Finisher {
    fn finish(mut self, outcome: Outcome) {
        if let Some(shared) = self.0.take() {
            shared.finish(outcome);
        }
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.finish(Err(Failure::internal(
                "the operation stopped unexpectedly (a panic inside lifeboat, or its runtime shut down)",
            )));
        }
    }
}

async fn drive(
    op: Op,
    options: Value,
    progress: Option<Arc<dyn Progress>>,
    shared: &Shared,
) -> Outcome {
    let result = tokio::select! {
        r = op.call(options, progress) => r,
        () = shared.cancel.notified() => Err(Error::Cancelled),
    };
    // The operation's future is dropped by now: uploads abandoned, temp files
    // removed. Let the aborts of abandoned multipart uploads reach the sink.
    if matches!(result, Err(Error::Cancelled)) {
        backup_core::sink::wait_for_cleanup(CLEANUP_GRACE).await;
    }
    result.map_err(|e| Failure::from(&e))
}

/// A Lifeboat operation running on the shared runtime.
///
/// `lifeboat.backup()` and friends wait on one with the GIL released;
/// `lifeboat.aio` awaits one through `add_done_callback`. Dropping an
/// operation that is still running cancels it.
#[pyclass(frozen, module = "lifeboat._native")]
#[derive(Debug)]
pub(crate) struct Operation {
    shared: Arc<Shared>,
    progress: Option<Arc<Collector>>,
    name: &'static str,
}

impl Operation {
    /// Start `op` with `options` (a JSON object as text).
    pub(crate) fn start(op: &str, options: &str, with_progress: bool) -> PyResult<Self> {
        let kind = Op::parse(op)?;
        let options: Value = serde_json::from_str(options)
            .map_err(|e| PyValueError::new_err(format!("options are not valid JSON: {e}")))?;
        let handle = runtime::handle()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the async runtime: {e}")))?;
        let progress = with_progress.then(|| Arc::new(Collector::default()));
        let shared = Arc::new(Shared::default());
        let finisher = Finisher(Some(shared.clone()));
        let sink: Option<Arc<dyn Progress>> = progress.clone().map(|c| c as Arc<dyn Progress>);
        handle.spawn(async move {
            let shared = finisher.0.clone().expect("set above");
            let outcome = drive(kind, options, sink, &shared).await;
            finisher.finish(outcome);
        });
        Ok(Self {
            shared,
            progress,
            name: kind.name(),
        })
    }

    fn take_events(&self) -> Vec<Event> {
        self.progress.as_ref().map(|c| c.take()).unwrap_or_default()
    }

    /// Cancel, wait (GIL released) until the native side has cleaned up, and
    /// hand back `err` for the caller to raise.
    pub(crate) fn abandon(&self, py: Python<'_>, err: PyErr) -> PyErr {
        self.shared.cancel();
        let shared = self.shared.clone();
        py.detach(move || shared.wait(None));
        err
    }

    /// Run to completion on the calling thread with the GIL released,
    /// taking it back every `poll` to deliver progress and check signals.
    pub(crate) fn run_blocking(
        &self,
        py: Python<'_>,
        on_progress: Option<&Bound<'_, PyAny>>,
        poll: Duration,
    ) -> PyResult<Py<PyAny>> {
        loop {
            let shared = self.shared.clone();
            let finished = py.detach(move || shared.wait(Some(poll)));
            if let Some(cb) = on_progress {
                for event in self.take_events() {
                    if let Err(e) = cb.call1(event) {
                        return Err(self.abandon(py, e));
                    }
                }
            }
            if finished {
                return self.outcome(py);
            }
            // KeyboardInterrupt (or whatever a signal handler raised): stop
            // the work cleanly before letting it propagate.
            if let Err(e) = py.check_signals() {
                return Err(self.abandon(py, e));
            }
        }
    }

    fn outcome(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let state = self.shared.state();
        match &state.outcome {
            None => Err(PyRuntimeError::new_err(format!(
                "lifeboat {} is still running",
                self.name
            ))),
            Some(Ok(value)) => Ok(to_python(py, value)?.unbind()),
            Some(Err(failure)) => Err(failure.to_pyerr(py)),
        }
    }
}

#[pymethods]
impl Operation {
    /// Wait until the operation is over, or `timeout` seconds pass; the GIL
    /// is released meanwhile. Returns True when it is over.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout
            .map(Duration::try_from_secs_f64)
            .transpose()
            .map_err(|e| PyValueError::new_err(format!("timeout: {e}")))?;
        let shared = self.shared.clone();
        Ok(py.detach(move || shared.wait(timeout)))
    }

    /// Ask the operation to stop. It ends with CancelledError once its work
    /// is dropped and cleaned up; nothing it was writing becomes visible.
    fn cancel(&self) {
        self.shared.cancel();
    }

    /// Whether the operation is over.
    fn done(&self) -> bool {
        self.shared.is_done()
    }

    /// The result dict, or the typed exception raised. RuntimeError while
    /// still running.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.outcome(py)
    }

    /// Progress since the last call: a list of `(phase, bytes, total)`.
    /// Empty unless the operation was started with `progress=True`.
    fn take_progress(&self) -> Vec<Event> {
        self.take_events()
    }

    /// Call `callback()` once the operation is over: from a Lifeboat worker
    /// thread (holding the GIL), or at once if it is over already.
    fn add_done_callback(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        {
            let mut state = self.shared.state();
            if state.outcome.is_none() {
                state.callbacks.push(callback);
                return Ok(());
            }
        }
        callback.call0(py).map(drop)
    }

    fn __repr__(&self) -> String {
        let state = if self.shared.is_done() {
            "done"
        } else {
            "running"
        };
        format!("<lifeboat Operation {} ({state})>", self.name)
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        // Nobody can observe the outcome any more: stop the work.
        if !self.shared.is_done() {
            self.shared.cancel();
        }
    }
}

/// JSON results as plain Python objects (dict, list, str, int, float, bool, None).
fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => pyo3::types::PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_python(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
