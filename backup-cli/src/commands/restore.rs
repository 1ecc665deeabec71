use std::path::PathBuf;

use backup_core::{Error, LockMode, RestoreJob};
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
    /// Print the result as JSON on stdout.
    #[arg(long)]
    #[serde(skip)]
    json: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pg: PgArgs,
}

/// What a restore did.
#[derive(Debug, serde::Serialize)]
pub(crate) struct RestoreOutput {
    backup_id: String,
    target: String,
    bytes: u64,
    replaced: bool,
    fingerprint: backup_core::Fingerprint,
    duration_ms: u64,
}

pub(crate) async fn execute(ctx: &Context, a: &RestoreArgs) -> Result<RestoreOutput, Error> {
    let sink = sink(ctx, a.from.as_deref(), "--from")?;
    let to = a.to.clone().ok_or_else(|| Error::Usage {
        message: "restore needs a target: --to sqlite:///path/restored.db or postgres://…/newdb"
            .into(),
    })?;
    let pg = a.pg.resolve(ctx)?;
    let mut targets = backup_core::sources_from_url(&to, &pg)?;
    if targets.len() != 1 {
        return Err(Error::Usage {
            message: "restore into one database at a time".into(),
        });
    }
    let target = targets.remove(0);
    let mut job = RestoreJob::new(sink.clone(), target)
        .select(selector(a.id.clone(), a.latest)?)
        .force(a.force)
        .lock_mode(if a.wait {
            LockMode::Wait
        } else {
            LockMode::FailFast
        });
    if let Some(n) = source_name(ctx, a.source.as_deref())? {
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
    tracing::info!(
        summary = true,
        command = "restore",
        result = "ok",
        backup_id = %m.backup_id,
        target = %o.target,
        size = o.bytes,
        replaced = o.replaced,
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
        fingerprint: o.fingerprint.clone(),
        duration_ms: report.duration.as_millis() as u64,
    })
}

pub(crate) async fn run(ctx: &Context, a: RestoreArgs) -> Result<(), Error> {
    let out = execute(ctx, &a).await?;
    if a.json {
        super::print_json(&out);
    } else {
        println!(
            "restored backup {} to {} — {}, {} tables, {} rows, proven against the backup's fingerprint — in {:.1}s",
            out.backup_id,
            out.target,
            human_bytes(out.bytes),
            out.fingerprint.tables.len(),
            out.fingerprint.total_rows(),
            out.duration_ms as f64 / 1000.0
        );
    }
    Ok(())
}
