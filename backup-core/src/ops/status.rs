//! `status`: the health of each source (newest backup's age, size,
//! assurance, last verification and drill). An unhealthy source is a
//! result, not an error; a notification goes out for it.

use serde::{Deserialize, Serialize};

use super::{Env, usage};
use crate::Settings;
use crate::error::{Error, Result};
use crate::health::{self, HealthPolicy, SourceStatus};
use crate::notify::{self, Event};

/// Which sinks and sources, and the thresholds over `[health]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct StatusArgs {
    /// Where backups live (default: every profile's sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "from", value_name = "SINK"))]
    pub sink: Option<String>,
    /// Only this source (default: every configured source, or every source in the sink).
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: Option<String>,
    /// Unhealthy when the newest backup is older than this (default 26h).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub max_age: Option<String>,
    /// Unhealthy when the newest backup's stored size is below this.
    #[cfg_attr(feature = "clap", arg(long, value_name = "SIZE"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub min_size: Option<String>,
    /// Unhealthy when the newest backup shrank by more than this fraction (0.5 = half).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FRACTION"))]
    pub max_size_drop: Option<f64>,
    /// For a source with a WAL archive: unhealthy when its newest segment is older than this (default 1h).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub max_wal_age: Option<String>,
    /// For a source with a WAL archive: the server to read pg_stat_archiver from, unhealthy when archive_command is failing (default: the profile's postgres:// source; "none" to not connect).
    #[cfg_attr(feature = "clap", arg(long, value_name = "POSTGRES_URL"))]
    pub server: Option<String>,
    /// The sink this one mirrors (lifeboat mirror --from it): unhealthy when its newest backup or WAL file is not here yet after --max-mirror-lag.
    #[cfg_attr(feature = "clap", arg(long, value_name = "SINK"))]
    pub mirror_of: Option<String>,
    /// With --mirror-of: how far behind the mirror may be (default 2h).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub max_mirror_lag: Option<String>,
}

/// What the mirror `sink` lacks of `origin`'s newest backup and WAL file
/// of `name`, older than `lag` seconds.
async fn mirror_problems(
    origin: &std::sync::Arc<dyn crate::Sink>,
    sink: &std::sync::Arc<dyn crate::Sink>,
    name: &str,
    lag: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let late =
        |at: chrono::DateTime<chrono::Utc>| (now - at).num_milliseconds() >= lag as i64 * 1000;
    let theirs = crate::Catalog::new(origin.clone()).list(Some(name)).await?;
    if let Some(newest) = theirs.complete.last() {
        let id = &newest.manifest.backup_id;
        let ours = crate::Catalog::new(sink.clone()).list(Some(name)).await?;
        if !ours.complete.iter().any(|b| &b.manifest.backup_id == id)
            && late(newest.manifest.finished_at)
        {
            out.push(format!(
                "the mirror is behind {}: its newest backup {id} ({} old) is not here",
                origin.location(),
                health::human_secs((now - newest.manifest.finished_at).num_seconds())
            ));
        }
    }
    if let Some(a) = crate::wal::ArchiveListing::read(&**origin, name).await?
        && let Some(newest) = a.files.iter().max_by_key(|f| f.stored_at)
        && late(newest.stored_at)
    {
        let key =
            crate::layout::wal_segment_key(name, newest.name.timeline(), newest.name.as_str());
        if matches!(sink.head(&key).await, Err(crate::Error::NotFound { .. })) {
            out.push(format!(
                "the mirror is behind {}: WAL file {} ({} old) is not here",
                origin.location(),
                newest.name.as_str(),
                health::human_secs((now - newest.stored_at).num_seconds())
            ));
        }
    }
    Ok(out)
}

