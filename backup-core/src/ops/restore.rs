//! `restore`: a stored backup into a database (a SQLite file, or a
//! PostgreSQL database that takes its name only once proven).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Env, PgToolArgs, SelectArgs, usage};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};

use crate::source::TargetReport;
use crate::source::postgres::fetch_globals;
use crate::source::postgres::physical::{PgDataTarget, Recovery};
use crate::{Catalog, Fingerprint, LockMode, PostgresSource, RestoreJob, RestoreTarget, Selector};

/// Which backup to restore, into what, and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct RestoreArgs {
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub select: SelectArgs,
    /// The database to create: sqlite:///path/restored.db or postgres://user@host/newdb. Never taken from the config.
    #[cfg_attr(
        feature = "clap",
        arg(long = "to", value_name = "TARGET", required = true)
    )]
    pub target: Option<String>,
    /// Replace an existing database (it is kept aside until the new one is proven).
    #[cfg_attr(feature = "clap", arg(long))]
    pub force: bool,
    /// Wait for another run on the same database instead of exiting 1.
    #[cfg_attr(feature = "clap", arg(long))]
    pub wait: bool,
    /// Directory for lock files.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub lock_dir: Option<PathBuf>,
    /// PostgreSQL: create the stored roles and tablespaces this server lacks before the data (existing ones are left unchanged).
    #[cfg_attr(feature = "clap", arg(long))]
    pub globals: bool,
    /// PostgreSQL: restore without ownership and privileges.
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_owner: bool,
    /// PostgreSQL: parallel pg_restore jobs (default: cores).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub jobs: Option<u32>,
    /// PostgreSQL: restore what loads when the archive does not load cleanly: pg_restore goes on past errors, every error and every table whose rows differ is listed, and the result still takes the target name. Without it, any error fails the restore and leaves the target untouched.
    #[cfg_attr(feature = "clap", arg(long))]
    pub partial: bool,
    /// PostgreSQL: do not ANALYZE the restored database before it takes the name (it then has no planner statistics until autovacuum gets to it).
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_analyze: bool,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub tools: PgToolArgs,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub recovery: RecoveryArgs,
}

/// Point-in-time recovery of a physical backup restored into
/// `pgdata:///path`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct RecoveryArgs {
    /// Physical backups: recover to this time (RFC 3339, or 2026-12-03 05:00:00+00; a time zone is required). The newest base backup that ended before it is used; a time before the oldest one or after the newest archived WAL is refused.
    #[cfg_attr(feature = "clap", arg(long, value_name = "TIME"))]
    pub target_time: Option<String>,
    /// Physical backups: recover to this WAL position (0/3000060).
    #[cfg_attr(feature = "clap", arg(long, value_name = "LSN"))]
    pub target_lsn: Option<String>,
    /// Physical backups: recover to this transaction id.
    #[cfg_attr(feature = "clap", arg(long, value_name = "XID"))]
    pub target_xid: Option<String>,
    /// Physical backups: recover to this restore point (pg_create_restore_point).
    #[cfg_attr(feature = "clap", arg(long, value_name = "NAME"))]
    pub target_name: Option<String>,
    /// Physical backups: the timeline to recover along (default: latest).
    #[cfg_attr(feature = "clap", arg(long, value_name = "TIMELINE"))]
    pub target_timeline: Option<String>,
    /// Physical backups: what the server does at the target: promote, pause (PostgreSQL's default) or shutdown.
    #[cfg_attr(feature = "clap", arg(long, value_name = "ACTION"))]
    pub target_action: Option<String>,
    /// Physical backups: the lifeboat command the restored server's restore_command runs (default: this lifeboat binary, or lifeboat on PATH).
    #[cfg_attr(feature = "clap", arg(long, value_name = "COMMAND"))]
    pub lifeboat_command: Option<String>,
    /// Physical backups: start the server on the restored data directory (as the postgres user when run as root), wait until recovery reaches the target (or the end of the archived WAL) and report the exact point reached. The server is left running.
    #[cfg_attr(feature = "clap", arg(long))]
    pub start: bool,
    /// Physical backups: keep the backup's archive_mode, so that the restored server archives its new timeline into the archive (it replaces the primary). Without it the restored server gets archive_mode = off: a copy beside a live primary must not write into that primary's archive.
    #[cfg_attr(feature = "clap", arg(long))]
    pub keep_archiving: bool,
    /// Physical backups, with --start: the port the server listens on (default: its postgresql.conf's).
    #[cfg_attr(feature = "clap", arg(long, value_name = "PORT"))]
    pub port: Option<u16>,
    /// Physical backups: put the tablespace the backup recorded at directory OLD into NEW instead (repeatable; as pg_basebackup -T). Without it each tablespace goes back to its recorded directory, which must not exist or be empty.
    #[cfg_attr(feature = "clap", arg(long = "tablespace-map", value_name = "OLD=NEW"))]
    pub tablespace_map: Vec<String>,
}

