//! `prune`: apply retention to a sink, and remove what interrupted runs
//! left once it is older than the grace period.

use serde::{Deserialize, Serialize};

use super::{Env, usage};
use crate::PruneReport;
use crate::error::{Error, Result};
use crate::retention::{self, RetentionPolicy};

/// The retention rules (over the config's `[retention]`), and where.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct PruneArgs {
    /// Where backups live (default: sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "from", value_name = "SINK"))]
    pub sink: Option<String>,
    /// Which source's backups (default: the config's source, or the only one in the sink).
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: Option<String>,
    /// Keep the N newest backups.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_last: Option<u32>,
    /// Keep every backup of the last D days.
    #[cfg_attr(feature = "clap", arg(long, value_name = "D"))]
    pub keep_days: Option<u32>,
    /// Keep the newest backup of each of the last N days.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_monthly: Option<u32>,
    /// Keep what point-in-time recovery to any moment of this window needs (7d): the base backup it starts from, and the WAL after it.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub keep_pitr: Option<String>,
    /// List what would go, and the rule that releases it; delete nothing.
    #[cfg_attr(feature = "clap", arg(long))]
    pub dry_run: bool,
}

fn policy(env: &Env, a: &PruneArgs) -> Result<RetentionPolicy> {
    let mut p = env.settings.retention.clone().unwrap_or_default();
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
    if let Some(w) = &a.keep_pitr {
        p.keep_pitr = Some(
            crate::config::parse_duration_secs(w)
                .map_err(|e| usage(format!("--keep-pitr: {e}")))?,
        );
    }
    Ok(p)
}

/// Delete the backups no rule keeps (the newest verified one always
/// stays), or with `dry_run` only decide.
///
/// # Errors
/// A listing failure deletes nothing.
pub async fn run(env: &Env, a: &PruneArgs) -> Result<PruneReport> {
    let sink = env.sink(a.sink.as_deref(), "--from")?;
    let policy = policy(env, a)?;
    policy.validate().map_err(usage)?;
    if !policy.has_rules() {
        return Err(usage(
            "no retention rule: pass --keep-last, --keep-days, --keep-daily, --keep-weekly, --keep-monthly or --keep-pitr, or set [retention] in lifeboat.toml",
        ));
    }
    let name = match env.source_name(a.source.as_deref())? {
        Some(n) => n,
        None => {
            let sources = crate::Catalog::new(sink.clone())
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
        crate::tempdir::sweep(&env.temp_root());
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
