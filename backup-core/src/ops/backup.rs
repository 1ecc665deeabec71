//! `backup`: every database the source names, each with its own retries,
//! drill, metrics, notification and retention.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{DrillFor, DrillTargetArgs, Env, PgToolArgs, usage, verdict_summary};
use crate::error::{Error, Result};
use crate::source::postgres::parse_lock_wait;
use crate::{BackupJob, BackupReport, LockMode, Manifest, PostgresOptions, Verdict};

/// What to back up, where to, and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct BackupArgs {
    /// The database: sqlite:///path/to/app.db or postgres://user@host:5432/db[,db2] (default: source in lifeboat.toml).
    pub source: Option<String>,
    /// Where backups live: file:///dir, s3://bucket/prefix, spaces://bucket/prefix?region=nyc3, gs://bucket/prefix.
    #[cfg_attr(feature = "clap", arg(long = "to", value_name = "SINK"))]
    pub sink: Option<String>,
    /// Source name in the bucket layout (default: the database file's name).
    #[cfg_attr(feature = "clap", arg(long))]
    pub name: Option<String>,
    /// Fail if the uncompressed dump is smaller than this (default 1 KiB).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SIZE"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub min_size: Option<String>,
    /// zstd level, 1 to 19 (default 3 for SQLite, 1 for PostgreSQL).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub level: Option<i32>,
    /// Compression threads (default: every core).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub threads: Option<u32>,
    /// Wait for another run on the same database instead of exiting 1.
    #[cfg_attr(feature = "clap", arg(long))]
    pub wait: bool,
    /// Directory for lock files (default: $LIFEBOAT_LOCK_DIR or the temp dir).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub lock_dir: Option<PathBuf>,
    /// Directory for the snapshot file (default: the temp dir).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub temp_dir: Option<PathBuf>,
    /// Skip the restore drill PostgreSQL backups run by default before they are committed (a drill costs about one pg_restore of the database into a throwaway cluster).
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_drill: bool,
    /// Restore drill before the commit: restore the backup into a scratch database (a throwaway cluster from local server binaries, else a drill server), compare row counts, run smoke checks, drop it. PostgreSQL backups drill by default where they can.
    #[cfg_attr(feature = "clap", arg(long))]
    pub drill: bool,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub drill_target: DrillTargetArgs,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub postgres: PgDumpArgs,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub encrypt: super::EncryptArgs,
    /// Also store the backup in this sink (repeatable; in lifeboat.toml, [[sinks]] with a retention each). The database is read once: the first reachable sink gets the backup, each other one a copy checked against its SHA-256, with its own manifest. One sink failing fails the run (exit 3) and never undoes another's backup.
    #[cfg_attr(feature = "clap", arg(long = "also-to", value_name = "SINK"))]
    pub also_to: Vec<String>,
}

/// How PostgreSQL is dumped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct PgDumpArgs {
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub tools: PgToolArgs,
    /// PostgreSQL: a physical base backup of the whole cluster (pg_basebackup, WAL to its end point included) instead of a logical dump; it restores into pgdata:///path, to any later point with the WAL archive (lifeboat wal push). Compressed by the server on PostgreSQL 15+ and proven on the copy read back from the sink against its backup_manifest (every file's CRC32C, the WAL parsed by pg_waldump). In lifeboat.toml: mode = "physical" in [postgres].
    #[cfg_attr(feature = "clap", arg(long))]
    pub physical: bool,
    /// PostgreSQL: only this schema (repeatable).
    #[cfg_attr(feature = "clap", arg(long = "schema", value_name = "SCHEMA"))]
    pub schemas: Vec<String>,
    /// PostgreSQL: leave out this schema (repeatable).
    #[cfg_attr(feature = "clap", arg(long = "exclude-schema", value_name = "SCHEMA"))]
    pub exclude_schemas: Vec<String>,
    /// PostgreSQL: only this table (repeatable; schema.table or a pattern).
    #[cfg_attr(feature = "clap", arg(long = "table", value_name = "TABLE"))]
    pub tables: Vec<String>,
    /// PostgreSQL: leave out this table (repeatable).
    #[cfg_attr(feature = "clap", arg(long = "exclude-table", value_name = "TABLE"))]
    pub exclude_tables: Vec<String>,
    /// PostgreSQL: also store roles and tablespaces (pg_dumpall --globals-only).
    #[cfg_attr(feature = "clap", arg(long))]
    pub globals: bool,
    /// PostgreSQL: fail verification when the archive lists fewer tables (default 1).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub min_tables: Option<usize>,
    /// PostgreSQL: refuse a standby lagging more than this ("5m", "30s").
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub max_replica_lag: Option<String>,
    /// PostgreSQL: only warn when the standby lags too much.
    #[cfg_attr(feature = "clap", arg(long))]
    pub replica_lag_warn: bool,
    /// PostgreSQL: how long a backup waits for a table another session has locked before failing ("30s", "5m"; default 2m).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub lock_wait: Option<String>,
}