impl RecoveryArgs {
    fn any(&self) -> bool {
        self.target_time.is_some()
            || self.target_lsn.is_some()
            || self.target_xid.is_some()
            || self.target_name.is_some()
            || self.target_timeline.is_some()
            || self.target_action.is_some()
            || self.lifeboat_command.is_some()
            || self.start
            || self.port.is_some()
            || self.keep_archiving
            || !self.tablespace_map.is_empty()
    }
}

/// A recovery target time: RFC 3339, or PostgreSQL's `YYYY-MM-DD
/// HH:MM:SS[.ffffff]±TZ`; a time without a zone is refused (whose clock?).
pub fn parse_target_time(s: &str) -> Result<DateTime<Utc>> {
    let t = s.trim();
    DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%#z"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            usage(format!(
                "--target-time {s:?}: give a time with its zone, e.g. 2026-12-03T05:00:00Z or \"2026-12-03 05:00:00+00\""
            ))
        })
}

/// The shell word for `s`: as is when it is plain, else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=+,@%?&".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The lifeboat command for a restored server's `restore_command`.
fn lifeboat_command(a: &RecoveryArgs) -> String {
    if let Some(c) = &a.lifeboat_command {
        return c.clone();
    }
    match std::env::current_exe() {
        Ok(p)
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lifeboat")) =>
        {
            shell_word(&p.to_string_lossy())
        }
        _ => "lifeboat".to_string(),
    }
}

