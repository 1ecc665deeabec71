//! The native half of the npm package `lifeboat`.
//!
//! Deliberately thin: every operation is `backup_core::ops`, the same
//! operations the command line calls, reached through
//! `backup_core::ops::json` with the options as JSON, so the Rust binary,
//! this package and the Python package cannot drift. The
//! JavaScript wrapper (`index.js`) turns camelCase options into the
//! snake_case keys, the outcome envelope into a value or a `LifeboatError`,
//! and an `AbortSignal` into [`CancelToken::cancel`].
//!
//! Node-specific rules followed here:
//! - every export catches panics (`catch_unwind`), so a bug rejects a
//!   promise instead of aborting the process;
//! - progress goes through a *weak*, non-blocking threadsafe function: it
//!   never keeps the event loop alive and never stalls the backup;
//! - an operation's promise keeps the process alive only while it runs.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backup_core::{Error, Phase, Progress};
use napi::bindgen_prelude::{Env, PromiseRaw, Result as NapiResult, Status};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How long a cancelled operation waits for the aborts of its abandoned
/// uploads to reach the service (the CLI waits as long on Ctrl-C).
const CLEANUP_GRACE: Duration = Duration::from_secs(5);

/// Progress events between start and finish are sent at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// One progress report, as passed to `onProgress`.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ProgressEvent {
    /// `snapshot`, `upload`, `verify` or `download`.
    pub phase: String,
    /// Bytes done in this phase so far.
    pub bytes: f64,
    /// The phase's size in bytes, when known.
    pub total: Option<f64>,
    /// `true` on the phase's last event.
    pub done: bool,
}

/// `onProgress`: weak (does not keep the process alive), errors not passed
/// as the first argument, unbounded queue (calls never block the backup).
type ProgressFn = ThreadsafeFunction<ProgressEvent, (), ProgressEvent, Status, false, true>;

/// Forwards the core's progress to a JavaScript callback, throttled: each
/// phase's start and finish are always sent, advances at most every
/// [`PROGRESS_INTERVAL`].
struct Forward {
    callback: ProgressFn,
    state: Mutex<PhaseState>,
}

struct PhaseState {
    phase: Phase,
    total: Option<u64>,
    bytes: u64,
    last_sent: Instant,
}

impl Forward {
    fn new(callback: ProgressFn) -> Self {
        Self {
            callback,
            state: Mutex::new(PhaseState {
                phase: Phase::Snapshot,
                total: None,
                bytes: 0,
                last_sent: Instant::now(),
            }),
        }
    }

    fn send(&self, s: &mut PhaseState, done: bool) {
        s.last_sent = Instant::now();
        let event = ProgressEvent {
            phase: s.phase.as_str().to_string(),
            bytes: s.bytes as f64,
            total: s.total.map(|t| t as f64),
            done,
        };
        // NonBlocking on an unbounded queue: only fails once the environment
        // is closing, when nobody is listening any more.
        let _ = self
            .callback
            .call(event, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PhaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Progress for Forward {
    fn start(&self, phase: Phase, total: Option<u64>) {
        let mut s = self.state();
        s.phase = phase;
        s.total = total;
        s.bytes = 0;
        self.send(&mut s, false);
    }

    fn advance(&self, bytes: u64) {
        let mut s = self.state();
        s.bytes += bytes;
        if s.last_sent.elapsed() >= PROGRESS_INTERVAL {
            self.send(&mut s, false);
        }
    }

    fn finish(&self, phase: Phase) {
        let mut s = self.state();
        s.phase = phase;
        self.send(&mut s, true);
    }
}

/// Cancels the operations it was passed to. The JavaScript wrapper creates
/// one per call that has an `AbortSignal` and cancels it on `abort`.
#[napi]
#[derive(Debug)]
pub struct CancelToken {
    cancelled: watch::Sender<bool>,
}

#[napi]
impl CancelToken {
    /// A token not yet cancelled.
    #[napi(constructor, catch_unwind)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            cancelled: watch::Sender::new(false),
        }
    }

    /// Cancel every operation holding this token: each drops its work
    /// (uploads abandoned, temporary files removed) and settles with a
    /// `cancelled` error. Idempotent.
    #[napi(catch_unwind)]
    pub fn cancel(&self) {
        self.cancelled.send_replace(true);
    }

    /// Whether [`CancelToken::cancel`] was called.
    #[napi(getter, catch_unwind)]
    pub fn cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }
}

