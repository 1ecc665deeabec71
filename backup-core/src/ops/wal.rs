//! `wal push` and `wal fetch`: PostgreSQL's `archive_command` and
//! `restore_command` (see [`crate::wal`] for the contract).
//!
//! ```text
//! archive_command = 'lifeboat wal push %p --to s3://acme-backups/prod --name app'
//! restore_command = 'lifeboat wal fetch %f %p --from s3://acme-backups/prod --name app'
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Env, usage};
use crate::error::{Error, Result};
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
    /// Push the next segments PostgreSQL has marked ready too, at most this many at once (default 4; 1 pushes only the file asked for). From the command line a detached lifeboat pushes them while PostgreSQL's calls return as their markers appear.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub parallel: Option<u32>,
    /// Where the markers of segments pushed ahead go (default: a private directory per source name under the temp dir).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub spool_dir: Option<PathBuf>,
    #[cfg_attr(feature = "clap", command(flatten))]
    #[serde(flatten)]
    pub encrypt: super::EncryptArgs,
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
    /// Fetch the next segments ahead too, this many at once (default 4; 1 fetches only the file asked for). From the command line a detached lifeboat keeps twice that many ready while the server replays; each waits in the spool decoded and checked, and is used only while untouched.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub parallel: Option<u32>,
    /// Where segments fetched ahead wait (default: a private directory per sink and source name under the temp dir).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub spool_dir: Option<PathBuf>,
    /// The age identity file that decrypts an encrypted archive (default: identity_file in [encryption]).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub identity: Option<PathBuf>,
}

fn source_name(env: &Env, arg: Option<&str>) -> Result<String> {
    env.source_name(arg)?.ok_or_else(|| {
        usage("no source name for the WAL archive: pass --name (the name the source's backups are kept under) or set name or source in lifeboat.toml")
    })
}

/// What a `wal push` needs, from its arguments and the config.
struct PushPlan {
    sink: std::sync::Arc<dyn crate::sink::Sink>,
    name: String,
    level: i32,
    ahead: wal::LookAhead,
    recipients: Option<crate::crypt::Recipients>,
}

fn push_plan(env: &Env, a: &WalPushArgs) -> Result<PushPlan> {
    if a.path.as_os_str().is_empty() {
        return Err(usage("wal push: the path of the WAL file (%p) is missing"));
    }
    let level = a.level.unwrap_or(crate::source::DEFAULT_LEVEL);
    if !(1..=19).contains(&level) {
        return Err(usage(format!(
            "compression level {level} is out of range (1 to 19)"
        )));
    }
    let parallel = a.parallel.unwrap_or(4);
    crate::units::check_range("--parallel", parallel, 1..=64).map_err(usage)?;
    let sink = env.sink(a.sink.as_deref(), "--to")?;
    let name = source_name(env, a.name.as_deref())?;
    let ahead = wal::LookAhead {
        parallel: parallel as usize,
        spool: a
            .spool_dir
            .clone()
            .unwrap_or_else(|| env.temp_root().join(format!("lifeboat-wal-{name}"))),
    };
    let recipients = env.recipients(&a.encrypt)?;
    Ok(PushPlan {
        sink,
        name,
        level,
        ahead,
        recipients,
    })
}

fn stray(var: &str, what: &str) -> crate::Error {
    usage(format!(
        "{var} is set, and this process was not started by Lifeboat as its background helper: {what}. Remove {var} from the environment"
    ))
}

/// The background pusher's side of `wal push` (see
/// [`crate::wal::push_ready_after`]): `Ok(None)` when this process is not
/// one ([`crate::wal::PUSHER_ENV`] unset); `Ok(Some(n))` when it is, with
/// the `n` ready segments after `%p` pushed (and `%p` itself not); the
/// process then exits 0 (it is nobody's child by then, and a server
/// running as PID 1 counts any other exit status of a child it reaps as a
/// crash).
///
/// # Errors
/// [`crate::Error::Usage`] when the variable is set but this process was
/// not started by another `wal push` (a stray setting: it never passes for
/// an archived file); as [`push`] for bad arguments.
pub async fn push_background(env: &Env, a: &WalPushArgs) -> Result<Option<usize>> {
    if std::env::var_os(wal::PUSHER_ENV).is_none() {
        return Ok(None);
    }
    let p = push_plan(env, a)?;
    match wal::background_role(wal::PUSHER_ENV, &p.ahead.spool) {
        wal::BackgroundRole::Foreground => Ok(None),
        wal::BackgroundRole::Stray => Err(stray(wal::PUSHER_ENV, "nothing was archived")),
        wal::BackgroundRole::Helper => wal::push_ready_after(
            &*p.sink,
            &p.name,
            &a.path,
            p.level,
            &p.ahead,
            p.recipients.as_ref(),
        )
        .await
        .map(Some),
    }
}

