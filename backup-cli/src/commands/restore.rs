use std::path::PathBuf;
use std::sync::Arc;

use backup_core::{Error, LockMode, RestoreJob};
use clap::Args;

use super::pg::PgArgs;
use super::{selector, sink, source_name};
use crate::{Context, human_bytes, progress::Bar};

#[derive(Debug, Args)]
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
    #[arg(long, value_name = "TARGET")]
    to: String,
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
    json: bool,
    #[command(flatten)]
    pg: PgArgs,
}

pub(crate) async fn run(ctx: &Context, a: RestoreArgs) -> Result<(), Error> {
    let sink = sink(ctx, a.from.as_deref(), "--from")?;
    let pg = a.pg.resolve(ctx)?;
    let mut targets = backup_core::sources_from_url(&a.to, &pg)?;
    if targets.len() != 1 {
        return Err(Error::Usage {
            message: "restore into one database at a time".into(),
        });
    }
    let target = targets.remove(0);
    let mut job = RestoreJob::new(sink.clone(), target)
        .select(selector(a.id, a.latest)?)
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
    if ctx.progress {
        job = job.progress(Arc::new(Bar::default()));
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
    if a.json {
        super::print_json(&serde_json::json!({
            "backup_id": m.backup_id,
            "target": o.target,
            "bytes": o.bytes,
            "replaced": o.replaced,
            "fingerprint": o.fingerprint,
        }));
    } else {
        println!(
            "restored backup {} to {} — {}, {} tables, {} rows, proven against the backup's fingerprint — in {:.1}s",
            m.backup_id,
            o.target,
            human_bytes(o.bytes),
            o.fingerprint.tables.len(),
            o.fingerprint.total_rows(),
            report.duration.as_secs_f64()
        );
    }
    Ok(())
}
