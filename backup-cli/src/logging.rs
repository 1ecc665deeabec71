//! Logs on stderr: text with UTC timestamps, or one JSON object per line.
//! Every run ends with one summary record (`"summary": true`).

use std::io::Write;

use backup_core::Error;
use tracing_subscriber::EnvFilter;

/// Logging to stderr and, when given, appended to `file`. The file is
/// opened first: a file that cannot be written is a configuration error
/// (seed 000's permissions bug), reported before any work starts.
pub(crate) fn init_with_file(
    json: bool,
    verbose: u8,
    quiet: bool,
    file: Option<&std::path::Path>,
) -> Result<(), Error> {
    let Some(path) = file else {
        init(json, verbose, quiet);
        return Ok(());
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::Config {
            origin: path.display().to_string(),
            message: format!("the log file is not writable: {e}"),
        })?;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let file = std::sync::Arc::new(f);
    let filter = || {
        EnvFilter::try_new(filter_spec(verbose, quiet)).unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let registry = tracing_subscriber::registry().with(filter());
    let writer = move || FileWriter(file.clone());
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(stderr)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .with_target(false),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(stderr)
                    .with_ansi(false)
                    .with_target(false),
            )
            .try_init()
    };
    Ok(())
}

/// Appends to the log file; one `write` per record, so concurrent runs
/// interleave whole lines.
struct FileWriter(std::sync::Arc<std::fs::File>);

impl std::io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let clean = scrub(buf);
        (&*self.0).write_all(&clean)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A formatted record without secrets (`backup_core::redact`): every log
/// line, on stderr and in the log file, passes through here.
fn scrub(buf: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(buf) {
        Ok(text) => backup_core::redact::text(text).into_owned().into_bytes(),
        Err(_) => backup_core::redact::text(&String::from_utf8_lossy(buf))
            .into_owned()
            .into_bytes(),
    }
}

/// Stderr, through [`scrub`]. tracing's fmt layer writes each record with
/// one `write_all`, so a record is scrubbed whole.
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(&scrub(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn stderr() -> Stderr {
    Stderr
}

/// Print to stderr without secrets (for text that does not go through the
/// log: clap's usage errors).
pub(crate) fn eprint_scrubbed(text: &str) {
    let _ = std::io::stderr().write_all(&scrub(text.as_bytes()));
}

fn filter_spec(verbose: u8, quiet: bool) -> String {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    std::env::var("LIFEBOAT_LOG")
        .unwrap_or_else(|_| format!("warn,backup_core={level},backup_cli={level},lifeboat={level}"))
}

pub(crate) fn init(json: bool, verbose: u8, quiet: bool) {
    // LIFEBOAT_LOG takes a full filter; dependencies stay at warn by default.
    let filter =
        EnvFilter::try_new(filter_spec(verbose, quiet)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stderr)
        .with_target(false);
    // try_init: the bindings may call into the CLI more than once per process.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

/// Log the failure as the run's summary record, print it, and return its
/// exit code.
pub(crate) fn fail(command: &str, err: &Error) -> i32 {
    summary_failure(command, err, err.exit_code(), None)
}

/// [`fail`] with an exit code of the command's own (`wal fetch`).
pub(crate) fn fail_as(command: &str, err: &Error, code: i32) -> i32 {
    summary_failure(command, err, code, None)
}

/// [`fail`] for a run stopped by `signal`, with its own exit code (130 for
/// SIGINT, 143 for SIGTERM).
pub(crate) fn fail_with_code(command: &str, err: &Error, code: i32, signal: &str) -> i32 {
    summary_failure(command, err, code, Some(signal))
}

fn summary_failure(command: &str, err: &Error, code: i32, signal: Option<&str>) -> i32 {
    let message = match signal {
        Some(s) => format!("interrupted by {s}; nothing half-done was left visible"),
        None => err.display_chain(),
    };
    tracing::error!(
        summary = true,
        command,
        result = "failed",
        exit_code = code,
        error_kind = err.kind().as_str(),
        retryable = err.is_retryable(),
        error = %message,
        "{command} failed"
    );
    code
}
