use std::path::PathBuf;
use std::sync::Arc;

use backup_core::{BackupJob, BackupReport, Error, LockMode};
use clap::Args;

use super::pg::{DrillArgs, PgArgs};
use super::{min_size, print_json, sink, verdict_summary};
use crate::{Context, human_bytes};

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct BackupArgs {
    /// The database: sqlite:///path/to/app.db or postgres://user@host:5432/db[,db2] (default: source in lifeboat.toml).
    source: Option<String>,
    /// Where backups live: file:///dir, s3://bucket/prefix, spaces://bucket/prefix?region=nyc3, gs://bucket/prefix.
    #[arg(long, value_name = "SINK")]
    to: Option<String>,
    /// Source name in the bucket layout (default: the database file's name).
    #[arg(long)]
    name: Option<String>,
    /// Fail if the uncompressed dump is smaller than this (default 1 KiB).
    #[arg(long, value_name = "SIZE")]
    #[serde(deserialize_with = "super::string_or_number")]
    min_size: Option<String>,
    /// zstd level, 1 to 19 (default 3 for SQLite, 1 for PostgreSQL).
    #[arg(long, value_name = "N")]
    level: Option<i32>,
    /// Compression threads (default: every core).
    #[arg(long, value_name = "N")]
    threads: Option<u32>,
    /// Wait for another run on the same database instead of exiting 1.
    #[arg(long)]
    wait: bool,
    /// Directory for lock files (default: $LIFEBOAT_LOCK_DIR or the temp dir).
    #[arg(long, value_name = "DIR")]
    lock_dir: Option<PathBuf>,
    /// Directory for the snapshot file (default: the temp dir).
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Skip the restore drill PostgreSQL backups run by default before they are committed (a drill costs about one pg_restore of the database into a throwaway cluster).
    #[arg(long)]
    no_drill: bool,
    /// Print the manifest as JSON on stdout.
    #[arg(long)]
    #[serde(skip)]
    json: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pg: PgArgs,
    #[command(flatten)]
    #[serde(flatten)]
    drill: DrillArgs,
}

/// One database's backup, and its drill when one ran.
#[derive(Debug, serde::Serialize)]
pub(crate) struct BackupOutput {
    manifest: backup_core::Manifest,
    location: String,
    duration_ms: u64,
    drill: Option<backup_core::Verdict>,
    /// Why the restore drill could not run, if it could not (the backup is
    /// committed as checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    drill_error: Option<String>,
}

pub(crate) async fn run(ctx: &Context, a: BackupArgs) -> Result<(), Error> {
    let json = a.json;
    let (outputs, err) = execute(ctx, &a).await;
    if json {
        print_json(&outputs);
    } else {
        for o in &outputs {
            print_human(o);
        }
    }
    err.map_or(Ok(()), Err)
}

