//! What the CLI test files share: running the built `lifeboat` binary in a
//! directory of its own, isolated from the caller's environment.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `lifeboat` in `dir`, with locks there and no config, profile, log file or
/// PostgreSQL password inherited from the caller.
pub fn lifeboat(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    c.current_dir(dir)
        .env("LIFEBOAT_LOCK_DIR", dir)
        .env_remove("LIFEBOAT_CONFIG")
        .env_remove("LIFEBOAT_PROFILE")
        .env_remove("LIFEBOAT_LOG_FORMAT")
        .env_remove("LIFEBOAT_LOG_FILE")
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", dir.join("no-such-pgpass"))
        .stdin(Stdio::null());
    c
}

/// Exit code, stdout and stderr.
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("lifeboat runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).to_string(),
        String::from_utf8_lossy(&stderr).to_string(),
    )
}

/// The error lines lifeboat logged.
pub fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n")
}
