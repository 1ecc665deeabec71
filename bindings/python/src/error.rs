//! The one error mapper: core errors become the exception classes of
//! `lifeboat.errors`, matched on the error's kind, never on its text.

use backup_core::{Error, ErrorKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBool};

/// A failed operation, kept as plain data so it can be raised more than once
/// (`Operation.result()` may be called again) and crosses threads freely.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    kind: Option<ErrorKind>,
    message: String,
    exit_code: i32,
    retryable: bool,
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        Self {
            kind: Some(e.kind()),
            message: e.display_chain(),
            exit_code: e.exit_code(),
            retryable: e.is_retryable(),
        }
    }
}

impl Failure {
    /// A failure of the binding itself (a panic, a runtime that went away):
    /// raised as the root class with the software-error exit code.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: None,
            message: message.into(),
            exit_code: 70,
            retryable: false,
        }
    }

    fn class_name(&self) -> &'static str {
        match self.kind {
            Some(ErrorKind::Locked) => "LockError",
            Some(ErrorKind::Source) => "SourceError",
            Some(ErrorKind::Sink) => "SinkError",
            Some(ErrorKind::NotFound) => "NotFoundError",
            Some(ErrorKind::Verification) => "VerificationError",
            Some(ErrorKind::Restore) => "RestoreError",
            Some(ErrorKind::Health) => "HealthError",
            Some(ErrorKind::Usage) => "UsageError",
            Some(ErrorKind::Config) => "ConfigError",
            Some(ErrorKind::Cancelled) => "CancelledError",
            // A kind added to the core later still raises a LifeboatError.
            Some(_) | None => "LifeboatError",
        }
    }

    fn code(&self) -> &'static str {
        self.kind.map_or("internal", ErrorKind::as_str)
    }

    /// The Python exception: `lifeboat.errors.<Class>(message)` with `code`,
    /// `exit_code` and `retryable` set.
    pub(crate) fn to_pyerr(&self, py: Python<'_>) -> PyErr {
        let build = || -> PyResult<PyErr> {
            let class = py.import("lifeboat.errors")?.getattr(self.class_name())?;
            let kwargs = [
                ("code", self.code().into_pyobject(py)?.into_any()),
                ("exit_code", self.exit_code.into_pyobject(py)?.into_any()),
                (
                    "retryable",
                    PyBool::new(py, self.retryable).to_owned().into_any(),
                ),
            ]
            .into_py_dict(py)?;
            let exc = class.call((self.message.as_str(),), Some(&kwargs))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| {
            // Only if lifeboat.errors itself is broken: keep the message.
            let err = PyRuntimeError::new_err(format!("{} ({})", self.message, self.code()));
            err.set_cause(py, Some(e));
            err
        })
    }
}
