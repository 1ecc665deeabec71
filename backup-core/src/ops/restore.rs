//! `restore`: a stored backup into a database (a SQLite file, or a
//! PostgreSQL database that takes its name only once proven).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Env, PgToolArgs, SelectArgs, usage};
use crate::error::{Error, Result};
use crate::source::TargetReport;
use crate::source::postgres::fetch_globals;
use crate::{Catalog, Fingerprint, LockMode, PostgresSource, RestoreJob, RestoreTarget, Selector};

/// Which backup to restore, into what, and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct RestoreArgs {
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub select: SelectArgs,
    /// The database to create: sqlite:///path/restored.db or postgres://user@host/newdb. Never taken from the config.
    #[cfg_attr(
        feature = "clap",
        arg(long = "to", value_name = "TARGET", required = true)
    )]
    pub target: Option<String>,
    /// Replace an existing database (it is kept aside until the new one is proven).
    #[cfg_attr(feature = "clap", arg(long))]
    pub force: bool,
    /// Wait for another run on the same database instead of exiting 1.
    #[cfg_attr(feature = "clap", arg(long))]
    pub wait: bool,
    /// Directory for lock files.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub lock_dir: Option<PathBuf>,
    /// PostgreSQL: create the stored roles and tablespaces this server lacks before the data (existing ones are left unchanged).
    #[cfg_attr(feature = "clap", arg(long))]
    pub globals: bool,
    /// PostgreSQL: restore without ownership and privileges.
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_owner: bool,
    /// PostgreSQL: parallel pg_restore jobs (default: cores).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub jobs: Option<u32>,
    /// PostgreSQL: restore what loads when the archive does not load cleanly: pg_restore goes on past errors, every error and every table whose rows differ is listed, and the result still takes the target name. Without it, any error fails the restore and leaves the target untouched.
    #[cfg_attr(feature = "clap", arg(long))]
    pub partial: bool,
    /// PostgreSQL: do not ANALYZE the restored database before it takes the name (it then has no planner statistics until autovacuum gets to it).
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_analyze: bool,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub tools: PgToolArgs,
}

/// What a restore did. PostgreSQL adds what its restore reported
/// (`globals`: roles created and skipped; `settings_skipped`; `analyzed`),
/// at the top level.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutput {
    /// The backup restored.
    pub backup_id: String,
    /// The target restored into.
    pub target: String,
    /// Bytes read from the sink.
    pub bytes: u64,
    /// Whether an existing database was replaced.
    pub replaced: bool,
    /// The restored database's fingerprint (it matched the backup's).
    pub fingerprint: Fingerprint,
    /// How long it took.
    pub duration_ms: u64,
    /// The target's own report.
    #[serde(flatten)]
    pub report: TargetReport,
}

impl RestoreOutput {
    /// A `partial` restore that did not get everything back.
    pub fn incomplete(&self) -> bool {
        self.report.incomplete()
    }
}

/// Restore one backup.
///
/// # Errors
/// [`Error::Restore`] when it failed or was refused (an existing target
/// without `force`); the target is then untouched.
pub async fn run(env: &Env, a: &RestoreArgs) -> Result<RestoreOutput> {
    let sink = env.sink(a.select.sink.as_deref(), "--from")?;
    let to = a.target.clone().ok_or_else(|| {
        usage("restore needs a target: --to sqlite:///path/restored.db or postgres://…/newdb")
    })?;
    let mut pg = a.tools.resolve(env);
    pg.analyze &= !a.no_analyze;
    pg.partial = a.partial;
    pg.no_owner |= a.no_owner;
    if a.jobs.is_some() {
        pg.jobs = a.jobs;
    }
    pg.validate().map_err(usage)?;
    let mut target = crate::restore_target_from_url(&to, &pg)?;
    let mut which = a.select.selector()?;
    let name = env.source_name(a.select.source.as_deref())?;
    // `globals` on restore (the argument, never the config's `globals`,
    // which means "store them" at backup): read the stored roles first.
    if a.globals {
        if target.target_kind() != "postgres" {
            return Err(usage(
                "--globals restores PostgreSQL roles; the target is not PostgreSQL",
            ));
        }
        let entry = Catalog::new(sink.clone())
            .find_for_restore(name.as_deref(), &which)
            .await?;
        let m = entry.manifest;
        let Some(globals) = fetch_globals(&*sink, &m).await? else {
            return Err(Error::Restore {
                target: target.target_location(),
                message: format!(
                    "backup {} holds no roles to apply (it was taken without --globals)",
                    m.backup_id
                ),
                source: None,
            });
        };
        which = Selector::Id(m.backup_id.clone());
        let pg_target = PostgresSource::from_url(&to, &pg)?.remove(0);
        target = Arc::new(pg_target.with_globals(globals)) as Arc<dyn RestoreTarget>;
    }
    let mut job = RestoreJob::new(sink.clone(), target)
        .select(which)
        .force(a.force)
        .lock_mode(if a.wait {
            LockMode::Wait
        } else {
            LockMode::FailFast
        });
    if let Some(n) = name {
        job = job.source_name(n);
    }
    if let Some(d) = a.lock_dir.clone().or_else(|| env.settings.lock_dir.clone()) {
        job = job.lock_dir(d);
    }
    if let Some(p) = env.progress() {
        job = job.progress(p);
    }
    let report = job.run().await?;
    let (m, o) = (&report.manifest, &report.outcome);
    let out = RestoreOutput {
        backup_id: m.backup_id.clone(),
        target: o.target.clone(),
        bytes: o.bytes,
        replaced: o.replaced,
        fingerprint: o.fingerprint.clone(),
        duration_ms: report.duration.as_millis() as u64,
        report: o.report.clone(),
    };
    tracing::info!(
        summary = true,
        command = "restore",
        result = if out.incomplete() { "partial" } else { "ok" },
        backup_id = %out.backup_id,
        target = %out.target,
        size = out.bytes,
        replaced = out.replaced,
        analyzed = out.report.analyzed,
        analyze_ms = out.report.analyze_ms,
        tables = out.fingerprint.tables.len(),
        rows = out.fingerprint.total_rows(),
        duration_ms = out.duration_ms,
        "restore complete"
    );
    Ok(out)
}