/// Choose the base backup for a point-in-time restore and the recovery
/// settings: the newest verified physical backup that ended before the
/// target (or the one named, checked against the target).
pub(crate) async fn plan_recovery(
    sink: &Arc<dyn crate::Sink>,
    sink_url: &str,
    name: Option<&str>,
    which: &Selector,
    a: &RecoveryArgs,
    identity: Option<&std::path::Path>,
) -> Result<(Selector, Recovery)> {
    use crate::source::postgres::physical::{PHYSICAL_KIND, PhysicalDetails, parse_lsn};
    let targets = [
        a.target_time.is_some(),
        a.target_lsn.is_some(),
        a.target_xid.is_some(),
        a.target_name.is_some(),
    ];
    if targets.iter().filter(|t| **t).count() > 1 {
        return Err(usage(
            "give one recovery target: --target-time, --target-lsn, --target-xid or --target-name",
        ));
    }
    if let Some(act) = &a.target_action
        && !["promote", "pause", "shutdown"].contains(&act.as_str())
    {
        return Err(usage(format!(
            "--target-action {act:?}: promote, pause or shutdown"
        )));
    }
    let time = a
        .target_time
        .as_deref()
        .map(parse_target_time)
        .transpose()?;
    let lsn = match &a.target_lsn {
        Some(l) => Some(parse_lsn(l).ok_or_else(|| {
            usage(format!(
                "--target-lsn {l:?}: a WAL position such as 0/3000060"
            ))
        })?),
        None => None,
    };
    let name = name.ok_or_else(|| {
        usage("a point-in-time restore needs the source name (--source): its backups and its WAL archive are kept under it")
    })?;
    let listing = Catalog::new(sink.clone()).list(Some(name)).await?;
    let physical: Vec<_> = listing
        .complete
        .iter()
        .filter(|e| e.manifest.source.kind == PHYSICAL_KIND)
        .collect();
    let refuse = |message: String| Error::Restore {
        target: format!("{sink_url} {name}"),
        message,
        source: None,
    };
    let ended = |e: &crate::catalog::BackupEntry| {
        let d = PhysicalDetails::from_fingerprint(&e.manifest.fingerprint);
        (
            d.stopped_at.unwrap_or(e.manifest.finished_at),
            d.stop_lsn.as_deref().and_then(parse_lsn),
        )
    };
    let reaches = |e: &crate::catalog::BackupEntry| {
        let (at, stop) = ended(e);
        time.is_none_or(|t| at <= t) && lsn.is_none_or(|l| stop.is_some_and(|s| s <= l))
    };
    let chosen = match which {
        Selector::Id(id) => {
            let e = physical
                .iter()
                .find(|e| e.manifest.backup_id.starts_with(id.as_str()))
                .ok_or_else(|| refuse(format!("no physical backup {id} of {name}")))?;
            if !reaches(e) {
                return Err(refuse(format!(
                    "backup {} ended at {} ({}), after the recovery target: recovery can only go forward from a backup's end",
                    e.manifest.backup_id,
                    ended(e).0.to_rfc3339(),
                    PhysicalDetails::from_fingerprint(&e.manifest.fingerprint)
                        .stop_lsn
                        .unwrap_or_default()
                )));
            }
            (*e).clone()
        }
        _ => {
            let fits: Vec<_> = physical
                .iter()
                .filter(|e| e.manifest.verified() && reaches(e))
                .collect();
            match fits.last() {
                Some(e) => (**e).clone(),
                None => {
                    let oldest = physical
                        .iter()
                        .filter(|e| e.manifest.verified())
                        .map(|e| ended(e).0)
                        .min();
                    return Err(refuse(match oldest {
                        None => format!(
                            "{name} has no verified physical base backup (lifeboat backup postgres://… --physical --name {name})"
                        ),
                        Some(o) => format!(
                            "no verified base backup of {name} ended before the recovery target; the oldest recoverable point is {}",
                            o.to_rfc3339()
                        ),
                    }));
                }
            }
        }
    };
    // A target time after the newest archived WAL cannot be reached.
    if let Some(t) = time {
        let newest = crate::wal::ArchiveListing::read(&**sink, name)
            .await?
            .and_then(|a| a.newest_stored_at());
        let bound = newest.unwrap_or(ended(&chosen).0);
        if t > bound {
            return Err(refuse(format!(
                "the recovery target {} is after the newest archived WAL ({}): the archive cannot reach it; the recoverable window is {} to {}",
                t.to_rfc3339(),
                bound.to_rfc3339(),
                ended(&chosen).0.to_rfc3339(),
                bound.to_rfc3339()
            )));
        }
    }
    let mut settings = Vec::new();
    if let Some(t) = time {
        settings.push((
            "recovery_target_time".to_string(),
            t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        ));
    }
    for (k, v) in [
        ("recovery_target_lsn", &a.target_lsn),
        ("recovery_target_xid", &a.target_xid),
        ("recovery_target_name", &a.target_name),
        ("recovery_target_timeline", &a.target_timeline),
        ("recovery_target_action", &a.target_action),
    ] {
        if let Some(v) = v {
            settings.push((k.to_string(), v.clone()));
        }
    }
    let mut restore_command = format!(
        "{} wal fetch %f %p --from {} --name {}",
        lifeboat_command(a),
        shell_word(sink_url),
        shell_word(name)
    );
    // An encrypted archive: the server's wal fetch reads the same identity
    // file (a path; the server's user must be able to read it).
    if let Some(p) = identity {
        restore_command.push_str(&format!(" --identity {}", shell_word(&p.to_string_lossy())));
    }
    tracing::info!(backup_id = %chosen.manifest.backup_id, ended = %ended(&chosen).0.to_rfc3339(), "base backup chosen for the point-in-time restore");
    Ok((
        Selector::Id(chosen.manifest.backup_id.clone()),
        Recovery {
            restore_command: Some(restore_command),
            targets: settings,
            keep_archiving: a.keep_archiving,
        },
    ))
}

