//! A Rust service embedding Lifeboat: its own tokio runtime, its own
//! progress reporting, typed errors it can branch on.
//!
//! ```sh
//! cargo run -p lifeboat-examples --bin embedded-service [-- DIR]
//! ```
//!
//! Creates a sample database in DIR (default: a temporary directory), backs
//! it up to DIR/backups, verifies the stored backup, restores it, and prints
//! what happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use backup_core::{
    BackupJob, ErrorKind, LocalSink, Phase, Progress, RestoreJob, SqliteSource, VerifyJob,
};

/// The service's own progress sink: here, a byte counter it could export.
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Progress for Counter {
    fn advance(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }
    fn finish(&self, phase: Phase) {
        println!(
            "  phase {} done ({} bytes so far)",
            phase.as_str(),
            self.0.load(Ordering::Relaxed)
        );
    }
}

#[tokio::main]
async fn main() {
    let keep = std::env::args().nth(1).map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = keep.unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("work dir");
    let db = dir.join("service.db");
    if !db.exists() {
        backup_core::source::sqlite::write_sample_database(&db, 50_000).expect("sample database");
    }

    let sink = Arc::new(LocalSink::new(dir.join("backups")).expect("sink"));
    let progress = Arc::new(Counter::default());
    let result = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink.clone())
        .name("service")
        .lock_dir(&dir)
        .progress(progress.clone())
        .run()
        .await;
    let report = match result {
        Ok(r) => r,
        // A service branches on the kind, never on message text.
        Err(e) if e.kind() == ErrorKind::Locked => {
            println!("another backup is running; try later");
            return;
        }
        Err(e) => {
            eprintln!("backup failed (exit code {}): {e}", e.exit_code());
            std::process::exit(e.exit_code());
        }
    };
    let m = &report.manifest;
    println!(
        "backup {} stored {} of {} bytes in {:?}; verdicts: {}",
        m.backup_id,
        m.artifact.stored_size,
        m.artifact.raw_size,
        report.duration,
        m.verdicts
            .iter()
            .map(|v| format!("{}={}", v.verifier, v.passed))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let verified = VerifyJob::new(sink.clone())
        .source_name("service")
        .run()
        .await
        .expect("verify");
    println!(
        "re-verified {} with {} checks",
        verified.manifest.backup_id,
        verified.verdicts.len()
    );

    let restored = dir.join(format!("restored-{}.db", m.backup_id));
    let r = RestoreJob::new(sink, Arc::new(SqliteSource::new(&restored)))
        .source_name("service")
        .lock_dir(&dir)
        .run()
        .await
        .expect("restore");
    println!(
        "restored {} rows into {} (fingerprint matches: {})",
        r.outcome.fingerprint.total_rows(),
        r.outcome.target,
        r.outcome.fingerprint.tables == m.fingerprint.tables
    );
}
