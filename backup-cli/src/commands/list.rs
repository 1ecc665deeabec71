use backup_core::Error;
use backup_core::ops::list::{self, ListArgs};
use backup_core::ops::{Env, human_bytes};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ListCmd {
    #[command(flatten)]
    args: ListArgs,
    /// Print JSON: {"complete": [manifest, …], "unreadable": […], "incomplete": […], "leftovers": {…}}.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(env: &Env, c: ListCmd) -> Result<(), Error> {
    let out = list::run(env, &c.args).await?;
    if c.json {
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
        for l in &out.complete {
            let m = &l.manifest;
            println!(
                "{:<16} {:<22} {:<20} {:>10} {:>10} {:<8} {:>6} {:>12}",
                m.source.name,
                m.backup_id,
                m.started_at.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(m.artifact.raw_size),
                human_bytes(m.artifact.stored_size),
                l.assurance.label(),
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
    if !out.leftovers.uploads.is_empty()
        || !out.leftovers.local.is_empty()
        || !out.leftovers.databases.is_empty()
    {
        println!(
            "\nleft by interrupted runs (removed by prune and the next run after the grace period):"
        );
        for l in &out.leftovers.uploads {
            println!(
                "  upload  {}  started {}{}",
                l.upload.key,
                l.upload.started.format("%Y-%m-%d %H:%M:%S"),
                if l.stale { " (stale)" } else { "" }
            );
        }
        for l in &out.leftovers.local {
            println!("  temp    {}  {}", l.path.display(), human_bytes(l.bytes));
        }
        for d in &out.leftovers.databases {
            println!("  database {d}  (removed by the next restore or drill on that server)");
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