/// What a restore did. PostgreSQL adds what its restore reported
/// (`globals`: roles created and skipped; `settings_skipped`; `analyzed`),
/// at the top level.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutput {
    /// The backup restored.
    pub backup_id: String,
    /// The target restored into.
    pub target: String,
    /// Bytes read from the sink.
    pub bytes: u64,
    /// Whether an existing database was replaced.
    pub replaced: bool,
    /// The restored database's fingerprint (it matched the backup's).
    pub fingerprint: Fingerprint,
    /// How long it took.
    pub duration_ms: u64,
    /// The target's own report.
    #[serde(flatten)]
    pub report: TargetReport,
    /// With `--start`: where the started server's recovery ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<crate::source::postgres::cluster::RecoveryReached>,
}

impl RestoreOutput {
    /// A `partial` restore that did not get everything back.
    pub fn incomplete(&self) -> bool {
        self.report.incomplete()
    }
}

/// Restore one backup.
///
/// # Errors
/// [`Error::Restore`] when it failed or was refused (an existing target
/// without `force`); the target is then untouched.
pub async fn run(env: &Env, a: &RestoreArgs) -> Result<RestoreOutput> {
    let sink = env.sink(a.select.sink.as_deref(), "--from")?;
    let to = a.target.clone().ok_or_else(|| {
        usage("restore needs a target: --to sqlite:///path/restored.db or postgres://…/newdb")
    })?;
    let mut pg = a.tools.resolve(env);
    pg.analyze &= !a.no_analyze;
    pg.partial = a.partial;
    pg.no_owner |= a.no_owner;
    if a.jobs.is_some() {
        pg.jobs = a.jobs;
    }
    pg.validate().map_err(usage)?;
    let mut target = crate::restore_target_from_url(&to, &pg)?;
    let mut which = a.select.selector()?;
    let name = env.source_name(a.select.source.as_deref())?;
    let pgdata = (target.target_kind() == crate::source::postgres::physical::PHYSICAL_KIND)
        .then(|| PathBuf::from(to.strip_prefix("pgdata://").unwrap_or(&to)));
    if a.recovery.port.is_some() && !a.recovery.start {
        return Err(usage("--port is the port of the server --start starts"));
    }
    if pgdata.is_some() {
        let sink_url = env.sink_url(a.select.sink.as_deref()).unwrap_or_default();
        let (chosen, recovery) = plan_recovery(
            &sink,
            &sink_url,
            name.as_deref(),
            &which,
            &a.recovery,
            env.identity_path(a.select.identity.as_deref()).as_deref(),
        )
        .await?;
        which = chosen;
        let path = to.strip_prefix("pgdata://").unwrap_or(&to).to_string();
        let relocate =
            crate::source::postgres::tablespaces::parse_relocations(&a.recovery.tablespace_map)
                .map_err(usage)?;
        target = Arc::new(
            PgDataTarget::new(path)
                .with_recovery(recovery)
                .relocate_tablespaces(relocate),
        );
    } else if a.recovery.any() {
        return Err(usage(
            "--target-time, --target-lsn, --target-xid, --target-name, --target-timeline, --target-action, --lifeboat-command, --start, --port, --keep-archiving and --tablespace-map are for physical backups restored into pgdata:///path",
        ));
    }
    // `globals` on restore (the argument, never the config's `globals`,
    // which means "store them" at backup): read the stored roles first.
    if a.globals {
        if target.target_kind() != "postgres" {
            return Err(usage(
                "--globals restores PostgreSQL roles; the target is not PostgreSQL",
            ));
        }
        let entry = Catalog::new(sink.clone())
            .find_for_restore(name.as_deref(), &which)
            .await?;
        let m = entry.manifest;
        let keys = env.identities(a.select.identity.as_deref())?;
        let Some(globals) = fetch_globals(&*sink, &m, keys.as_ref()).await? else {
            return Err(Error::Restore {
                target: target.target_location(),
                message: format!(
                    "backup {} holds no roles to apply (it was taken without --globals)",
                    m.backup_id
                ),
                source: None,
            });
        };
        which = Selector::Id(m.backup_id.clone());
        let pg_target = PostgresSource::from_url(&to, &pg)?.remove(0);
        target = Arc::new(pg_target.with_globals(globals)) as Arc<dyn RestoreTarget>;
    }
    let mut job = RestoreJob::new(sink.clone(), target)
        .select(which)
        .force(a.force)
        .lock_mode(if a.wait {
            LockMode::Wait
        } else {
            LockMode::FailFast
        });
    if let Some(n) = name {
        job = job.source_name(n);
    }
    if let Some(d) = a.lock_dir.clone().or_else(|| env.settings.lock_dir.clone()) {
        job = job.lock_dir(d);
    }
    if let Some(p) = env.progress() {
        job = job.progress(p);
    }
    if let Some(k) = env.identities(a.select.identity.as_deref())? {
        job = job.identities(k);
    }
    let report = job.run().await?;
    let (m, o) = (&report.manifest, &report.outcome);
    let mut out = RestoreOutput {
        backup_id: m.backup_id.clone(),
        target: o.target.clone(),
        bytes: o.bytes,
        replaced: o.replaced,
        fingerprint: o.fingerprint.clone(),
        duration_ms: report.duration.as_millis() as u64,
        report: o.report.clone(),
        started: None,
    };
    if let (Some(data), true) = (&pgdata, a.recovery.start) {
        out.started = Some(start_restored(data, m, &pg, a.recovery.port).await?);
    }
    tracing::info!(
        summary = true,
        command = "restore",
        result = if out.incomplete() { "partial" } else { "ok" },
        backup_id = %out.backup_id,
        target = %out.target,
        size = out.bytes,
        replaced = out.replaced,
        analyzed = out.report.analyzed,
        analyze_ms = out.report.analyze_ms,
        tables = out.fingerprint.tables.len(),
        rows = out.fingerprint.total_rows(),
        duration_ms = out.duration_ms,
        "restore complete"
    );
    Ok(out)
}

