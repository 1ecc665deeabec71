use backup_core::retention::{self, RetentionPolicy};
use backup_core::{Error, PruneReport};
use clap::Args;

use super::{sink, source_name};
use crate::Context;

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct PruneArgs {
    /// Where backups live (default: sink in lifeboat.toml).
    #[arg(long, value_name = "SINK")]
    from: Option<String>,
    /// Which source's backups (default: the config's source, or the only one in the sink).
    #[arg(long)]
    source: Option<String>,
    /// Keep the N newest backups.
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep every backup of the last D days.
    #[arg(long, value_name = "D")]
    keep_days: Option<u32>,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// List what would go, and the rule that releases it; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the decisions as JSON.
    #[arg(long)]
    #[serde(skip)]
    json: bool,
}

pub(crate) fn policy(ctx: &Context, a: &PruneArgs) -> RetentionPolicy {
    let mut p = ctx.settings.retention.clone().unwrap_or_default();
    let set = |dst: &mut Option<u32>, v: Option<u32>| {
        if v.is_some() {
            *dst = v;
        }
    };
    set(&mut p.keep_last, a.keep_last);
    set(&mut p.keep_days, a.keep_days);
    set(&mut p.keep_daily, a.keep_daily);
    set(&mut p.keep_weekly, a.keep_weekly);
    set(&mut p.keep_monthly, a.keep_monthly);
    p
}

pub(crate) async fn execute(ctx: &Context, a: &PruneArgs) -> Result<PruneReport, Error> {
    let sink = sink(ctx, a.from.as_deref(), "--from")?;
    let policy = policy(ctx, a);
    policy.validate().map_err(|m| Error::Usage { message: m })?;
    if !policy.has_rules() {
        return Err(Error::Usage {
            message: "no retention rule: pass --keep-last, --keep-days, --keep-daily, --keep-weekly or --keep-monthly, or set [retention] in lifeboat.toml".into(),
        });
    }
    let name = match source_name(ctx, a.source.as_deref())? {
        Some(n) => n,
        None => {
            let sources = backup_core::Catalog::new(sink.clone())
                .list(None)
                .await?
                .sources();
            match sources.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(Error::NotFound {
                        location: sink.location().to_string(),
                        key: "any backup".into(),
                    });
                }
                many => {
                    return Err(Error::Usage {
                        message: format!(
                            "the sink holds backups of several sources ({}); name one with --source",
                            many.join(", ")
                        ),
                    });
                }
            }
        }
    };
    let report = retention::prune(&sink, &name, &policy, chrono::Utc::now(), a.dry_run).await?;
    if !a.dry_run {
        // Temporary directories runs killed on this host left.
        backup_core::tempdir::sweep(
            &ctx.settings
                .temp_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir),
        );
    }
    tracing::info!(
        summary = true,
        command = "prune",
        result = "ok",
        source = %name,
        dry_run = a.dry_run,
        kept = report.decisions.iter().filter(|d| d.keep).count(),
        deleted = report.decisions.iter().filter(|d| !d.keep).count(),
        leftovers = report.leftovers.len(),
        leftovers_removed = report.leftovers_removed,
        "prune complete"
    );
    Ok(report)
}

pub(crate) async fn run(ctx: &Context, a: PruneArgs) -> Result<(), Error> {
    let report = execute(ctx, &a).await?;
    if a.json {
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
    Ok(())
}
