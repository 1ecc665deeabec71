//! `list`: the backups in a sink (complete, unreadable, incomplete) and
//! what interrupted runs left behind.

use serde::{Deserialize, Serialize};

use super::Env;
use crate::Catalog;
use crate::error::Result;

/// Which sink, which source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct ListArgs {
    /// Where backups live (default: sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "from", value_name = "SINK"))]
    pub sink: Option<String>,
    /// Only this source's backups (default: all).
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: Option<String>,
}

/// Complete backups (their manifests) and incomplete ones.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListOutput {
    /// The sink.
    pub location: String,
    /// Complete backups, oldest first.
    pub complete: Vec<Listed>,
    /// Manifests that exist but cannot be read: kept, never restored from.
    pub unreadable: Vec<crate::IncompleteBackup>,
    /// Backup dirs without a manifest: never offered for restore.
    pub incomplete: Vec<crate::IncompleteBackup>,
    /// What interrupted runs left: open uploads and partial files in the
    /// sink, and temporary directories on this host.
    pub leftovers: Leftovers,
}

/// A complete backup: its manifest, and how far it is proven.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub manifest: crate::Manifest,
    /// `drilled` (restored in a drill), `checked` (every check passed, no
    /// drill) or `failed`.
    pub assurance: crate::manifest::Assurance,
}

/// What interrupted runs left behind (removed by `prune` and by the next
/// backup once older than the grace period; local ones by the next run).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Leftovers {
    /// Open multipart uploads and partial files in the sink.
    pub uploads: Vec<crate::leftovers::Leftover>,
    /// Temporary directories on this host.
    pub local: Vec<crate::tempdir::LocalLeftover>,
    /// Staging, scratch and moved-aside databases killed restores and drills
    /// left on the configured PostgreSQL source's server (the next restore
    /// or drill there removes them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
}

/// Leftover databases on the configured PostgreSQL source's server; a
/// server that cannot be reached is noted, never a failed listing.
async fn leftover_databases(env: &Env) -> Vec<String> {
    let Some(url) = env.postgres_source_url() else {
        return Vec::new();
    };
    let pg = env.settings.postgres.clone().unwrap_or_default();
    let Ok(mut sources) = crate::PostgresSource::from_url(&url, &pg) else {
        return Vec::new();
    };
    if sources.is_empty() {
        return Vec::new();
    }
    match sources.remove(0).leftover_databases().await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e.display_chain(), "cannot look for databases killed restores left on the source's server");
            Vec::new()
        }
    }
}

/// List the backups in a sink, and what interrupted runs left.
///
/// # Errors
/// Any listing failure (never an empty list instead).
pub async fn run(env: &Env, a: &ListArgs) -> Result<ListOutput> {
    let sink = env.sink(a.sink.as_deref(), "--from")?;
    let name = if a.source.is_some() || env.settings.source.is_some() || env.settings.name.is_some()
    {
        env.source_name(a.source.as_deref())?
    } else {
        None
    };
    let listing = Catalog::new(sink.clone()).list(name.as_deref()).await?;
    let grace = std::time::Duration::from_secs(
        env.settings
            .retention
            .as_ref()
            .and_then(|r| r.incomplete_grace)
            .unwrap_or(crate::retention::DEFAULT_INCOMPLETE_GRACE.as_secs()),
    );
    let now = chrono::Utc::now();
    let uploads = match &name {
        Some(n) => crate::leftovers::find(&*sink, n, grace, now).await?,
        None => {
            let mut all = Vec::new();
            let mut names: Vec<String> = sink
                .list_pending("")
                .await?
                .into_iter()
                .filter_map(|u| u.key.split('/').next().map(str::to_string))
                .collect();
            names.sort();
            names.dedup();
            for n in names {
                all.extend(crate::leftovers::find(&*sink, &n, grace, now).await?);
            }
            all
        }
    };
    let databases = leftover_databases(env).await;
    let local = crate::tempdir::find(&env.temp_root());
    tracing::info!(
        summary = true,
        command = "list",
        result = "ok",
        location = %sink.location(),
        complete = listing.complete.len(),
        incomplete = listing.incomplete.len(),
        unreadable = listing.unreadable.len(),
        leftovers = uploads.len() + local.len(),
        "list complete"
    );
    Ok(ListOutput {
        location: sink.location().to_string(),
        complete: listing
            .complete
            .into_iter()
            .map(|b| Listed {
                assurance: b.manifest.assurance(),
                manifest: b.manifest,
            })
            .collect(),
        unreadable: listing.unreadable,
        incomplete: listing.incomplete,
        leftovers: Leftovers {
            uploads,
            local,
            databases,
        },
    })
}