impl PgDumpArgs {
    /// The settings' `[postgres]` table with these over it.
    pub(crate) fn resolve(&self, env: &Env) -> Result<PostgresOptions> {
        let mut o = self.tools.resolve(env);
        let extend = |dst: &mut Vec<String>, src: &Vec<String>| dst.extend(src.iter().cloned());
        extend(&mut o.schemas, &self.schemas);
        extend(&mut o.exclude_schemas, &self.exclude_schemas);
        extend(&mut o.tables, &self.tables);
        extend(&mut o.exclude_tables, &self.exclude_tables);
        o.globals |= self.globals;
        if self.physical {
            o.mode = crate::source::postgres::BackupMode::Physical;
        }
        if let Some(n) = self.min_tables {
            o.min_tables = n;
        }
        if let Some(l) = &self.max_replica_lag {
            o.max_replica_lag = Some(
                crate::config::parse_duration_secs(l)
                    .map_err(|m| usage(format!("--max-replica-lag: {m}")))?,
            );
        }
        o.replica_lag_warn_only |= self.replica_lag_warn;
        if let Some(w) = &self.lock_wait {
            o.lock_wait = parse_lock_wait(w).map_err(|m| usage(format!("--lock-wait: {m}")))?;
        }
        o.validate().map_err(usage)?;
        Ok(o)
    }
}

/// One database's backup, and its drill when one ran.
#[derive(Debug, Clone, Serialize)]
pub struct BackupOutput {
    /// The committed manifest.
    pub manifest: Manifest,
    /// `<sink>/<backup dir>`.
    pub location: String,
    /// How long the backup took.
    pub duration_ms: u64,
    /// The restore drill's verdict, when one ran.
    pub drill: Option<Verdict>,
    /// Why the restore drill could not run, if it could not (the backup is
    /// committed as checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill_error: Option<String>,
    /// Its directory in the sink (for the copies to the run's other sinks).
    #[serde(skip)]
    pub(crate) dir: String,
    /// The other sinks of the run: what each got.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<SinkCopy>,
}

/// What one more sink of a run got.
#[derive(Debug, Clone, Serialize)]
pub struct SinkCopy {
    /// The sink, without credentials.
    pub sink: String,
    /// Whether the backup is committed there.
    pub committed: bool,
    /// Bytes copied.
    pub bytes: u64,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A sink of the run and its retention (`None`: the profile's).
#[derive(Clone)]
struct Target {
    sink: Arc<dyn crate::Sink>,
    retention: Option<crate::retention::RetentionPolicy>,
}

/// The run's sinks: `--to` (else `sink`, else the first of `[[sinks]]`),
/// then the rest of `[[sinks]]` when none was named, then `--also-to`.
fn targets(env: &Env, a: &BackupArgs) -> Result<Vec<Target>> {
    let s = &env.settings;
    let opts = s.sink_options.clone().unwrap_or_default();
    let mut out = Vec::new();
    if a.sink.is_none() && s.sink.is_none() && !s.sinks.is_empty() {
        env.require_profile()?;
        for spec in &s.sinks {
            out.push(Target {
                sink: crate::sink_from_url(&spec.url, &opts)?,
                retention: spec.retention.clone(),
            });
        }
    } else {
        out.push(Target {
            sink: env.sink(a.sink.as_deref(), "--to")?,
            retention: None,
        });
    }
    for url in &a.also_to {
        out.push(Target {
            sink: crate::sink_from_url(url, &opts)?,
            retention: None,
        });
    }
    let mut seen = std::collections::HashSet::new();
    for t in &out {
        if !seen.insert(t.sink.location().to_string()) {
            return Err(usage(format!(
                "the sink {} is named twice",
                t.sink.location()
            )));
        }
    }
    Ok(out)
}

/// What a run over every database did: the backups that were committed,
/// and the first failure (later ones are logged).
#[derive(Debug)]
#[must_use]
pub struct BackupRun {
    /// Committed backups (a backup whose drill failed is here too, and the
    /// run still fails).
    pub backups: Vec<BackupOutput>,
    /// The first failure.
    pub error: Option<Error>,
}

impl BackupRun {
    /// The backups, or the first failure.
    ///
    /// # Errors
    /// The first failure of the run.
    pub fn into_result(self) -> Result<Vec<BackupOutput>> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.backups),
        }
    }
}

