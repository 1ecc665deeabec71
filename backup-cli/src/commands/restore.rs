use backup_core::Error;
use backup_core::ops::restore::{self, RestoreArgs};
use backup_core::ops::{Env, human_bytes};
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
        println!(
            "restored backup {} to {} — {}, {} tables, {} rows, {proven} — in {:.1}s",
            out.backup_id,
            out.target,
            human_bytes(out.bytes),
            out.fingerprint.tables.len(),
            out.fingerprint.total_rows(),
            out.duration_ms as f64 / 1000.0
        );
        print_report(&out.report);
    }
    Ok(())
}

/// The PostgreSQL restore's report, for people.
fn print_report(r: &serde_json::Map<String, serde_json::Value>) {
    let list = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for l in list(r.get("leftovers_cleaned")) {
        println!("cleaned up: {l}");
    }
    if let Some(g) = r.get("globals") {
        let created = list(g.get("roles_created"));
        let skipped = list(g.get("roles_skipped"));
        println!(
            "roles: {} created ({}), {} already existed and were left unchanged ({})",
            created.len(),
            created.join(", "),
            skipped.len(),
            skipped.join(", ")
        );
        for t in list(g.get("tablespaces_created")) {
            println!("tablespace created: {t}");
        }
        for n in list(g.get("not_applied")) {
            println!("globals: not applied: {n}");
        }
        for e in list(g.get("errors")) {
            println!("globals: failed: {e}");
        }
    }
    match (
        r.get("analyzed"),
        r.get("analyze_ms").and_then(|v| v.as_u64()),
    ) {
        (Some(serde_json::Value::Bool(true)), Some(ms)) => {
            println!(
                "analyzed (planner statistics) in {:.1}s",
                ms as f64 / 1000.0
            )
        }
        (Some(serde_json::Value::Bool(false)), _) => {
            println!(
                "not analyzed (--no-analyze): no planner statistics until autovacuum runs ANALYZE"
            )
        }
        _ => {}
    }
    for s in list(r.get("settings_skipped")) {
        println!("database setting skipped: {s}");
    }
    if r.get("partial").and_then(|v| v.as_bool()) == Some(true) {
        let errors = list(r.get("errors"));
        let differing = list(r.get("tables_differing"));
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
