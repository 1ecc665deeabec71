//! `verify`: prove a stored backup again (size, checksum, the data itself,
//! and a restore drill when asked), and record the verdict in the sink.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{DrillFor, DrillTargetArgs, Env, PgToolArgs, SelectArgs, verdict_summary};
use crate::error::Result;
use crate::{Catalog, Verdict, VerifyJob};

/// Which backup to verify, and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct VerifyArgs {
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub select: SelectArgs,
    /// Size floor for the uncompressed dump (default 1 KiB).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SIZE"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub min_size: Option<String>,
    /// Directory for the decompressed copy (default: the temp dir).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub temp_dir: Option<PathBuf>,
    /// PostgreSQL: fail verification when the archive lists fewer tables (default 1).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub min_tables: Option<usize>,
    /// Also restore the backup in a drill (see `lifeboat drill`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub drill: bool,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub drill_target: DrillTargetArgs,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub tools: PgToolArgs,
}

/// The verdicts on one backup.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutput {
    /// The backup verified.
    pub backup_id: String,
    /// Its source name.
    pub source: String,
    /// `<sink>/<backup dir>`.
    pub location: String,
    /// Always `true` in a result (a failed check is an error).
    pub passed: bool,
    /// One verdict per check.
    pub verdicts: Vec<Verdict>,
    /// How long it took.
    pub duration_ms: u64,
}

/// Verify one stored backup and record the verdict.
///
/// # Errors
/// [`crate::Error::Verification`] naming each failed check; others when the
/// checks could not run.
pub async fn run(env: &Env, a: &VerifyArgs) -> Result<VerifyOutput> {
    verify(env, a, false, "verify").await
}

/// Shared by `verify` and `drill` (`drill_only`: the command is `drill`).
pub(super) async fn verify(
    env: &Env,
    a: &VerifyArgs,
    drill_only: bool,
    command: &str,
) -> Result<VerifyOutput> {
    let sink = env.sink(a.select.sink.as_deref(), "--from")?;
    let mut pg = a.tools.resolve(env);
    if let Some(n) = a.min_tables {
        pg.min_tables = n;
    }
    let selector = a.select.selector()?;
    let min_size = env.min_size(a.min_size.as_deref())?;
    let source = env.source_name(a.select.source.as_deref())?;
    // The backup first: its kind decides what a drill is.
    let entry = Catalog::new(sink.clone())
        .find(source.as_deref(), &selector)
        .await?;
    let mut job = VerifyJob::new(sink.clone())
        .select(selector)
        .min_size(min_size)
        .postgres_options(pg.clone());
    let kind = entry.manifest.source.kind.clone();
    let explicit = drill_only || a.drill || a.drill_target.named();
    if let Some(d) = a.drill_target.resolve(
        env,
        &pg,
        DrillFor::Stored {
            kind: &kind,
            explicit,
        },
    )? {
        job = job.verifier(d);
    }
    if let Some(n) = source {
        job = job.source_name(n);
    }
    if let Some(d) = env.temp_dir(a.temp_dir.as_ref()) {
        job = job.temp_dir(d);
    }
    if let Some(p) = env.progress() {
        job = job.progress(p);
    }
    if let Some(k) = env.identities(a.select.identity.as_deref())? {
        job = job.identities(k);
    }
    let report = job.verify_entry(entry).await?;
    let m = &report.manifest;
    let location = format!("{}/{}", sink.location(), report.dir);
    tracing::info!(
        summary = true,
        command,
        result = "ok",
        backup_id = %m.backup_id,
        location = %location,
        size = m.artifact.stored_size,
        duration_ms = report.duration.as_millis() as u64,
        verdicts = %verdict_summary(&report.verdicts),
        "{command} complete"
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