/// Archive one WAL file; see [`crate::wal::push`].
///
/// # Errors
/// As [`crate::wal::push`], and usage errors for missing arguments or
/// [`crate::wal::PUSHER_ENV`] set.
pub async fn push(env: &Env, a: &WalPushArgs) -> Result<WalPushReport> {
    if std::env::var_os(wal::PUSHER_ENV).is_some() {
        return Err(stray(wal::PUSHER_ENV, "nothing was archived"));
    }
    let PushPlan {
        sink,
        name,
        level,
        ahead,
        recipients,
    } = push_plan(env, a)?;
    let r = wal::push_ahead(
        &*sink,
        &name,
        &a.path,
        level,
        Some(&ahead),
        recipients.as_ref(),
    )
    .await?;
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

/// What a `wal fetch` needs, from its arguments and the config.
struct FetchPlan {
    sink: std::sync::Arc<dyn crate::sink::Sink>,
    name: String,
    ahead: wal::LookAhead,
    keys: Option<crate::crypt::Identities>,
}

fn fetch_plan(env: &Env, a: &WalFetchArgs) -> Result<FetchPlan> {
    if a.file_name.is_empty() || a.path.as_os_str().is_empty() {
        return Err(usage(
            "wal fetch: the WAL file's name (%f) and the path to write it to (%p) are both needed",
        ));
    }
    let parallel = a.parallel.unwrap_or(4);
    crate::units::check_range("--parallel", parallel, 1..=64).map_err(usage)?;
    let sink = env.sink(a.sink.as_deref(), "--from")?;
    let name = source_name(env, a.name.as_deref())?;
    let spool = a.spool_dir.clone().unwrap_or_else(|| {
        // Per sink and name: two archives may use the same name.
        use sha2::Digest;
        let id = sha2::Sha256::digest(format!("{}\n{name}", sink.identity()));
        env.temp_root()
            .join(format!("lifeboat-walfetch-{}", &hex::encode(id)[..16]))
    });
    let ahead = wal::LookAhead {
        parallel: parallel as usize,
        spool,
    };
    let keys = env.identities(a.identity.as_deref())?;
    Ok(FetchPlan {
        sink,
        name,
        ahead,
        keys,
    })
}

/// The background filler's side of `wal fetch` (see [`crate::wal::fill`]):
/// `Ok(None)` when this process is not one ([`crate::wal::FILLER_ENV`]
/// unset); `Ok(Some(n))` when it is, with `n` segments after `%f` put in
/// the spool and nothing written to `%p`; the process then exits 0 (see
/// [`push_background`]).
///
/// # Errors
/// [`crate::Error::Usage`] when the variable is set but this process was
/// not started by another `wal fetch` (a stray setting: it must stop a
/// recovery, not starve it); as [`fetch`] for bad arguments.
pub async fn fetch_background(env: &Env, a: &WalFetchArgs) -> Result<Option<usize>> {
    if std::env::var_os(wal::FILLER_ENV).is_none() {
        return Ok(None);
    }
    let p = fetch_plan(env, a)?;
    match wal::background_role(wal::FILLER_ENV, &p.ahead.spool) {
        wal::BackgroundRole::Foreground => Ok(None),
        wal::BackgroundRole::Stray => Err(stray(
            wal::FILLER_ENV,
            &format!("nothing was written to {}", a.path.display()),
        )),
        wal::BackgroundRole::Helper => {
            wal::fill(&*p.sink, &p.name, &a.file_name, &p.ahead, p.keys.as_ref())
                .await
                .map(Some)
        }
    }
}

/// Fetch one archived WAL file; see [`crate::wal::fetch`].
///
/// # Errors
/// As [`crate::wal::fetch`] ([`crate::Error::NotFound`] when the archive
/// does not have it), and usage errors for missing arguments or
/// [`crate::wal::FILLER_ENV`] set.
pub async fn fetch(env: &Env, a: &WalFetchArgs) -> Result<WalFetchReport> {
    if std::env::var_os(wal::FILLER_ENV).is_some() {
        return Err(stray(
            wal::FILLER_ENV,
            &format!("nothing was written to {}", a.path.display()),
        ));
    }
    let FetchPlan {
        sink,
        name,
        ahead,
        keys,
    } = fetch_plan(env, a)?;
    let r = wal::fetch_ahead(
        &*sink,
        &name,
        &a.file_name,
        &a.path,
        Some(&ahead),
        keys.as_ref(),
    )
    .await?;
    tracing::info!(
        summary = true,
        command = "wal fetch",
        result = "ok",
        file = %r.name,
        size = r.size,
        prefetched = r.prefetched,
        duration_ms = r.duration.as_millis() as u64,
        "fetched"
    );
    Ok(r)
}

/// Check a server's archiving settings, and that a forced segment switch
/// lands in the sink.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct WalSetupArgs {
    /// The server: postgres://user@host/db (default: source in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(value_name = "SOURCE"))]
    pub source: Option<String>,
    /// Where the archive lives (default: sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "to", value_name = "SINK"))]
    pub sink: Option<String>,
    /// The source name the archive is kept under (default: the config's name, or the database's).
    #[cfg_attr(feature = "clap", arg(long))]
    pub name: Option<String>,
    /// Connect and check: wal_level, archive_mode, archive_command, archive_timeout, then force a segment switch (pg_switch_wal) and wait until that segment is in the sink. Without it, only print the settings to add.
    #[cfg_attr(feature = "clap", arg(long))]
    pub check: bool,
    /// How long to wait for the switched segment (default 60s).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    #[serde(deserialize_with = "super::string_or_number")]
    pub timeout: Option<String>,
}

