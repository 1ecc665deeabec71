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
    /// Physical backups: a point-in-time drill. Restore the base backup and the archived WAL into a throwaway cluster, recover to --target-time (default: a random time inside the recoverable window), run pg_amcheck, and record the point reached and the time it took.
    #[cfg_attr(feature = "clap", arg(long))]
    pub pitr: bool,
    /// With --pitr: the time to recover to (with its zone).
    #[cfg_attr(feature = "clap", arg(long, value_name = "TIME"))]
    pub target_time: Option<String>,
    /// With --pitr: the lifeboat command the throwaway server's restore_command runs (default: this lifeboat binary, or lifeboat on PATH).
    #[cfg_attr(feature = "clap", arg(long, value_name = "COMMAND"))]
    pub lifeboat_command: Option<String>,
}

/// Drill one stored backup and record the evidence.
///
/// # Errors
/// [`crate::Error::Verification`] when the restored database differs or a
/// smoke check fails; [`crate::Error::Config`] when no drill target can be
/// set up.
pub async fn run(env: &Env, a: &DrillArgs) -> Result<VerifyOutput> {
    if a.pitr {
        return pitr(env, a).await;
    }
    if a.target_time.is_some() || a.lifeboat_command.is_some() {
        return Err(super::usage(
            "--target-time and --lifeboat-command go with --pitr",
        ));
    }
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

/// What a point-in-time drill records.
#[derive(Debug, Serialize)]
struct PitrEvidence {
    drill_id: String,
    target_time: String,
    window: [String; 2],
    base_backup: String,
    /// The server log's "recovery stopping …" line: the point reached.
    point_reached: Option<String>,
    timeline: Option<u32>,
    rto_ms: u64,
    amcheck: Option<String>,
    error: Option<String>,
}

/// A point-in-time drill: restore a physical base backup and the archived
/// WAL into a throwaway cluster, recover to a time, check it, record it.
async fn pitr(env: &Env, a: &DrillArgs) -> Result<VerifyOutput> {
    use std::time::Instant;

    use crate::catalog::Catalog;
    use crate::manifest::Verdict;
    use crate::record::{CheckRecord, RecordKind};
    use crate::source::postgres::cluster::ScratchCluster;
    use crate::source::postgres::physical::{PHYSICAL_KIND, PhysicalDetails};
    use crate::source::postgres::tools;

    let t0 = Instant::now();
    let sink = env.sink(a.select.sink.as_deref(), "--from")?;
    let sink_url = env.sink_url(a.select.sink.as_deref()).unwrap_or_default();
    let name = env
        .source_name(a.select.source.as_deref())?
        .ok_or_else(|| super::usage("drill --pitr needs the source name (--source)"))?;
    // The window: from the oldest verified base backup's end to the newest
    // archived WAL.
    let listing = Catalog::new(sink.clone()).list(Some(&name)).await?;
    let start = listing
        .complete
        .iter()
        .filter(|e| e.manifest.source.kind == PHYSICAL_KIND && e.manifest.verified())
        .map(|e| {
            PhysicalDetails::from_fingerprint(&e.manifest.fingerprint)
                .stopped_at
                .unwrap_or(e.manifest.finished_at)
        })
        .min()
        .ok_or_else(|| crate::Error::Restore {
            target: format!("{sink_url} {name}"),
            message: format!("{name} has no verified physical base backup to drill"),
            source: None,
        })?;
    let end = crate::wal::ArchiveListing::read(&*sink, &name)
        .await?
        .and_then(|a| a.newest_stored_at())
        .unwrap_or(start)
        .max(start);
    let (mut target, random) = match &a.target_time {
        Some(t) => (super::restore::parse_target_time(t)?, false),
        None => {
            let span = (end - start).num_milliseconds().max(0);
            let pick = if span == 0 {
                0
            } else {
                rand::random::<i64>().rem_euclid(span + 1)
            };
            (start + chrono::Duration::milliseconds(pick), true)
        }
    };
    let pg = a.tools.resolve(env);
    let keys = env.identities(a.select.identity.as_deref())?;
    let drill_id = format!(
        "{}-pitr-{:04x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u16>()
    );
    let mut ev = PitrEvidence {
        drill_id: drill_id.clone(),
        target_time: String::new(),
        window: [start.to_rfc3339(), end.to_rfc3339()],
        base_backup: String::new(),
        point_reached: None,
        timeline: None,
        rto_ms: 0,
        amcheck: None,
        error: None,
    };
    // A random time after the archive's last commit cannot be reached
    // (PostgreSQL stops before the first commit after the target, and there
    // is none): then try again halfway back towards the window's start.
    let mut attempt = 1;
    let (backup_id, entry, outcome) = loop {
        ev.target_time = target.to_rfc3339();
        let rec = super::restore::RecoveryArgs {
            target_time: Some(target.to_rfc3339()),
            target_action: Some("promote".into()),
            lifeboat_command: a.lifeboat_command.clone(),
            ..Default::default()
        };
        let (which, recovery) = super::restore::plan_recovery(
            &sink,
            &sink_url,
            Some(&name),
            &crate::Selector::Latest,
            &rec,
            env.identity_path(a.select.identity.as_deref()).as_deref(),
        )
        .await?;
        let backup_id = match &which {
            crate::Selector::Id(id) => id.clone(),
            other => return Err(super::usage(format!("no base backup chosen ({other:?})"))),
        };
        ev.base_backup = backup_id.clone();
        let entry = listing
            .complete
            .iter()
            .find(|e| e.manifest.backup_id == backup_id)
            .cloned()
            .ok_or_else(|| super::usage(format!("backup {backup_id} vanished")))?;
        let details = PhysicalDetails::from_fingerprint(&entry.manifest.fingerprint);
        let major = details.server_major.unwrap_or(0);
        let bin = tools::server_bin_dir(major, &pg.tools).map_err(|m| {
            crate::Error::config(
                "drill --pitr",
                format!("no server binaries for the throwaway cluster: {m}"),
            )
        })?;
        let cluster = crate::rt::blocking(move || ScratchCluster::prepare(&bin))
            .await
            .map_err(|m: String| crate::Error::config("drill --pitr", m))?;
        let outcome = pitr_attempt(
            &cluster,
            &sink,
            &name,
            which,
            recovery,
            env,
            &pg,
            major,
            t0,
            &mut ev,
            keys.as_ref(),
        )
        .await;
        drop(cluster);
        match outcome {
            Err(e)
                if random
                    && attempt < 4
                    && e.contains("before configured recovery target was reached") =>
            {
                tracing::info!(target = %target.to_rfc3339(), "no commit after this time in the archive; trying an earlier one");
                target = start + (target - start) / 2;
                attempt += 1;
            }
            other => break (backup_id, entry, other),
        }
    };
    if let Err(e) = &outcome {
        ev.error = Some(e.clone());
    }
    let passed = outcome.is_ok();
    let now = chrono::Utc::now();
    let detail = match &outcome {
        Ok(()) => format!(
            "recovered {} to {} in {:.1}s on timeline {}: {}{}",
            backup_id,
            target.to_rfc3339(),
            ev.rto_ms as f64 / 1000.0,
            ev.timeline.unwrap_or(0),
            ev.point_reached.clone().unwrap_or_default(),
            ev.amcheck
                .as_ref()
                .map(|a| format!("; {a}"))
                .unwrap_or_default()
        ),
        Err(e) => format!("point-in-time drill to {} failed: {e}", target.to_rfc3339()),
    };
    let record = CheckRecord {
        kind: RecordKind::Drill,
        backup_id: backup_id.clone(),
        at: now,
        passed,
        evidence: ev,
    };
    record
        .store(
            &*sink,
            &crate::layout::drill_key(&name, now, &drill_id),
            crate::sink::PutOptions::create_only(),
        )
        .await;
    if !passed {
        return Err(crate::Error::verification("pitr-drill", detail));
    }
    let verdict = Verdict::pass("pitr-drill", detail, t0);
    tracing::info!(summary = true, command = "drill", result = "ok", backup_id = %backup_id, detail = %verdict.detail, "point-in-time drill passed");
    Ok(VerifyOutput {
        backup_id,
        source: name,
        location: format!("{}/{}", sink.location(), entry.dir),
        passed: true,
        verdicts: vec![verdict],
        duration_ms: t0.elapsed().as_millis() as u64,
    })
}

/// One restore-recover-check of a point-in-time drill into `cluster`.
#[allow(clippy::too_many_arguments)]
async fn pitr_attempt(
    cluster: &crate::source::postgres::cluster::ScratchCluster,
    sink: &std::sync::Arc<dyn crate::Sink>,
    name: &str,
    which: crate::Selector,
    recovery: crate::source::postgres::physical::Recovery,
    env: &Env,
    pg: &crate::source::PostgresOptions,
    major: u32,
    t0: std::time::Instant,
    ev: &mut PitrEvidence,
    keys: Option<&crate::crypt::Identities>,
) -> std::result::Result<(), String> {
    use crate::source::postgres::cluster::reasons_in_log;
    use std::time::Instant;

    use crate::source::postgres::physical::PgDataTarget;
    use crate::source::postgres::tools;

    let data = cluster.data_dir();
    let mut job = crate::RestoreJob::new(
        sink.clone(),
        std::sync::Arc::new(
            PgDataTarget::new(&data)
                .with_recovery(recovery)
                .tablespaces_under(cluster.tablespace_dir()),
        ),
    )
    .source_name(name)
    .select(which)
    .lock_dir(env.temp_root());
    if let Some(k) = keys {
        job = job.identities(k.clone());
    }
    job.run()
        .await
        .map_err(|e| format!("restore: {}", e.display_chain()))?;
    let launched = std::thread::scope(|s| {
        s.spawn(|| cluster.launch("hot_standby = on\narchive_mode = off\nfsync = off\n"))
            .join()
    });
    launched.map_err(|_| "the server start panicked".to_string())??;
    let client = cluster.conn("postgres").connect().await.map_err(|e| {
        // Up for pg_ctl, gone at once: recovery stopped; the log says why.
        format!(
            "{}: {}",
            e.display_chain(),
            reasons_in_log(&cluster.log(), &["FATAL", "PANIC"], 3)
        )
    })?;
    let deadline = Instant::now() + std::time::Duration::from_secs(3600);
    loop {
        match client.query_one("SELECT pg_is_in_recovery()", &[]).await {
            Ok(r) if !r.get::<_, bool>(0) => break,
            Ok(_) => {}
            // The server stopped: recovery failed; the log says why.
            Err(e) => {
                return Err(format!(
                    "{e}: {}",
                    reasons_in_log(&cluster.log(), &["FATAL"], 0)
                ));
            }
        }
        if Instant::now() > deadline {
            return Err("recovery did not reach the target within an hour".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    ev.rto_ms = t0.elapsed().as_millis() as u64;
    let tli: i32 = client
        .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    ev.timeline = Some(tli as u32);
    ev.point_reached = cluster
        .log()
        .lines()
        .find(|l| l.contains("recovery stopping"))
        .map(|l| l.split("LOG:").nth(1).unwrap_or(l).trim().to_string());
    if ev.point_reached.is_none() {
        return Err(format!(
            "recovery ended without reaching the target time: {}",
            cluster
                .log()
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    // pg_amcheck over every database, when the tool is there.
    if let Ok(t) = tools::pick("pg_amcheck", major, &pg.tools) {
        let conn = cluster.conn("postgres");
        let out = t
            .command()
            .args(["--install-missing", "--all", "--no-password"])
            .arg("-h")
            .arg(&conn.host)
            .args(["-p", &conn.port.to_string(), "-U", "postgres"])
            .output()
            .map_err(|e| format!("cannot run pg_amcheck: {e}"))?;
        if out.status.success() {
            ev.amcheck = Some("pg_amcheck --all: no corruption".into());
        } else {
            return Err(format!(
                "pg_amcheck found problems: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ));
        }
    }
    Ok(())
}