/// Resolves once `rx`'s token is cancelled; never, if the token is gone
/// without having been cancelled.
async fn until_cancelled(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The outcome as the JSON text the wrapper parses: `{"ok": result}` or
/// `{"error": {code, exit_code, retryable, message}}`. Results travel as
/// text so that 64-bit sizes and every key arrive exactly as the CLI's
/// `--json` prints them.
fn envelope(outcome: Result<Value, Error>) -> String {
    let v = match outcome {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": {
            "code": e.kind().as_str(),
            "exit_code": e.exit_code(),
            "retryable": e.is_retryable(),
            "message": e.display_chain(),
        }}),
    };
    v.to_string()
}

/// Parse the wrapper's option text; malformed text is a usage error like
/// any other bad option.
fn options(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::Usage {
        message: format!("options are not valid JSON: {e}"),
    })
}

/// Run `op` on napi's tokio runtime and return its promise. With a token,
/// cancelling drops `op` (the core's cleanup on drop), waits briefly for
/// abandoned multipart uploads to be aborted, and settles with `cancelled`.
fn spawn<'env, F>(
    env: &'env Env,
    cancel: Option<&CancelToken>,
    op: F,
) -> NapiResult<PromiseRaw<'env, String>>
where
    F: Future<Output = Result<Value, Error>> + Send + 'static,
{
    let cancelled = cancel.map(|t| t.cancelled.subscribe());
    env.spawn_future(async move {
        let outcome = match cancelled {
            None => op.await,
            Some(rx) if *rx.borrow() => Err(Error::Cancelled),
            Some(rx) => {
                tokio::select! {
                    r = op => r,
                    () = until_cancelled(rx) => {
                        // `op` is dropped by now: wait for what it abandoned.
                        backup_core::sink::wait_for_cleanup(CLEANUP_GRACE).await;
                        Err(Error::Cancelled)
                    }
                }
            }
        };
        Ok(envelope(outcome))
    })
}

fn forward(on_progress: Option<ProgressFn>) -> Option<Arc<dyn Progress>> {
    on_progress.map(|f| Arc::new(Forward::new(f)) as Arc<dyn Progress>)
}

/// Run operation `op` (`backup`, `list`, `verify`, `drill`, `restore`,
/// `prune`, `status`) with `options_json`, the JSON text of the core's
/// typed arguments for it (`backup_core::ops::json`); resolves to the
/// envelope text. `on_progress` is used by the operations that report
/// progress (backup, verify, drill, restore).
#[napi(catch_unwind, ts_return_type = "Promise<string>")]
pub fn run<'env>(
    env: &'env Env,
    op: String,
    options_json: String,
    on_progress: Option<ProgressFn>,
    cancel: Option<&CancelToken>,
) -> NapiResult<PromiseRaw<'env, String>> {
    let progress = forward(on_progress);
    spawn(env, cancel, async move {
        backup_core::ops::json::call(&op, options(&options_json)?, progress).await
    })
}

/// The exit code of each error code (`ErrorKind::as_str` → exit code), the
/// one table `index.js` exports as `EXIT_CODES`.
#[napi(catch_unwind)]
pub fn exit_codes() -> std::collections::HashMap<String, i32> {
    backup_core::ErrorKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), k.exit_code()))
        .collect()
}

/// The option names operation `op` takes (its typed arguments' fields in
/// snake_case, `config` and `profile`): what the TypeScript types are
/// checked against.
#[napi(catch_unwind)]
pub fn option_names(op: String) -> NapiResult<Vec<String>> {
    backup_core::ops::json::option_names(&op)
        .map_err(|e| napi::Error::from_reason(e.display_chain()))
}

/// Run the whole `lifeboat` command line (`args[0]` is the program name) on
/// this thread, printing exactly as the binary does, and return its exit
/// code. Blocks the event loop: meant for `bin/lifeboat.js`.
#[napi(catch_unwind)]
pub fn run_cli(args: Vec<String>) -> i32 {
    let code = backup_cli::run(args);
    // The wrapper exits right after this returns.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    code
}

/// Send Lifeboat's logs to stderr (text or JSON lines), as the CLI does.
/// Off unless called; later calls are ignored.
#[napi(catch_unwind)]
pub fn init_logging(json: Option<bool>, verbose: Option<u32>, quiet: Option<bool>) {
    let verbose = u8::try_from(verbose.unwrap_or(0)).unwrap_or(u8::MAX);
    backup_cli::init_logging(json.unwrap_or(false), verbose, quiet.unwrap_or(false));
}