/// One server setting and what archiving needs of it.
#[derive(Debug, Clone, Serialize)]
pub struct SettingCheck {
    /// The setting.
    pub name: String,
    /// Its value on the server.
    pub value: String,
    /// What it should be.
    pub wanted: String,
    /// Whether it is fine.
    pub ok: bool,
}

/// What `wal setup` found.
#[derive(Debug, Clone, Serialize)]
pub struct WalSetupReport {
    /// The lines for `postgresql.conf` (or a `conf.d` file).
    pub conf_lines: Vec<String>,
    /// The server's settings (with `check`).
    pub settings: Vec<SettingCheck>,
    /// The segment the check switched away from, when it could switch.
    pub switched_segment: Option<String>,
    /// How long it took to land in the sink, when it did.
    pub archived_in_ms: Option<u64>,
    /// `pg_stat_archiver` after the check.
    pub archiver: Option<crate::wal::ArchiverStats>,
    /// What is wrong; empty when archiving works.
    pub problems: Vec<String>,
}

/// Print the archiving settings for a source and, with `check`, check them
/// on the server and prove a switched segment lands in the sink.
///
/// # Errors
/// [`Error::Health`] (exit 6) naming every problem, when the check finds
/// any; connection and sink errors.
pub async fn setup(env: &Env, a: &WalSetupArgs) -> Result<WalSetupReport> {
    let sink_url = env
        .sink_url(a.sink.as_deref())
        .ok_or_else(|| usage("wal setup: pass --to SINK (or set sink in lifeboat.toml)"))?;
    let sink = env.sink(Some(&sink_url), "--to")?;
    let url = a
        .source
        .clone()
        .or_else(|| env.postgres_source_url())
        .ok_or_else(|| usage("wal setup: name the server (postgres://user@host/db) or set source in lifeboat.toml"))?;
    let conn = crate::source::postgres::PgConn::parse_first(&url)?;
    let name = match a.name.clone().or_else(|| env.settings.name.clone()) {
        Some(n) => n,
        None => conn.dbname.clone(),
    };
    crate::manifest::check_source_name(&name)?;
    let timeout = match &a.timeout {
        Some(t) => {
            crate::config::parse_duration_secs(t).map_err(|e| usage(format!("--timeout: {e}")))?
        }
        None => 60,
    };
    crate::units::check_range("--timeout", timeout, 1..=24 * 3600).map_err(usage)?;
    let command = format!("lifeboat wal push %p --to {sink_url} --name {name}");
    let mut report = WalSetupReport {
        conf_lines: vec![
            "wal_level = replica".into(),
            "archive_mode = on".into(),
            format!("archive_command = '{}'", command.replace('\'', "''")),
            "archive_timeout = 60".into(),
        ],
        settings: Vec::new(),
        switched_segment: None,
        archived_in_ms: None,
        archiver: None,
        problems: Vec::new(),
    };
    if !a.check {
        return Ok(report);
    }
    let client = conn.connect().await?;
    let fail = |e: tokio_postgres::Error| Error::source_err(conn.location(), e.to_string());
    let show = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .map(|r| r.get::<_, String>(0))
        }
    };
    let wal_level = show("wal_level").await.map_err(fail)?;
    let archive_mode = show("archive_mode").await.map_err(fail)?;
    let archive_command = show("archive_command").await.map_err(fail)?;
    let archive_timeout = show("archive_timeout").await.map_err(fail)?;
    let checks = [
        (
            "wal_level",
            wal_level.clone(),
            "replica (or logical)",
            wal_level != "minimal",
        ),
        (
            "archive_mode",
            archive_mode.clone(),
            "on",
            archive_mode == "on" || archive_mode == "always",
        ),
        (
            "archive_command",
            archive_command.clone(),
            command.as_str(),
            archive_command.contains("wal push")
                && archive_command.contains(&format!("--name {name}")),
        ),
        (
            "archive_timeout",
            archive_timeout.clone(),
            "60s (a segment at least every minute)",
            archive_timeout != "0",
        ),
    ];
    for (n, value, wanted, ok) in checks {
        if !ok {
            report.problems.push(format!(
                "{n} is {value:?}; set it to {wanted}{}",
                if matches!(n, "wal_level" | "archive_mode") {
                    " (needs a server restart)"
                } else {
                    " (SELECT pg_reload_conf() applies it)"
                }
            ));
        }
        report.settings.push(SettingCheck {
            name: n.into(),
            value,
            wanted: wanted.into(),
            ok,
        });
    }
    let blocking_ok = report.settings.iter().take(3).all(|s| s.ok);
    if blocking_ok {
        // Some WAL in the current segment, so the switch completes one.
        let row = client
            .query_one(
                "SELECT pg_walfile_name(pg_current_wal_insert_lsn()) FROM (SELECT pg_logical_emit_message(false, 'lifeboat', 'wal setup --check')) m",
                &[],
            )
            .await
            .map_err(fail)?;
        let segment: String = row.get(0);
        client
            .query_one("SELECT pg_switch_wal()", &[])
            .await
            .map_err(|e| {
                Error::source_err(
                    conn.location(),
                    format!("cannot switch WAL segments (pg_switch_wal needs a superuser or EXECUTE on it): {e}"),
                )
            })?;
        report.switched_segment = Some(segment.clone());
        let timeline = u32::from_str_radix(&segment[..8], 16).unwrap_or(1);
        let key = crate::layout::wal_segment_key(&name, timeline, &segment);
        let t0 = Instant::now();
        loop {
            match sink.head(&key).await {
                Ok(_) => {
                    report.archived_in_ms = Some(t0.elapsed().as_millis() as u64);
                    break;
                }
                Err(Error::NotFound { .. }) if t0.elapsed() < Duration::from_secs(timeout) => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(Error::NotFound { .. }) => {
                    report.problems.push(format!(
                        "segment {segment} was not in {sink_url} under {name} {timeout}s after pg_switch_wal(): see pg_stat_archiver and the server log"
                    ));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    report.archiver = crate::wal::ArchiverStats::query(&client, &conn).await.ok();
    Ok(report)
}

/// `wal setup`'s problems as the error of the run (exit 6), if any.
pub fn setup_problems(r: &WalSetupReport) -> Option<Error> {
    (!r.problems.is_empty()).then(|| Error::Health {
        message: r.problems.join("; "),
    })
}
