//! Named crash points, for the tests that prove a step survives `kill -9`.
//!
//! `LIFEBOAT_FAILPOINTS=name[,name…]` makes the process kill itself with
//! SIGKILL when it reaches one of those points: no destructor runs, no
//! buffer is flushed, exactly as if an operator or the OOM killer had struck
//! there. Unset (always, outside tests), a point is one relaxed atomic load.
//!
//! `name=pause` instead holds the run there for 10 seconds (asynchronously,
//! so signals are still handled): for the tests that interrupt a run at a
//! known step.
//!
//! The points are listed in `docs/architecture.md` ("Crash points").

use std::sync::OnceLock;

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("LIFEBOAT_FAILPOINTS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Hold the run here for 10 s if `name=pause` is armed.
pub async fn pause(name: &str) {
    let armed_as = format!("{name}=pause");
    if armed().contains(&armed_as) {
        tracing::info!(failpoint = name, "failpoint reached: pausing for 10 s");
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
}

/// Crash here if `name` is armed.
pub fn point(name: &str) {
    if armed().iter().any(|a| a == name) {
        tracing::error!(failpoint = name, "failpoint reached: killing the process");
        let pid = std::process::id().to_string();
        // A real SIGKILL, as `kill -9` sends; abort() if that cannot run.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        std::thread::sleep(std::time::Duration::from_secs(5));
        std::process::abort();
    }
}
