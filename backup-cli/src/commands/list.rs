use backup_core::{Catalog, Error};
use clap::Args;

use super::{sink, source_name};
use crate::{Context, human_bytes};

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Where backups live (default: sink in lifeboat.toml).
    #[arg(long, value_name = "SINK")]
    from: Option<String>,
    /// Only this source's backups (default: all).
    #[arg(long)]
    source: Option<String>,
    /// Print JSON: {"complete": [manifest, …], "incomplete": […]}.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(ctx: &Context, a: ListArgs) -> Result<(), Error> {
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
        "list complete"
    );
    if a.json {
        let complete: Vec<_> = listing.complete.iter().map(|b| &b.manifest).collect();
        super::print_json(&serde_json::json!({
            "complete": complete,
            "incomplete": listing.incomplete,
        }));
        return Ok(());
    }
    if listing.complete.is_empty() {
        println!("no complete backups in {}", sink.location());
    } else {
        println!(
            "{:<16} {:<22} {:<20} {:>10} {:>10} {:<8} {:>6} {:>12}",
            "SOURCE", "BACKUP ID", "STARTED (UTC)", "RAW", "STORED", "VERIFIED", "TABLES", "ROWS"
        );
        for b in &listing.complete {
            let m = &b.manifest;
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
    if !listing.incomplete.is_empty() {
        println!("\nincomplete (no valid manifest: never offered for restore):");
        for i in &listing.incomplete {
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
