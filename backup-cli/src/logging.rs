//! Logs on stderr: text with UTC timestamps, or one JSON object per line.
//! Every run ends with one summary record (`"summary": true`).

use backup_core::Error;
use tracing_subscriber::EnvFilter;

pub(crate) fn init(json: bool, verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // LIFEBOAT_LOG takes a full filter; dependencies stay at warn by default.
    let filter = std::env::var("LIFEBOAT_LOG").unwrap_or_else(|_| {
        format!("warn,backup_core={level},backup_cli={level},lifeboat={level}")
    });
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
    let code = err.exit_code();
    let message = err.display_chain();
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
