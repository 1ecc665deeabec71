//! `mirror`: copy what one sink has and another lacks; see
//! [`crate::mirror`].

use serde::{Deserialize, Serialize};

use super::{Env, usage};
use crate::error::Result;
use crate::mirror::MirrorReport;

/// From where to where, and what.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct MirrorArgs {
    /// The sink to copy from (default: sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "from", value_name = "SINK"))]
    pub sink: Option<String>,
    /// The sink to copy to: it gets every complete backup, WAL file and verification or drill record it lacks.
    #[cfg_attr(feature = "clap", arg(long = "to", value_name = "SINK"))]
    pub target: Option<String>,
    /// Only this source's backups and WAL (default: every source in the sink).
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: Option<String>,
    /// Say what would be copied; copy nothing.
    #[cfg_attr(feature = "clap", arg(long))]
    pub dry_run: bool,
}

/// Mirror one sink into another.
///
/// # Errors
/// [`crate::Error::Verification`] (exit 4) naming each object that could
/// not be copied because it does not match its record (the rest is
/// copied); sink errors.
pub async fn run(env: &Env, a: &MirrorArgs) -> Result<MirrorReport> {
    let from = env.sink(a.sink.as_deref(), "--from")?;
    let to_url = a
        .target
        .clone()
        .ok_or_else(|| usage("mirror: pass --to SINK, the sink to copy to"))?;
    let to = env.sink(Some(&to_url), "--to")?;
    if from.location() == to.location() {
        return Err(usage("mirror: --from and --to are the same sink"));
    }
    let source = env.source_name(a.source.as_deref())?;
    let report = crate::mirror::mirror(from, to, source.as_deref(), a.dry_run).await?;
    tracing::info!(
        summary = true,
        command = "mirror",
        result = if report.failures.is_empty() {
            "ok"
        } else {
            "failed"
        },
        dry_run = report.dry_run,
        backups = report.backups.len(),
        backups_present = report.backups_present,
        wal_files = report.wal_files,
        records = report.records,
        bytes = report.bytes,
        duration_ms = report.duration_ms,
        "mirror complete"
    );
    report.into_result()
}
