//! `drill`: restore a stored backup into a scratch database (a throwaway
//! cluster, a drill server, or a scratch SQLite file), compare it with the
//! backup's fingerprint, run the smoke checks, drop it, and record the
//! evidence in the sink. The backup's other checks run too, so a drill is
//! a `verify` that always restores.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::verify::{VerifyArgs, VerifyOutput};
use super::{DrillTargetArgs, Env, PgToolArgs, SelectArgs};
use crate::error::Result;

/// Which backup to drill, and where.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct DrillArgs {
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub select: SelectArgs,
    /// Directory for the downloaded copy (default: the temp dir).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub temp_dir: Option<PathBuf>,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub drill_target: DrillTargetArgs,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub tools: PgToolArgs,
}

/// Drill one stored backup and record the evidence.
///
/// # Errors
/// [`crate::Error::Verification`] when the restored database differs or a
/// smoke check fails; [`crate::Error::Config`] when no drill target can be
/// set up.
pub async fn run(env: &Env, a: &DrillArgs) -> Result<VerifyOutput> {
    let v = VerifyArgs {
        select: a.select.clone(),
        temp_dir: a.temp_dir.clone(),
        drill: true,
        drill_target: a.drill_target.clone(),
        tools: a.tools.clone(),
        ..VerifyArgs::default()
    };
    super::verify::verify(env, &v, true, "drill").await
}
