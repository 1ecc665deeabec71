use std::path::PathBuf;
use std::sync::Arc;

use backup_core::source::postgres::fetch_globals;
use backup_core::{Catalog, Error, LockMode, PostgresSource, RestoreJob, Selector, Source};
use clap::Args;

use super::pg::PgArgs;
use super::{selector, sink, source_name};
use crate::{Context, human_bytes};

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RestoreArgs {
    /// Backup id (or a unique prefix); default: the latest.
    id: Option<String>,
    /// Restore the latest complete backup.
    #[arg(long)]
    latest: bool,
    /// Where backups live (default: sink in lifeboat.toml).
    #[arg(long, value_name = "SINK")]
    from: Option<String>,
    /// Which source's backups, when the sink holds several.
    #[arg(long)]
    source: Option<String>,
    /// The database to create: sqlite:///path/restored.db or postgres://user@host/newdb. Never taken from the config.
    #[arg(long, value_name = "TARGET", required = true)]
    to: Option<String>,
    /// Replace an existing database (it is kept aside until the new one is proven).
    #[arg(long)]
    force: bool,
    /// Wait for another run on the same database instead of exiting 1.
    #[arg(long)]
    wait: bool,
    /// Directory for lock files.
    #[arg(long, value_name = "DIR")]
    lock_dir: Option<PathBuf>,
    /// PostgreSQL: restore what loads when the archive does not load cleanly: pg_restore goes on past errors, every error and every table whose rows differ is listed, and the result still takes the target name. Without it, any error fails the restore and leaves the target untouched.
    #[arg(long)]
    partial: bool,
    /// PostgreSQL: do not ANALYZE the restored database before it takes the name (it then has no planner statistics until autovacuum gets to it).
    #[arg(long)]
    no_analyze: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    #[serde(skip)]
    json: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pg: PgArgs,
}

/// What a restore did. PostgreSQL adds what its restore reported
/// (`globals`: roles created and skipped; `settings_skipped`), at the top
/// level.
#[derive(Debug, serde::Serialize)]
pub(crate) struct RestoreOutput {
    backup_id: String,
    target: String,
    bytes: u64,
    replaced: bool,
    fingerprint: backup_core::Fingerprint,
    duration_ms: u64,
    #[serde(flatten)]
    report: serde_json::Map<String, serde_json::Value>,
}

pub(crate) async fn execute(ctx: &Context, a: &RestoreArgs) -> Result<RestoreOutput, Error> {
    let sink = sink(ctx, a.from.as_deref(), "--from")?;
    let to = a.to.clone().ok_or_else(|| Error::Usage {
        message: "restore needs a target: --to sqlite:///path/restored.db or postgres://…/newdb"
            .into(),
    })?;
    let mut pg = a.pg.resolve(ctx)?;
    pg.analyze &= !a.no_analyze;
    pg.partial = a.partial;
    let mut targets = backup_core::sources_from_url(&to, &pg)?;
    if targets.len() != 1 {
        return Err(Error::Usage {
            message: "restore into one database at a time".into(),
        });
    }
    let mut target = targets.remove(0);
    let mut which = selector(a.id.clone(), a.latest)?;
    let name = source_name(ctx, a.source.as_deref())?;
    // --globals on restore (the flag, never the config's `globals`, which
    // means "store them" at backup): read the backup's stored roles first.
    if a.pg.globals() {
        if target.kind() != "postgres" {
            return Err(Error::Usage {
                message: "--globals restores PostgreSQL roles; the target is not PostgreSQL".into(),
            });
        }
        let entry = Catalog::new(sink.clone())
            .find_for_restore(name.as_deref(), &which)
            .await?;
        let m = entry.manifest;
        let Some(globals) = fetch_globals(&*sink, &m).await? else {
            return Err(Error::Restore {
                target: target.location(),
                message: format!(
                    "backup {} holds no roles to apply (it was taken without --globals)",
                    m.backup_id
                ),
                source: None,
            });
        };
        which = Selector::Id(m.backup_id.clone());
        let pg_target = PostgresSource::from_url(&to, &pg)?.remove(0);
        target = Arc::new(pg_target.with_globals(globals)) as Arc<dyn Source>;
    }
    let mut job = RestoreJob::new(sink.clone(), target)
        .select(which)
        .force(a.force)
        .lock_mode(if a.wait {
            LockMode::Wait
        } else {
            LockMode::FailFast
        });
    if let Some(n) = name {
        job = job.source_name(n);
    }
    if let Some(d) = a.lock_dir.clone().or_else(|| ctx.settings.lock_dir.clone()) {
        job = job.lock_dir(d);
    }
    if let Some(p) = ctx.progress.clone() {
        job = job.progress(p);
    }
    let report = job.run().await?;
    let (m, o) = (&report.manifest, &report.outcome);
    // The restore's own report travels in the outcome's fingerprint
    // details (RestoreOutcome has no field for it); lift it out.
    let mut fingerprint = o.fingerprint.clone();
    let restore_report = match fingerprint.details.remove("restore") {
        Some(serde_json::Value::Object(r)) => r,
        _ => serde_json::Map::new(),
    };
    tracing::info!(
        summary = true,
        command = "restore",
        result = if incomplete(&restore_report) { "partial" } else { "ok" },
        backup_id = %m.backup_id,
        target = %o.target,
        size = o.bytes,
        replaced = o.replaced,
        analyzed = restore_report.get("analyzed").and_then(|v| v.as_bool()),
        analyze_ms = restore_report.get("analyze_ms").and_then(|v| v.as_u64()),
        tables = o.fingerprint.tables.len(),
        rows = o.fingerprint.total_rows(),
        duration_ms = report.duration.as_millis() as u64,
        "restore complete"
    );
    Ok(RestoreOutput {
        backup_id: m.backup_id.clone(),
        target: o.target.clone(),
        bytes: o.bytes,
        replaced: o.replaced,
        fingerprint,
        duration_ms: report.duration.as_millis() as u64,
        report: restore_report,
    })
}

pub(crate) async fn run(ctx: &Context, a: RestoreArgs) -> Result<(), Error> {
    let out = execute(ctx, &a).await?;
    if a.json {
        super::print_json(&out);
    } else {
        let proven = if incomplete(&out.report) {
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

/// A `--partial` restore that did not get everything back.
fn incomplete(report: &serde_json::Map<String, serde_json::Value>) -> bool {
    ["errors", "tables_differing"].iter().any(|k| {
        report
            .get(*k)
            .and_then(|v| v.as_array())
            .is_some_and(|a| !a.is_empty())
    })
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