/// Back up every database the source names, each with its own retries,
/// metrics, notification and retention. Returns what succeeded and the first
/// failure (later ones are logged).
pub(crate) async fn execute(ctx: &Context, a: &BackupArgs) -> (Vec<BackupOutput>, Option<Error>) {
    let mut outputs = Vec::new();
    let plan = (|| {
        let s = &ctx.settings;
        if a.source.is_none() {
            ctx.require_profile()?;
        }
        let source_url = a.source.clone().or_else(|| s.source.clone()).ok_or_else(|| Error::Usage {
            message: "no source: pass one (lifeboat backup sqlite:///path/app.db --to …) or set source in lifeboat.toml".into(),
        })?;
        let pg = a.pg.resolve(ctx)?;
        let sources = backup_core::sources_from_url(&source_url, &pg)?;
        if sources.len() > 1 && a.name.is_some() {
            return Err(Error::Usage {
                message: "--name names one source; a run over several databases names each after its database".into(),
            });
        }
        let kind = sources.first().map(|s| s.kind()).unwrap_or("sqlite");
        let drill = a.drill.resolve(
            ctx,
            &pg,
            super::pg::DrillFor::Backup {
                kind,
                source_url: &source_url,
                off: a.no_drill,
            },
        )?;
        let sink = sink(ctx, a.to.as_deref(), "--to")?;
        Ok((source_url, pg, sources, drill, sink))
    })();
    let (source_url, pg, sources, drill, sink) = match plan {
        Ok(p) => p,
        Err(e) => {
            // Still tell the monitoring that this run failed.
            if let Some(name) = fallback_name(ctx, a) {
                super::hooks::after_backup(ctx, &name, None, Err(&e), std::time::Duration::ZERO)
                    .await;
            }
            return (outputs, Some(e));
        }
    };
    let retries = ctx.settings.retries.clone().unwrap_or_default();
    let mut first_err = None;
    for (i, source) in sources.into_iter().enumerate() {
        // Globals belong to the server: store them once per run.
        let source = if i > 0 && pg.globals {
            let mut without = pg.clone();
            without.globals = false;
            match backup_core::sources_from_url(&source_url, &without) {
                Ok(mut all) => all.remove(i),
                Err(e) => return (outputs, Some(e)),
            }
        } else {
            source
        };
        let name = a
            .name
            .clone()
            .or_else(|| ctx.settings.name.clone())
            .unwrap_or_else(|| source.default_name());
        let t0 = std::time::Instant::now();
        let mut attempt = 1;
        let result = loop {
            let r = backup_one(ctx, a, source.clone(), sink.clone(), drill.clone()).await;
            match &r {
                Err(e) if e.is_retryable() && attempt < retries.attempts => {
                    let delay = retries.delay(attempt + 1);
                    tracing::warn!(
                        source = %name,
                        attempt,
                        attempts = retries.attempts,
                        retry_in_secs = delay.as_secs_f64(),
                        error = %e.display_chain(),
                        "backup attempt failed with a transient error; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => break r,
            }
        };
        // Nothing after a committed backup may undo it, not even a panic.
        let hooks = std::panic::AssertUnwindSafe(super::hooks::after_backup(
            ctx,
            &name,
            Some(&sink),
            result.as_ref().map(|o| &o.manifest),
            t0.elapsed(),
        ));
        if futures::FutureExt::catch_unwind(hooks).await.is_err() {
            tracing::error!(source = %name, "a step after the backup (metrics, notification or retention) failed with an internal error; the backup's result stands");
        }
        // A backup whose restore drill failed is committed (its data
        // matches the snapshot; `restore --partial` recovers what loads) but
        // not verified: the run fails with exit 4.
        let result = result.and_then(|o| match &o.drill {
            None if o.drill_error.is_some() && a.drill.explicit() => {
                let e = Error::Config {
                    origin: "restore drill".into(),
                    message: format!(
                        "backup {} is committed as checked, but the restore drill asked for could not run: {}",
                        o.manifest.backup_id,
                        o.drill_error.clone().unwrap_or_default()
                    ),
                };
                outputs.push(o);
                Err(e)
            }
            Some(d) if !d.passed => {
                let e = Error::Verification {
                    verifier: d.verifier.clone(),
                    message: format!(
                        "backup {} is committed but does not restore cleanly, so it is not verified: {}",
                        o.manifest.backup_id, d.detail
                    ),
                };
                outputs.push(o);
                Err(e)
            }
            _ => Ok(o),
        });
        match result {
            Ok(o) => outputs.push(o),
            Err(e) if first_err.is_none() => first_err = Some(e),
            Err(e) => {
                crate::logging::fail("backup", &e);
            }
        }
    }
    (outputs, first_err)
}

/// The source name a failed plan would have used, for its metrics.
fn fallback_name(ctx: &Context, a: &BackupArgs) -> Option<String> {
    a.name
        .clone()
        .or_else(|| ctx.settings.name.clone())
        .or_else(|| {
            let url = a.source.clone().or_else(|| ctx.settings.source.clone())?;
            let sources = backup_core::sources_from_url(&url, &Default::default()).ok()?;
            (sources.len() == 1).then(|| sources[0].default_name())
        })
}

async fn backup_one(
    ctx: &Context,
    a: &BackupArgs,
    source: Arc<dyn backup_core::Source>,
    sink: Arc<dyn backup_core::Sink>,
    drill: Option<Arc<dyn backup_core::Verifier>>,
) -> Result<BackupOutput, Error> {
    let s = &ctx.settings;
    let mut job = BackupJob::new(source.clone(), sink.clone())
        .min_size(min_size(ctx, a.min_size.as_deref())?)
        .lock_mode(if a.wait {
            LockMode::Wait
        } else {
            LockMode::FailFast
        });
    if let Some(n) = a.name.clone().or_else(|| s.name.clone()) {
        job = job.name(n);
    }
    if let Some(l) = a.level.or(s.compression_level) {
        job = job.compression_level(l);
    }
    if let Some(t) = a.threads.or(s.threads) {
        job = job.threads(t);
    }
    if let Some(d) = a.lock_dir.clone().or_else(|| s.lock_dir.clone()) {
        job = job.lock_dir(d);
    }
    if let Some(d) = a.temp_dir.clone().or_else(|| s.temp_dir.clone()) {
        job = job.temp_dir(d);
    }
    if let Some(p) = ctx.progress.clone() {
        job = job.progress(p);
    }
    if let Some(d) = drill {
        job = job.drill(d);
    }
    let report = job.run().await?;
    log_summary(&report);
    let drill_error = report.drill_error.clone();
    let out = BackupOutput {
        location: format!("{}/{}", report.sink_location, report.dir),
        duration_ms: report.duration.as_millis() as u64,
        drill: report
            .manifest
            .verdicts
            .iter()
            .find(|v| v.verifier.ends_with("-drill"))
            .cloned(),
        drill_error,
        manifest: report.manifest,
    };
    Ok(out)
}

fn log_summary(report: &BackupReport) {
    let m = &report.manifest;
    tracing::info!(
        summary = true,
        command = "backup",
        result = "ok",
        backup_id = %m.backup_id,
        source = %m.source.location,
        file = %m.artifact.key,
        location = %format!("{}/{}", report.sink_location, report.dir),
        size = m.artifact.stored_size,
        raw_size = m.artifact.raw_size,
        sha256 = %m.artifact.sha256,
        tables = m.fingerprint.tables.len(),
        rows = m.fingerprint.total_rows(),
        duration_ms = report.duration.as_millis() as u64,
        verdicts = %verdict_summary(&m.verdicts),
        "backup complete"
    );
}

fn print_human(o: &BackupOutput) {
    let m = &o.manifest;
    println!(
        "backup {} verified ({}) — {} raw, {} stored, {} tables, {} rows — {} in {:.1}s",
        m.backup_id,
        verdict_summary(&m.verdicts),
        human_bytes(m.artifact.raw_size),
        human_bytes(m.artifact.stored_size),
        m.fingerprint.tables.len(),
        m.fingerprint.total_rows(),
        o.location,
        o.duration_ms as f64 / 1000.0
    );
    if let Some(d) = &o.drill {
        println!("  {}", d.detail);
    }
}
