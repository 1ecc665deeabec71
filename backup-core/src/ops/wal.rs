//! `wal push` and `wal fetch`: PostgreSQL's `archive_command` and
//! `restore_command` (see [`crate::wal`] for the contract).
//!
//! ```text
//! archive_command = 'lifeboat wal push %p --to s3://acme-backups/prod --name app'
//! restore_command = 'lifeboat wal fetch %f %p --from s3://acme-backups/prod --name app'
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Env, usage};
use crate::error::Result;
use crate::wal::{self, WalFetchReport, WalPushReport};

/// Archive one WAL file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct WalPushArgs {
    /// The WAL file to archive: PostgreSQL's %p.
    #[cfg_attr(feature = "clap", arg(value_name = "PATH"))]
    pub path: PathBuf,
    /// Where the archive lives (default: sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "to", value_name = "SINK"))]
    pub sink: Option<String>,
    /// The source name the archive is kept under, beside that source's backups (default: the config's name, or its source's default name).
    #[cfg_attr(feature = "clap", arg(long))]
    pub name: Option<String>,
    /// zstd level, 1 to 19 (default 3).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub level: Option<i32>,
}

/// Fetch one archived WAL file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct WalFetchArgs {
    /// The WAL file's name: PostgreSQL's %f.
    #[cfg_attr(feature = "clap", arg(value_name = "NAME"))]
    pub file_name: String,
    /// Where to write it: PostgreSQL's %p.
    #[cfg_attr(feature = "clap", arg(value_name = "PATH"))]
    pub path: PathBuf,
    /// Where the archive lives (default: sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "from", value_name = "SINK"))]
    pub sink: Option<String>,
    /// The source name the archive is kept under (default: the config's name, or its source's default name).
    #[cfg_attr(feature = "clap", arg(long))]
    pub name: Option<String>,
}

fn source_name(env: &Env, arg: Option<&str>) -> Result<String> {
    env.source_name(arg)?.ok_or_else(|| {
        usage("no source name for the WAL archive: pass --name (the name the source's backups are kept under) or set name or source in lifeboat.toml")
    })
}

/// Archive one WAL file; see [`crate::wal::push`].
///
/// # Errors
/// As [`crate::wal::push`], and usage errors for missing arguments.
pub async fn push(env: &Env, a: &WalPushArgs) -> Result<WalPushReport> {
    if a.path.as_os_str().is_empty() {
        return Err(usage("wal push: the path of the WAL file (%p) is missing"));
    }
    let level = a.level.unwrap_or(crate::source::DEFAULT_LEVEL);
    if !(1..=19).contains(&level) {
        return Err(usage(format!(
            "compression level {level} is out of range (1 to 19)"
        )));
    }
    let sink = env.sink(a.sink.as_deref(), "--to")?;
    let name = source_name(env, a.name.as_deref())?;
    let r = wal::push(&*sink, &name, &a.path, level).await?;
    tracing::info!(
        summary = true,
        command = "wal push",
        result = "ok",
        file = %r.name,
        key = %r.key,
        size = r.size,
        stored_size = r.stored_size,
        already_archived = r.already_archived,
        duration_ms = r.duration.as_millis() as u64,
        "archived"
    );
    Ok(r)
}

/// Fetch one archived WAL file; see [`crate::wal::fetch`].
///
/// # Errors
/// As [`crate::wal::fetch`] ([`crate::Error::NotFound`] when the archive
/// does not have it), and usage errors for missing arguments.
pub async fn fetch(env: &Env, a: &WalFetchArgs) -> Result<WalFetchReport> {
    if a.file_name.is_empty() || a.path.as_os_str().is_empty() {
        return Err(usage(
            "wal fetch: the WAL file's name (%f) and the path to write it to (%p) are both needed",
        ));
    }
    let sink = env.sink(a.sink.as_deref(), "--from")?;
    let name = source_name(env, a.name.as_deref())?;
    let r = wal::fetch(&*sink, &name, &a.file_name, &a.path).await?;
    tracing::info!(
        summary = true,
        command = "wal fetch",
        result = "ok",
        file = %r.name,
        size = r.size,
        duration_ms = r.duration.as_millis() as u64,
        "fetched"
    );
    Ok(r)
}
