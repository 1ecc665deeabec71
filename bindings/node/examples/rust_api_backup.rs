//! The Rust-API side of `benches/binding_overhead.mjs`: time `runs` backups
//! of one SQLite database through `backup_core::ops::json::call`, the
//! function the Node binding calls, in one process with one tokio runtime, as the
//! binding does.
//!
//! ```sh
//! cargo run --release -p lifeboat-node --example rust_api_backup -- DB SINK_DIR RUNS
//! ```
//! Prints one JSON line: `{"wall_ms": [...], "job_ms": [...]}`; each backup
//! goes to a fresh folder under SINK_DIR, removed after it is timed.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, sinks, runs] = args.as_slice() else {
        eprintln!("usage: rust_api_backup DB SINK_DIR RUNS");
        std::process::exit(64);
    };
    let runs: usize = runs.parse().expect("RUNS is a number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut wall_ms = Vec::new();
    let mut job_ms = Vec::new();
    for i in 0..runs {
        let sink = std::path::Path::new(sinks).join(format!("rust-{i}"));
        let options = serde_json::json!({
            "source": format!("sqlite://{db}"),
            "sink": sink.display().to_string(),
            "lock_dir": sinks,
        });
        let started = Instant::now();
        let out = runtime
            .block_on(backup_core::ops::json::call("backup", options, None))
            .unwrap_or_else(|e| panic!("backup failed: {}", e.display_chain()));
        wall_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        job_ms.push(out["backups"][0]["duration_ms"].as_u64().unwrap_or(0));
        std::fs::remove_dir_all(&sink).expect("remove the sink");
    }
    println!(
        "{}",
        serde_json::json!({ "wall_ms": wall_ms, "job_ms": job_ms })
    );
}
