//! `lifeboat._native`: the Python extension module behind the `lifeboat`
//! package. Thin by design: options go in as JSON text to
//! `backup_core::ops::json` (the operations the CLI calls too), results come
//! back as dicts, errors as the classes of `lifeboat.errors`. The Python
//! layer (`python/lifeboat/`) adds keyword arguments, asyncio and typing.
//!
//! The GIL is released for all long work. Blocking calls wake every
//! [`POLL`] to deliver progress and run `PyErr_CheckSignals`, so Ctrl-C
//! cancels the operation, waits for its cleanup, then raises
//! `KeyboardInterrupt`.

mod error;
mod operation;
mod progress;
mod runtime;

use std::ffi::OsString;
use std::time::Duration;

use pyo3::prelude::*;

use operation::Operation;

/// How often a blocking call takes the GIL back to deliver progress and
/// check for signals.
const POLL: Duration = Duration::from_millis(50);

/// Start `op` (one of `backup_core::ops::json::OPERATIONS`) with `options`, a
/// JSON object as text, and return the running Operation at once.
#[pyfunction]
#[pyo3(signature = (op, options, progress=false))]
fn start(op: &str, options: &str, progress: bool) -> PyResult<Operation> {
    Operation::start(op, options, progress)
}

/// Run `op` with `options` (JSON text) to completion and return its result
/// dict. The GIL is released while it runs; `on_progress(phase, bytes,
/// total)` is called on this thread. Ctrl-C cancels the operation cleanly
/// and raises KeyboardInterrupt.
#[pyfunction]
#[pyo3(signature = (op, options, on_progress=None))]
fn run(
    py: Python<'_>,
    op: &str,
    options: &str,
    on_progress: Option<Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let operation = Operation::start(op, options, on_progress.is_some())?;
    operation.run_blocking(py, on_progress.as_ref(), POLL)
}

/// Run the whole `lifeboat` command line with `args` (`args[0]` is the
/// program name) and return its exit code. Prints exactly what the binary
/// prints; handles Ctrl-C itself (exit 130). Meant for `python -m lifeboat`.
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<OsString>) -> i32 {
    py.detach(move || backup_cli::run(args))
}

/// Send Lifeboat's logs to stderr, as text or JSON lines, like the CLI
/// (`verbose` 1 = debug, 2 = trace; `quiet` = warnings and errors only).
/// Later calls do nothing: the first one installs the logger.
#[pyfunction]
#[pyo3(signature = (json=false, verbose=0, quiet=false))]
fn init_logging(json: bool, verbose: u8, quiet: bool) {
    backup_cli::init_logging(json, verbose, quiet);
}

/// The option names `op` takes: its typed arguments' fields (snake_case),
/// `config` and `profile`. The Python signatures are tested against these.
#[pyfunction]
fn option_names(op: &str) -> PyResult<Vec<String>> {
    backup_core::ops::json::option_names(op)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.display_chain()))
}

/// The native half of the `lifeboat` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Operation>()?;
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(init_logging, m)?)?;
    m.add_function(wrap_pyfunction!(option_names, m)?)?;
    Ok(())
}