fn policy(settings: &Settings, a: &StatusArgs) -> Result<HealthPolicy> {
    let mut p = settings.health.clone().unwrap_or_default();
    if let Some(m) = &a.max_age {
        p.max_age = Some(
            crate::config::parse_duration_secs(m).map_err(|e| usage(format!("--max-age: {e}")))?,
        );
    }
    if let Some(m) = &a.min_size {
        p.min_size = Some(
            crate::ByteSize::parse(m)
                .map_err(|e| usage(format!("--min-size: {e}")))?
                .0,
        );
    }
    if let Some(m) = &a.max_wal_age {
        p.max_wal_age = Some(
            crate::config::parse_duration_secs(m)
                .map_err(|e| usage(format!("--max-wal-age: {e}")))?,
        );
    }
    if a.max_size_drop.is_some() {
        p.max_size_drop = a.max_size_drop;
    }
    p.validate().map_err(usage)?;
    Ok(p)
}

/// The health of every source asked about: with no sink given, every
/// profile of the config file.
///
/// # Errors
/// When the checks could not run (bad thresholds, an unreachable sink, a
/// sink with no backups at all).
pub async fn run(env: &Env, a: &StatusArgs) -> Result<Vec<SourceStatus>> {
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    let targets = match &a.sink {
        None => env.every_profile(),
        Some(_) => vec![env.settings.clone()],
    };
    // Bad thresholds are refused before anything is read.
    for settings in &targets {
        policy(settings, a)?;
    }
    for settings in targets {
        let sub = Env::new(settings.clone());
        let sink = sub.sink(a.sink.as_deref(), "--from")?;
        let names = match sub.source_name(a.source.as_deref())? {
            Some(n) => vec![n],
            None => crate::Catalog::new(sink.clone())
                .list(None)
                .await?
                .sources(),
        };
        if names.is_empty() {
            return Err(Error::Health {
                message: format!("no backups at all in {}", sink.location()),
            });
        }
        let policy = policy(&settings, a)?;
        // The server is asked only about the one source it archives into.
        let server = match a.server.as_deref() {
            Some("none") => None,
            Some(url) => Some(url.to_string()),
            None => sub.postgres_source_url(),
        }
        .filter(|_| names.len() == 1);
        let mirror_of = match &a.mirror_of {
            Some(url) => Some(sub.sink(Some(url), "--mirror-of")?),
            None => None,
        };
        let lag = match &a.max_mirror_lag {
            Some(t) => crate::config::parse_duration_secs(t)
                .map_err(|e| usage(format!("--max-mirror-lag: {e}")))?,
            None => 2 * 3600,
        };
        for name in names {
            let mut st = health::status(&sink, &name, &policy, now).await?;
            if let Some(origin) = &mirror_of {
                let p = mirror_problems(origin, &sink, &name, lag, now).await?;
                if !p.is_empty() {
                    st.problems.extend(p);
                    st.healthy = false;
                }
            }
            if let Some(url) = &server
                && st.wal.is_some()
            {
                let conn = crate::source::postgres::PgConn::parse_first(url)?;
                let read = crate::wal::ArchiverStats::read(&conn).await;
                health::add_archiver(&mut st, &conn.location(), read);
            }
            if !st.healthy
                && let Some(n) = &settings.notify
            {
                let mut ev = Event::new("status", &name, false, st.problems.join("; "))
                    .with("sink", sink.location());
                ev.result = "unhealthy".into();
                notify::notify(n, &ev).await;
            }
            out.push(st);
        }
    }
    let unhealthy: Vec<&str> = out
        .iter()
        .filter(|s| !s.healthy)
        .map(|s| s.source.as_str())
        .collect();
    tracing::info!(
        summary = true,
        command = "status",
        result = if unhealthy.is_empty() { "ok" } else { "unhealthy" },
        sources = out.len(),
        unhealthy = %unhealthy.join(","),
        "status complete"
    );
    Ok(out)
}

/// The problems of the unhealthy sources as one [`Error::Health`], if any.
pub fn unhealthy(statuses: &[SourceStatus]) -> Option<Error> {
    let problems: Vec<String> = statuses
        .iter()
        .filter(|s| !s.healthy)
        .flat_map(|s| s.problems.iter().map(move |p| format!("{}: {p}", s.source)))
        .collect();
    statuses.iter().any(|s| !s.healthy).then(|| Error::Health {
        message: problems.join("; "),
    })
}
