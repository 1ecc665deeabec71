use std::path::PathBuf;

use backup_core::{Error, VerifyJob};
use clap::Args;

use super::pg::{DrillArgs, PgArgs};
use super::{min_size, selector, sink, source_name, verdict_summary};
use crate::Context;

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct VerifyArgs {
    /// Backup id (or a unique prefix); default: the latest.
    id: Option<String>,
    /// Verify the latest complete backup.
    #[arg(long)]
    latest: bool,
    /// Where backups live (default: sink in lifeboat.toml).
    #[arg(long, value_name = "SINK")]
    from: Option<String>,
    /// Which source's backups, when the sink holds several.
    #[arg(long)]
    source: Option<String>,
    /// Size floor for the uncompressed dump (default 1 KiB).
    #[arg(long, value_name = "SIZE")]
    #[serde(deserialize_with = "super::string_or_number")]
    min_size: Option<String>,
    /// Directory for the decompressed copy (default: the temp dir).
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Print the verdicts as JSON on stdout.
    #[arg(long)]
    #[serde(skip)]
    json: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pg: PgArgs,
    #[command(flatten)]
    #[serde(flatten)]
    drill: DrillArgs,
}

/// The verdicts on one backup.
#[derive(Debug, serde::Serialize)]
pub(crate) struct VerifyOutput {
    backup_id: String,
    source: String,
    location: String,
    passed: bool,
    verdicts: Vec<backup_core::Verdict>,
    duration_ms: u64,
}

pub(crate) async fn execute(ctx: &Context, a: &VerifyArgs) -> Result<VerifyOutput, Error> {
    let sink = sink(ctx, a.from.as_deref(), "--from")?;
    let pg = a.pg.resolve(ctx)?;
    let selector = selector(a.id.clone(), a.latest)?;
    let min_size = min_size(ctx, a.min_size.as_deref())?;
    let source = source_name(ctx, a.source.as_deref())?;
    // The backup first: its kind decides what a drill is.
    let entry = backup_core::Catalog::new(sink.clone())
        .find(source.as_deref(), &selector)
        .await?;
    let mut job = VerifyJob::new(sink.clone())
        .select(selector)
        .min_size(min_size)
        .postgres_options(pg.clone());
    let kind = entry.manifest.source.kind.clone();
    if let Some(d) = a
        .drill
        .resolve(ctx, &pg, super::pg::DrillFor::Verify { kind: &kind })?
    {
        job = job.verifier(d);
    }
    if let Some(n) = source {
        job = job.source_name(n);
    }
    if let Some(d) = a.temp_dir.clone().or_else(|| ctx.settings.temp_dir.clone()) {
        job = job.temp_dir(d);
    }
    if let Some(p) = ctx.progress.clone() {
        job = job.progress(p);
    }
    let report = job.verify_entry(entry).await?;
    let m = &report.manifest;
    let location = format!("{}/{}", sink.location(), report.dir);
    tracing::info!(
        summary = true,
        command = "verify",
        result = "ok",
        backup_id = %m.backup_id,
        location = %location,
        size = m.artifact.stored_size,
        duration_ms = report.duration.as_millis() as u64,
        verdicts = %verdict_summary(&report.verdicts),
        "verify complete"
    );
    Ok(VerifyOutput {
        backup_id: m.backup_id.clone(),
        source: m.source.name.clone(),
        location,
        passed: true,
        duration_ms: report.duration.as_millis() as u64,
        verdicts: report.verdicts,
    })
}

pub(crate) async fn run(ctx: &Context, a: VerifyArgs) -> Result<(), Error> {
    let out = execute(ctx, &a).await?;
    if a.json {
        super::print_json(&out);
    } else {
        println!("backup {} of {} verified:", out.backup_id, out.source);
        for v in &out.verdicts {
            println!(
                "  ok  {:<17} {} ({} ms)",
                v.verifier, v.detail, v.duration_ms
            );
        }
    }
    Ok(())
}
