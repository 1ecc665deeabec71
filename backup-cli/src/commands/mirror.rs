use backup_core::Error;
use backup_core::ops::mirror::{self, MirrorArgs};
use backup_core::ops::{Env, human_bytes};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct MirrorCmd {
    #[command(flatten)]
    args: MirrorArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(env: &Env, c: MirrorCmd) -> Result<(), Error> {
    let r = mirror::run(env, &c.args).await?;
    if c.json {
        super::print_json(&r);
        return Ok(());
    }
    let verb = if r.dry_run { "would copy" } else { "copied" };
    println!(
        "{verb} {} backup(s), {} WAL file(s), {} record(s) ({}) from {} to {} in {:.1}s; {} backup(s) were there already",
        r.backups.len(),
        r.wal_files,
        r.records,
        human_bytes(r.bytes),
        r.from,
        r.to,
        r.duration_ms as f64 / 1000.0,
        r.backups_present
    );
    for b in &r.backups {
        println!("  {verb} backup {b}");
    }
    Ok(())
}