/// Back up every database the source names, each with its own retries,
/// metrics, notification and retention.
pub async fn run(env: &Env, a: &BackupArgs) -> BackupRun {
    let mut outputs = Vec::new();
    let plan = (|| {
        let s = &env.settings;
        if a.source.is_none() {
            env.require_profile()?;
        }
        let source_url = a.source.clone().or_else(|| s.source.clone()).ok_or_else(|| usage(
            "no source: pass one (lifeboat backup sqlite:///path/app.db --to …) or set source in lifeboat.toml",
        ))?;
        let pg = a.postgres.resolve(env)?;
        if pg.mode == crate::source::postgres::BackupMode::Physical {
            if !(pg.schemas.is_empty()
                && pg.exclude_schemas.is_empty()
                && pg.tables.is_empty()
                && pg.exclude_tables.is_empty())
                || pg.globals
            {
                return Err(usage(
                    "--physical (mode = \"physical\") backs up the whole cluster (roles included): --schema, --exclude-schema, --table, --exclude-table and --globals (schemas, tables, globals in [postgres]) are for logical backups",
                ));
            }
            let source: Arc<dyn crate::Source> = Arc::new(
                crate::source::postgres::physical::PhysicalSource::from_url(&source_url, &pg)?,
            );
            // Its proof before the commit: the copy read back from the
            // sink checked against PostgreSQL's backup_manifest as it
            // streams, and its WAL parsed (pg_verifybackup's checks).
            let check: Option<Arc<dyn crate::Verifier>> = (!a.no_drill).then(|| {
                Arc::new(
                    crate::source::postgres::physical::PgBackupManifest::new(&pg)
                        .temp_dir(env.temp_dir(a.temp_dir.as_ref())),
                ) as Arc<dyn crate::Verifier>
            });
            let sinks = targets(env, a)?;
            return Ok((source_url, pg, vec![source], check, sinks));
        }
        let sources = crate::sources_from_url(&source_url, &pg)?;
        if sources.len() > 1 && a.name.is_some() {
            return Err(usage(
                "--name names one source; a run over several databases names each after its database",
            ));
        }
        let kind = sources.first().map(|s| s.kind()).unwrap_or("sqlite");
        let drill = a.drill_target.resolve(
            env,
            &pg,
            DrillFor::Backup {
                kind,
                source_url: &source_url,
                off: a.no_drill,
                explicit: a.explicit_drill(),
            },
        )?;
        let sinks = targets(env, a)?;
        Ok((source_url, pg, sources, drill, sinks))
    })();
    let (source_url, pg, sources, drill, sinks) = match plan {
        Ok(p) => p,
        Err(e) => {
            // Still tell the monitoring that this run failed.
            if let Some(name) = fallback_name(env, a) {
                super::hooks::after_backup(
                    env,
                    &name,
                    None,
                    Err(&e),
                    std::time::Duration::ZERO,
                    None,
                )
                .await;
            }
            return BackupRun {
                backups: outputs,
                error: Some(e),
            };
        }
    };
    // The first reachable sink takes the backup; one that cannot be
    // reached fails the run, after the others got theirs.
    // (One sink alone: the backup job checks it.)
    let mut first_err = None;
    let mut reachable = Vec::new();
    if sinks.len() == 1 {
        reachable = sinks;
    } else {
        for t in sinks {
            match t.sink.check().await {
                Ok(()) => reachable.push(t),
                Err(e) => {
                    tracing::error!(sink = %t.sink.location(), error = %e.display_chain(), "sink unreachable: this run's backups will not be there");
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    let Some(primary) = reachable.first().cloned() else {
        return BackupRun {
            backups: outputs,
            error: first_err,
        };
    };
    let sink = primary.sink.clone();
    let retries = env.settings.retries.clone().unwrap_or_default();
    for (i, source) in sources.into_iter().enumerate() {
        // Globals belong to the server: store them once per run.
        let source = if i > 0 && pg.globals {
            let mut without = pg.clone();
            without.globals = false;
            match crate::sources_from_url(&source_url, &without) {
                Ok(mut all) => all.remove(i),
                Err(e) => {
                    return BackupRun {
                        backups: outputs,
                        error: Some(e),
                    };
                }
            }
        } else {
            source
        };
        let name = a
            .name
            .clone()
            .or_else(|| env.settings.name.clone())
            .unwrap_or_else(|| source.default_name());
        let t0 = std::time::Instant::now();
        let mut attempt = 1;
        let result = loop {
            let r = backup_one(env, a, source.clone(), sink.clone(), drill.clone()).await;
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
        // The other sinks: a checked copy of the committed backup each,
        // with its own manifest and retention.
        let result = match result {
            Ok(mut o) => {
                for t in reachable.iter().skip(1) {
                    let entry = crate::catalog::BackupEntry {
                        dir: o.dir.clone(),
                        manifest: o.manifest.clone(),
                    };
                    let copy = crate::mirror::replicate(&*sink, &*t.sink, &entry).await;
                    match copy {
                        Ok(bytes) => {
                            tracing::info!(backup_id = %o.manifest.backup_id, sink = %t.sink.location(), bytes, "backup copied to another sink");
                            if let Some(policy) =
                                t.retention.as_ref().or(env.settings.retention.as_ref())
                            {
                                super::hooks::apply_retention(&t.sink, &name, policy).await;
                            }
                            o.copies.push(SinkCopy {
                                sink: t.sink.location().to_string(),
                                committed: true,
                                bytes,
                                error: None,
                            });
                        }
                        Err(e) => {
                            tracing::error!(backup_id = %o.manifest.backup_id, sink = %t.sink.location(), error = %e.display_chain(), "backup not copied to this sink; it stands in the others");
                            o.copies.push(SinkCopy {
                                sink: t.sink.location().to_string(),
                                committed: false,
                                bytes: 0,
                                error: Some(e.display_chain()),
                            });
                            first_err.get_or_insert(e);
                        }
                    }
                }
                Ok(o)
            }
            Err(e) => Err(e),
        };
        // Nothing after a committed backup may undo it, not even a panic.
        let hooks = std::panic::AssertUnwindSafe(super::hooks::after_backup(
            env,
            &name,
            Some(&sink),
            result.as_ref().map(|o| &o.manifest),
            t0.elapsed(),
            primary.retention.as_ref(),
        ));
        if futures::FutureExt::catch_unwind(hooks).await.is_err() {
            tracing::error!(source = %name, "a step after the backup (metrics, notification or retention) failed with an internal error; the backup's result stands");
        }
        // A backup whose restore drill failed is committed (its data
        // matches the snapshot; `restore --partial` recovers what loads) but
        // not verified: the run fails with exit 4.
        let result = result.and_then(|o| match &o.drill {
            None if o.drill_error.is_some() && a.explicit_drill() => {
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
                tracing::error!(
                    summary = true,
                    command = "backup",
                    source = %name,
                    result = "failed",
                    exit_code = e.exit_code(),
                    error_kind = e.kind().as_str(),
                    retryable = e.is_retryable(),
                    error = %e.display_chain(),
                    "backup failed"
                );
            }
        }
    }
    BackupRun {
        backups: outputs,
        error: first_err,
    }
}

impl BackupArgs {
    /// Whether a drill was asked for by name.
    pub(crate) fn explicit_drill(&self) -> bool {
        self.drill || self.drill_target.named()
    }
}

/// The source name a failed plan would have used, for its metrics.
fn fallback_name(env: &Env, a: &BackupArgs) -> Option<String> {
    a.name
        .clone()
        .or_else(|| env.settings.name.clone())
        .or_else(|| {
            let url = a.source.clone().or_else(|| env.settings.source.clone())?;
            let sources = crate::sources_from_url(&url, &Default::default()).ok()?;
            (sources.len() == 1).then(|| sources[0].default_name())
        })
}

async fn backup_one(
    env: &Env,
    a: &BackupArgs,
    source: Arc<dyn crate::Source>,
    sink: Arc<dyn crate::Sink>,
    drill: Option<Arc<dyn crate::Verifier>>,
) -> Result<BackupOutput> {
    let s = &env.settings;
    let mut job = BackupJob::new(source.clone(), sink.clone())
        .min_size(env.min_size(a.min_size.as_deref())?)
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
    if let Some(d) = env.temp_dir(a.temp_dir.as_ref()) {
        job = job.temp_dir(d);
    }
    if let Some(p) = env.progress() {
        // One task per database: a run over several keeps them apart.
        let task = a
            .name
            .clone()
            .or_else(|| s.name.clone())
            .unwrap_or_else(|| source.default_name());
        job = job.progress(crate::progress::for_task(&p, &task));
    }
    if let Some(d) = drill {
        job = job.drill(d);
    }
    if let Some(r) = env.recipients(&a.encrypt)? {
        job = job.recipients(r);
    }
    let report = job.run().await?;
    log_summary(&report);
    Ok(BackupOutput {
        location: format!("{}/{}", report.sink_location, report.dir),
        duration_ms: report.duration.as_millis() as u64,
        drill: report
            .manifest
            .verdicts
            .iter()
            .find(|v| v.verifier.ends_with("-drill"))
            .cloned(),
        drill_error: report.drill_error.clone(),
        manifest: report.manifest,
        dir: report.dir,
        copies: Vec::new(),
    })
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
