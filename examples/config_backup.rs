//! What `lifeboat backup --config lifeboat.toml [--profile P]` does, from a
//! Rust service, through `backup_core::ops` alone: every database the
//! profile's source names, whole-run retries on transient errors, the
//! restore drill, Prometheus metrics, notifications and retention after
//! each backup, all as configured.
//!
//! ```sh
//! cargo run -p lifeboat-examples --bin config-backup -- lifeboat.toml [PROFILE]
//! ```
//!
//! Prints one line per committed backup; exits with the CLI's exit code
//! for the run's first failure.

use backup_core::ops::backup::BackupArgs;
use backup_core::ops::{self, Env};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let config = args.next().unwrap_or_else(|| "lifeboat.toml".into());
    let profile = args.next();
    let env = match Env::load(Some(config.as_ref()), profile.as_deref()) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("config-backup: {}", e.display_chain());
            std::process::exit(e.exit_code());
        }
    };
    // Flags the command line would add go here (`BackupArgs` holds the
    // same fields as `lifeboat backup --help`); none: all from the config.
    let run = ops::backup::run(&env, &BackupArgs::default()).await;
    for b in &run.backups {
        println!(
            "{} {} {} ({} bytes stored, {})",
            b.manifest.source.name,
            b.manifest.backup_id,
            b.location,
            b.manifest.artifact.stored_size,
            b.manifest.assurance().label()
        );
    }
    if let Err(e) = run.into_result() {
        eprintln!("config-backup: {}", e.display_chain());
        std::process::exit(e.exit_code());
    }
}
