use backup_core::{Catalog, Error};
use clap::Args;

use super::{sink, source_name};
use crate::{Context, human_bytes};

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct ListArgs {
    /// Where backups live (default: sink in lifeboat.toml).
    #[arg(long, value_name = "SINK")]
    from: Option<String>,
    /// Only this source's backups (default: all).
    #[arg(long)]
    source: Option<String>,
    /// Print JSON: {"complete": [manifest, …], "unreadable": […], "incomplete": […]}.
    #[arg(long)]
    #[serde(skip)]
    json: bool,
}

/// Complete backups (their manifests) and incomplete ones.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ListOutput {
    location: String,
    complete: Vec<backup_core::Manifest>,
    /// Manifests that exist but cannot be read: kept, never restored from.
    unreadable: Vec<backup_core::IncompleteBackup>,
    incomplete: Vec<backup_core::IncompleteBackup>,
}

pub(crate) async fn execute(ctx: &Context, a: &ListArgs) -> Result<ListOutput, Error> {
    let sink = sink(ctx, a.from.as_deref(), "--from")?;
    let name = if a.source.is_some() || ctx.settings.source.is_some() || ctx.settings.name.is_some()
    {
        source_name(ctx, a.source.as_deref())?
    } else {
        None
    };
    let listing = Catalog::new(sink.clone()).list(name.as_deref()).await?;
    tracing::info!(
        summary = true,
        command = "list",
        result = "ok",
        location = %sink.location(),
        complete = listing.complete.len(),
        incomplete = listing.incomplete.len(),
        unreadable = listing.unreadable.len(),
        "list complete"
    );
    Ok(ListOutput {
        location: sink.location().to_string(),
        complete: listing.complete.into_iter().map(|b| b.manifest).collect(),
        unreadable: listing.unreadable,
        incomplete: listing.incomplete,
    })
}

pub(crate) async fn run(ctx: &Context, a: ListArgs) -> Result<(), Error> {
    let out = execute(ctx, &a).await?;
    if a.json {
        super::print_json(&out);
        return Ok(());
    }
    if out.complete.is_empty() {
        println!("no complete backups in {}", out.location);
    } else {
        println!(
            "{:<16} {:<22} {:<20} {:>10} {:>10} {:<8} {:>6} {:>12}",
            "SOURCE", "BACKUP ID", "STARTED (UTC)", "RAW", "STORED", "VERIFIED", "TABLES", "ROWS"
        );
        for m in &out.complete {
            println!(
                "{:<16} {:<22} {:<20} {:>10} {:>10} {:<8} {:>6} {:>12}",
                m.source.name,
                m.backup_id,
                m.started_at.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(m.artifact.raw_size),
                human_bytes(m.artifact.stored_size),
                if m.verified() { "yes" } else { "NO" },
                m.fingerprint.tables.len(),
                m.fingerprint.total_rows()
            );
        }
    }
    if !out.unreadable.is_empty() {
        println!(
            "\nunreadable (a manifest this lifeboat cannot read: kept, never pruned, never restored from):"
        );
        for i in &out.unreadable {
            println!(
                "{:<16} {:<22} {:<20} {:>10}  {}",
                i.source,
                i.backup_id,
                i.last_modified.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(i.bytes),
                i.reason
            );
        }
    }
    if !out.incomplete.is_empty() {
        println!(
            "\nincomplete (no manifest: never offered for restore; removed by prune after the grace period):"
        );
        for i in &out.incomplete {
            println!(
                "{:<16} {:<22} {:<20} {:>10}  {}",
                i.source,
                i.backup_id,
                i.last_modified.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(i.bytes),
                i.reason
            );
        }
    }
    Ok(())
}
