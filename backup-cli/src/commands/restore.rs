use backup_core::ops::restore::{self, RestoreArgs};
use backup_core::ops::{Env, human_bytes};
use backup_core::{Error, TargetReport};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct RestoreCmd {
    #[command(flatten)]
    args: RestoreArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(env: &Env, c: RestoreCmd) -> Result<(), Error> {
    let out = restore::run(env, &c.args).await?;
    if c.json {
        super::print_json(&out);
    } else {
        let proven = if out.incomplete() {
            "NOT all of the backup: see below"
        } else {
            "proven against the backup's fingerprint"
        };
        if out.target.starts_with("pgdata://") {
            // A data directory: what proves it is the stream's SHA-256, and
            // the server's recovery.
            println!(
                "restored base backup {} to {} — {}, checked against the stored SHA-256 to its last byte, every file synced to disk — in {:.1}s",
                out.backup_id,
                out.target,
                human_bytes(out.bytes),
                out.duration_ms as f64 / 1000.0
            );
        } else {
            println!(
                "restored backup {} to {} — {}, {} tables, {} rows, {proven} — in {:.1}s",
                out.backup_id,
                out.target,
                human_bytes(out.bytes),
                out.fingerprint.tables.len(),
                out.fingerprint.total_rows(),
                out.duration_ms as f64 / 1000.0
            );
        }
        print_report(&out.report);
        if let Some(r) = &out.started {
            println!(
                "server started: recovery {} after {:.1}s{}{}",
                r.state,
                r.duration_ms as f64 / 1000.0,
                r.timeline
                    .map(|t| format!(" on timeline {t}"))
                    .unwrap_or_default(),
                if r.state == "paused" {
                    " (SELECT pg_wal_replay_resume() promotes it)"
                } else {
                    ""
                }
            );
            for l in [&r.point_reached, &r.last_transaction]
                .into_iter()
                .flatten()
            {
                println!("  {l}");
            }
            println!("  server log: {}", r.log.display());
        }
    }
    Ok(())
}

/// The PostgreSQL restore's report, for people.
fn print_report(r: &TargetReport) {
    for l in &r.leftovers_cleaned {
        println!("cleaned up: {l}");
    }
    if let Some(g) = &r.globals {
        println!(
            "roles: {} created ({}), {} already existed and were left unchanged ({})",
            g.roles_created.len(),
            g.roles_created.join(", "),
            g.roles_skipped.len(),
            g.roles_skipped.join(", ")
        );
        for t in &g.tablespaces_created {
            println!("tablespace created: {t}");
        }
        for n in &g.not_applied {
            println!("globals: not applied: {n}");
        }
        for e in &g.errors {
            println!("globals: failed: {e}");
        }
    }
    match (r.analyzed, r.analyze_ms) {
        (Some(true), Some(ms)) => {
            println!(
                "analyzed (planner statistics) in {:.1}s",
                ms as f64 / 1000.0
            )
        }
        (Some(false), _) => {
            println!(
                "not analyzed (--no-analyze): no planner statistics until autovacuum runs ANALYZE"
            )
        }
        _ => {}
    }
    for s in &r.settings_skipped {
        println!("database setting skipped: {s}");
    }
    if r.partial {
        let errors = r.errors.as_deref().unwrap_or_default();
        let differing = r.tables_differing.as_deref().unwrap_or_default();
        if errors.is_empty() && differing.is_empty() {
            println!("--partial: everything loaded; nothing differs from the backup");
        } else {
            println!(
                "PARTIAL RESTORE: {} error(s), {} difference(s) from the backup:",
                errors.len(),
                differing.len()
            );
            for e in errors {
                println!("  error: {e}");
            }
            for d in differing {
                println!("  differs: {d}");
            }
        }
    }
}