/// `restore --start`: start the server on the restored data directory and
/// wait until its recovery ends.
async fn start_restored(
    data: &std::path::Path,
    m: &crate::Manifest,
    pg: &crate::PostgresOptions,
    port: Option<u16>,
) -> Result<crate::source::postgres::cluster::RecoveryReached> {
    use crate::source::postgres::physical::PhysicalDetails;
    let major = PhysicalDetails::from_fingerprint(&m.fingerprint)
        .server_major
        .unwrap_or(0);
    let fail = |message: String| Error::Restore {
        target: format!("pgdata://{}", data.display()),
        message: format!("the data directory is restored, but {message}"),
        source: None,
    };
    let bin = crate::source::postgres::tools::server_bin_dir(major, &pg.tools)
        .map_err(|e| fail(format!("no server binaries to start it with: {e}")))?;
    let data_dir = data.to_path_buf();
    tracing::info!(data = %data.display(), "starting the server; waiting until recovery reaches the target");
    let reached = crate::rt::blocking(move || {
        crate::source::postgres::cluster::start_recovery(&data_dir, &bin, port)
    })
    .await
    .map_err(fail)?;
    tracing::info!(
        state = %reached.state,
        point = reached.point_reached.as_deref().unwrap_or(""),
        duration_ms = reached.duration_ms,
        "recovery ended"
    );
    Ok(reached)
}
