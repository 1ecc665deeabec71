use backup_core::Error;
use backup_core::ops::Env;
use backup_core::ops::prune::{self, PruneArgs};
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct PruneCmd {
    #[command(flatten)]
    args: PruneArgs,
    /// Print the decisions as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(env: &Env, c: PruneCmd) -> Result<(), Error> {
    let report = prune::run(env, &c.args).await?;
    if c.json {
        super::print_json(&report);
        return Ok(());
    }
    let verb_go = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for d in &report.decisions {
        let what = if d.incomplete {
            " (incomplete)"
        } else if d.unreadable {
            " (unreadable)"
        } else {
            ""
        };
        let verb = if d.keep { "keep" } else { verb_go };
        println!(
            "{verb:<12} {}{what}  {}  — {}",
            d.backup_id,
            d.started_at.format("%Y-%m-%d %H:%M:%S"),
            d.reasons.join("; ")
        );
    }
    for l in &report.leftovers {
        let verb = match (l.stale, report.dry_run) {
            (false, _) => "keep",
            (true, true) => "would remove",
            (true, false) => "removed",
        };
        println!(
            "{verb:<12} interrupted upload of {}  {}  — {}",
            l.upload.key,
            l.upload.started.format("%Y-%m-%d %H:%M:%S"),
            if l.stale {
                "older than the grace period"
            } else {
                "within the grace period (may still be running)"
            }
        );
    }
    if let Some(w) = &report.wal {
        let verb = if report.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        // A dry run lists every file that would go, with why.
        if report.dry_run {
            for d in &w.delete {
                println!("{verb:<12} {}  — {}", d.key, d.reason);
            }
        }
        println!(
            "WAL archive: {} files, {verb} {}{}; {}",
            w.files,
            w.delete.len(),
            w.keep_from
                .as_ref()
                .map(|k| format!(" (everything before log/segment {k})"))
                .unwrap_or_default(),
            w.reason
        );
    }
    Ok(())
}
