use backup_core::Error;
use backup_core::ops::backup::{self, BackupArgs, BackupOutput};
use backup_core::ops::{Env, human_bytes, verdict_summary};
use clap::Args;

use super::print_json;

#[derive(Debug, Args)]
pub(crate) struct BackupCmd {
    #[command(flatten)]
    args: BackupArgs,
    /// Print the manifest as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(env: &Env, c: BackupCmd) -> Result<(), Error> {
    let run = backup::run(env, &c.args).await;
    if c.json {
        print_json(&run.backups);
    } else {
        for o in &run.backups {
            print_human(o);
        }
    }
    run.into_result().map(|_| ())
}

fn print_human(o: &BackupOutput) {
    print_main(o);
    for c in &o.copies {
        match &c.error {
            None => println!("  copied to {} ({}), checked", c.sink, human_bytes(c.bytes)),
            Some(e) => println!("  NOT copied to {}: {e}", c.sink),
        }
    }
}

fn print_main(o: &BackupOutput) {
    let m = &o.manifest;
    if let backup_core::SourceDetails::PostgresPhysical(d) = backup_core::SourceDetails::of(m) {
        println!(
            "physical backup {} verified ({}) — {} raw, {} stored, WAL {} to {} on timeline {} — {} in {:.1}s",
            m.backup_id,
            verdict_summary(&m.verdicts),
            human_bytes(m.artifact.raw_size),
            human_bytes(m.artifact.stored_size),
            d.start_lsn.as_deref().unwrap_or("?"),
            d.stop_lsn.as_deref().unwrap_or("?"),
            d.timeline.unwrap_or(0),
            o.location,
            o.duration_ms as f64 / 1000.0
        );
        return;
    }
    println!(
        "backup {} verified ({}) — {} raw, {} stored, {} tables, {} rows — {} in {:.1}s",
        m.backup_id,
        verdict_summary(&m.verdicts),
        human_bytes(m.artifact.raw_size),
        human_bytes(m.artifact.stored_size),
        m.fingerprint.tables.len(),
        m.fingerprint.total_rows(),
        o.location,
        o.duration_ms as f64 / 1000.0
    );
    if let Some(d) = &o.drill {
        println!("  {}", d.detail);
    }
}
