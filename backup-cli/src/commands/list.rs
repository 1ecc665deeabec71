use backup_core::{Catalog, Error};
use clap::Args;

use super::{sink, source_name};
use crate::{Context, human_bytes};

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct ListArgs {
    /// Where backups live (default: sink in lifeboat.toml).
    #[arg(long, value_name = "SINK")]
    from: Option<String>,
    /// Only this source's backups (default: all).
    #[arg(long)]
    source: Option<String>,
    /// Print JSON: {"complete": [manifest, …], "unreadable": […], "incomplete": […]}.
    #[arg(long)]
    #[serde(skip)]
    json: bool,
}

/// Complete backups (their manifests) and incomplete ones.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ListOutput {
    location: String,
    complete: Vec<Listed>,
    /// Manifests that exist but cannot be read: kept, never restored from.
    unreadable: Vec<backup_core::IncompleteBackup>,
    incomplete: Vec<backup_core::IncompleteBackup>,
    /// What interrupted runs left: open uploads and partial files in the
    /// sink, and temporary directories on this host.
    leftovers: Leftovers,
}

/// A complete backup: its manifest, and how far it is proven.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Listed {
    #[serde(flatten)]
    manifest: backup_core::Manifest,
    /// `drilled` (restored in a drill), `checked` (every check passed, no
    /// drill) or `failed`.
    assurance: backup_core::manifest::Assurance,
}

/// What interrupted runs left behind (removed by `prune` and by the next
/// backup once older than the grace period; local ones by the next run).
#[derive(Debug, serde::Serialize)]
pub(crate) struct Leftovers {
    uploads: Vec<backup_core::leftovers::Leftover>,
    local: Vec<backup_core::tempdir::LocalLeftover>,
    /// Staging, scratch and moved-aside databases killed restores and drills
    /// left on the configured PostgreSQL source's server (the next restore
    /// or drill there removes them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    databases: Vec<String>,
}

/// Leftover databases on the configured PostgreSQL source's server; a
/// server that cannot be reached is noted, never a failed listing.
async fn leftover_databases(ctx: &Context) -> Vec<String> {
    let Some(url) = ctx
        .settings
        .source
        .clone()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    else {
        return Vec::new();
    };
    let pg = ctx.settings.postgres.clone().unwrap_or_default();
    let Ok(mut sources) = backup_core::PostgresSource::from_url(&url, &pg) else {
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

pub(crate) async fn execute(ctx: &Context, a: &ListArgs) -> Result<ListOutput, Error> {
    let sink = sink(ctx, a.from.as_deref(), "--from")?;
    let name = if a.source.is_some() || ctx.settings.source.is_some() || ctx.settings.name.is_some()
    {
        source_name(ctx, a.source.as_deref())?
    } else {
        None
    };
    let listing = Catalog::new(sink.clone()).list(name.as_deref()).await?;
    let grace = std::time::Duration::from_secs(
        ctx.settings
            .retention
            .as_ref()
            .and_then(|r| r.incomplete_grace)
            .unwrap_or(backup_core::retention::DEFAULT_INCOMPLETE_GRACE.as_secs()),
    );
    let now = chrono::Utc::now();
    let uploads = match &name {
        Some(n) => backup_core::leftovers::find(&*sink, n, grace, now).await?,
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
                all.extend(backup_core::leftovers::find(&*sink, &n, grace, now).await?);
            }
            all
        }
    };
    let databases = leftover_databases(ctx).await;
    let local = backup_core::tempdir::find(
        &ctx.settings
            .temp_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir),
    );
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

pub(crate) async fn run(ctx: &Context, a: ListArgs) -> Result<(), Error> {
    let out = execute(ctx, &a).await?;
    if a.json {
        super::print_json(&out);
        return Ok(());
    }
    if out.complete.is_empty() {
        println!("no complete backups in {}", out.location);
    } else {
        println!(
            "{:<16} {:<22} {:<20} {:>10} {:>10} {:<8} {:>6} {:>12}",
            "SOURCE", "BACKUP ID", "STARTED (UTC)", "RAW", "STORED", "VERIFIED", "TABLES", "ROWS"
        );
        for l in &out.complete {
            let m = &l.manifest;
            println!(
                "{:<16} {:<22} {:<20} {:>10} {:>10} {:<8} {:>6} {:>12}",
                m.source.name,
                m.backup_id,
                m.started_at.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(m.artifact.raw_size),
                human_bytes(m.artifact.stored_size),
                l.assurance.label(),
                m.fingerprint.tables.len(),
                m.fingerprint.total_rows()
            );
        }
    }
    if !out.unreadable.is_empty() {
        println!(
            "\nunreadable (a manifest this lifeboat cannot read: kept, never pruned, never restored from):"
        );
        for i in &out.unreadable {
            println!(
                "{:<16} {:<22} {:<20} {:>10}  {}",
                i.source,
                i.backup_id,
                i.last_modified.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(i.bytes),
                i.reason
            );
        }
    }
    if !out.leftovers.uploads.is_empty()
        || !out.leftovers.local.is_empty()
        || !out.leftovers.databases.is_empty()
    {
        println!(
            "\nleft by interrupted runs (removed by prune and the next run after the grace period):"
        );
        for l in &out.leftovers.uploads {
            println!(
                "  upload  {}  started {}{}",
                l.upload.key,
                l.upload.started.format("%Y-%m-%d %H:%M:%S"),
                if l.stale { " (stale)" } else { "" }
            );
        }
        for l in &out.leftovers.local {
            println!("  temp    {}  {}", l.path.display(), human_bytes(l.bytes));
        }
        for d in &out.leftovers.databases {
            println!("  database {d}  (removed by the next restore or drill on that server)");
        }
    }
    if !out.incomplete.is_empty() {
        println!(
            "\nincomplete (no manifest: never offered for restore; removed by prune after the grace period):"
        );
        for i in &out.incomplete {
            println!(
                "{:<16} {:<22} {:<20} {:>10}  {}",
                i.source,
                i.backup_id,
                i.last_modified.format("%Y-%m-%d %H:%M:%S"),
                human_bytes(i.bytes),
                i.reason
            );
        }
    }
    Ok(())
}
