//! PostgreSQL logical backups through `pg_dump`.
//!
//! Backup, in one consistent snapshot:
//!
//! 1. Connect, read the server version, refuse a standby whose replay lag is
//!    over the limit, and pick a `pg_dump` at least as new as the server
//!    (refusing, with both versions named, before anything is uploaded).
//! 2. Open a `REPEATABLE READ` transaction and `pg_export_snapshot()`.
//! 3. Start `pg_dump -Fc -Z0 --snapshot=<id>`: its stdout is the artifact,
//!    streamed into the pipeline (compressed by Lifeboat, never a temp file).
//!    On the way its per-row chunks are merged into 256 KiB ones and the
//!    rows of every table counted ([`archive::Repacker`]); the result is
//!    still a custom-format archive for any `pg_restore`. The first bytes are
//!    also fed to `pg_restore --list`: the archive's table of contents must
//!    be readable and hold at least `min_tables` tables.
//! 4. Meanwhile, in the exporting transaction, `count(*)` every dumped table:
//!    exact row counts at exactly the dump's snapshot. The archive must hold
//!    exactly those rows (the `pg-rows` verdict).
//! 5. The transaction ends only after `pg_dump` exits; a non-zero exit (or a
//!    kill) fails the run and nothing becomes visible.
//!
//! The password reaches child processes only through a `0600` passfile in a
//! private directory (`PGPASSFILE`); command lines carry none.
//!
//! Restore goes into a new database under a temporary name, is checked
//! against the fingerprint's row counts, and only then takes the target name;
//! an existing database (with `force`) is renamed aside and dropped last.

pub mod archive;
pub mod cluster;
mod conn;
mod details;
pub mod drill;
pub(crate) mod globals;
pub(crate) mod restore;
pub(crate) mod sql;
pub mod tls;
pub mod tools;
pub(crate) mod verify;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

pub use conn::PgConn;
pub use details::{GlobalsDetails, PostgresDetails};
pub use drill::{DrillTarget, PgDrill, SmokeCheck, cluster_available, pg_drill};
pub use globals::GlobalsReport;
pub use tools::{PgVersion, Tool, ToolOptions};
pub use verify::PgToc;

use super::{Attachment, Dump, DumpOptions, DumpOutcome, RestoreOptions, RestoreOutcome, Source};
use crate::error::{Error, Result};
use crate::manifest::{Fingerprint, Manifest, TableCount, Verdict};
use crate::rt::blocking;

/// How much of the stream `pg_restore --list` may read: the table of
/// contents sits at the start of a custom-format archive.
const TOC_TEE_LIMIT: u64 = 64 * 1024 * 1024;
const STDERR_KEEP: usize = 16 * 1024;

/// What to dump and how. Every field has a default; in `lifeboat.toml` this
/// is a profile's `[postgres]` table.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Where the tools are, or a command prefix to run them in a container.
    #[serde(flatten)]
    pub tools: ToolOptions,
    /// Only these schemas (`pg_dump -n`).
    pub schemas: Vec<String>,
    /// Not these schemas (`pg_dump -N`).
    pub exclude_schemas: Vec<String>,
    /// Only these tables (`pg_dump -t`, `schema.table` or a pattern).
    pub tables: Vec<String>,
    /// Not these tables (`pg_dump -T`).
    pub exclude_tables: Vec<String>,
    /// Also store roles and tablespaces (`pg_dumpall --globals-only`).
    pub globals: bool,
    /// The structural check fails when the archive lists fewer tables.
    pub min_tables: usize,
    /// Refuse (or warn about) a standby whose replay lag exceeds this
    /// (`"5m"`, or seconds).
    #[serde(deserialize_with = "crate::units::opt_duration::deserialize")]
    pub max_replica_lag: Option<u64>,
    /// Only warn when the lag is exceeded.
    pub replica_lag_warn_only: bool,
    /// Parallel jobs for restores and drills (default: the number of cores).
    pub jobs: Option<u32>,
    /// Restore without ownership and privileges (`--no-owner --no-privileges`).
    pub no_owner: bool,
    /// How long a backup waits for a table lock another session holds
    /// (`"2m"`, `"30s"`, or seconds; default 2 minutes, at most a day).
    /// `pg_dump --lock-wait-timeout` and Lifeboat's own `lock_timeout`.
    #[serde(deserialize_with = "lock_wait_serde::deserialize")]
    pub lock_wait: u64,
    /// Restore what loads: pg_restore goes on past errors, which are
    /// listed, and so are tables whose rows differ; the result still takes
    /// the target name (`restore --partial`). Never from the config.
    #[serde(skip)]
    pub partial: bool,
    /// `ANALYZE` a restored database before it takes the target name
    /// (default true; `restore --no-analyze`).
    pub analyze: bool,
    /// Restore everything into the default tablespace (a drill's
    /// throwaway cluster has none of the backup's).
    #[serde(skip)]
    pub(crate) no_tablespaces: bool,
}

/// The lock wait when none is configured: 2 minutes.
pub const DEFAULT_LOCK_WAIT_SECS: u64 = 120;
/// The longest lock wait accepted: a day (PostgreSQL's own limit is ~24.8 days
/// of milliseconds in an int).
pub const MAX_LOCK_WAIT_SECS: u64 = 86_400;

/// Parse a lock wait: `"30s"`, `"5m"`, `"1h"` or plain seconds, from 1 second
/// to [`MAX_LOCK_WAIT_SECS`]. Never overflows: a huge number is an error.
///
/// # Errors
/// A message saying what is wrong with `text`.
pub fn parse_lock_wait(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => {
            return Err(format!(
                "invalid lock wait {text:?}: use like \"30s\", \"2m\" or seconds"
            ));
        }
    };
    let secs = num
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|s| *s <= MAX_LOCK_WAIT_SECS);
    match secs {
        None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => Err(format!(
            "lock wait {text:?} is too long: at most {}",
            fmt_secs(MAX_LOCK_WAIT_SECS)
        )),
        None => Err(format!(
            "invalid lock wait {text:?}: use like \"30s\", \"2m\" or seconds"
        )),
        Some(0) => Err(format!("lock wait {text:?} is too short: at least 1s")),
        Some(s) => Ok(s),
    }
}

/// `90` → `1m30s`, `120` → `2m`, `2` → `2s`.
pub(crate) fn fmt_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// `lock_wait` in `lifeboat.toml`: seconds or a duration string, checked.
mod lock_wait_serde {
    use serde::Deserialize;

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        super::parse_lock_wait(&text).map_err(serde::de::Error::custom)
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            tools: ToolOptions::default(),
            schemas: Vec::new(),
            exclude_schemas: Vec::new(),
            tables: Vec::new(),
            exclude_tables: Vec::new(),
            globals: false,
            min_tables: 1,
            max_replica_lag: None,
            replica_lag_warn_only: false,
            jobs: None,
            no_owner: false,
            lock_wait: DEFAULT_LOCK_WAIT_SECS,
            analyze: true,
            partial: false,
            no_tablespaces: false,
        }
    }
}

impl PostgresOptions {
    /// Check the numbers.
    ///
    /// # Errors
    /// A message naming the key and the range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(j) = self.jobs {
            crate::units::check_range("jobs", j, 1..=256)?;
        }
        if let Some(l) = self.max_replica_lag {
            crate::units::check_duration(l).map_err(|e| format!("max_replica_lag: {e}"))?;
        }
        Ok(())
    }

    pub(crate) fn jobs(&self) -> u32 {
        self.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        })
    }

    fn filter_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (flag, list) in [
            ("--schema", &self.schemas),
            ("--exclude-schema", &self.exclude_schemas),
            ("--table", &self.tables),
            ("--exclude-table", &self.exclude_tables),
        ] {
            for v in list {
                a.push(format!("{flag}={v}"));
            }
        }
        a
    }
}

/// One PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresSource {
    conn: PgConn,
    opts: PostgresOptions,
    /// A backup's `pg_dumpall --globals-only`, to apply before a restore.
    globals: Option<Arc<Vec<u8>>>,
}

/// What a connection learned before dumping.
struct Plan {
    client: tokio_postgres::Client,
    server: PgVersion,
    pg_dump: Tool,
    pg_restore: Tool,
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Collects the tail of a child's stderr on a thread.
fn drain_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = e.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 2 * STDERR_KEEP {
                    buf.drain(..buf.len() - STDERR_KEEP);
                }
            }
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        tail[tail.len().saturating_sub(5)..].join(" / ")
    })
}

/// Reads from `pg_dump` and copies the first bytes into `pg_restore --list`.
struct TeeReader<R> {
    inner: R,
    tee: Option<ChildStdin>,
    teed: u64,
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        if let Some(t) = self.tee.as_mut() {
            // pg_restore --list stops reading after the table of contents;
            // a broken pipe then just ends the copy.
            if n == 0 || self.teed >= TOC_TEE_LIMIT || t.write_all(&out[..n]).is_err() {
                self.tee = None;
            } else {
                self.teed += n as u64;
            }
        }
        Ok(n)
    }
}

/// The archive's own row counts against the snapshot's `count(*)`: every
/// counted table whose data is in the archive must hold exactly as many
/// rows. `None` when the archive was passed through unread.
fn archive_rows_verdict(
    counts: &[TableCount],
    large_objects: Option<u64>,
    stats: &archive::ArchiveStats,
    started: Instant,
) -> Option<Verdict> {
    if stats.passthrough.is_some() || !stats.complete {
        return None;
    }
    let in_archive: BTreeMap<String, u64> = stats
        .tables
        .iter()
        .map(|(s, t, n)| (format!("{s}.{t}"), *n))
        .collect();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for c in counts {
        if let Some(&n) = in_archive.get(&c.name) {
            checked += 1;
            if n != c.rows {
                wrong.push(format!(
                    "{}: {} in the archive, {} in the snapshot",
                    c.name, n, c.rows
                ));
            }
        }
    }
    let mut lobs = String::new();
    if let Some(n) = large_objects {
        if stats.large_objects != n {
            wrong.push(format!(
                "large objects: {} in the archive, {n} in the snapshot",
                stats.large_objects
            ));
        }
        lobs = format!(" and its {n} large objects");
    }
    Some(if wrong.is_empty() {
        Verdict::pass(
            "pg-rows",
            format!("the archive holds exactly the snapshot's rows for {checked} tables{lobs}"),
            started,
        )
    } else {
        Verdict::fail(
            "pg-rows",
            format!("row counts differ: {}", wrong.join("; ")),
            started,
        )
    })
}

fn archive_details(stats: &archive::ArchiveStats) -> serde_json::Value {
    serde_json::json!({
        "format": "custom",
        "version": stats.version,
        "chunks_merged": stats.passthrough.is_none(),
        "chunks_in": stats.chunks_in,
        "chunks_out": stats.chunks_out,
        "passthrough": stats.passthrough,
    })
}

/// Count the tables a `pg_restore --list` output names.
pub fn toc_counts(listing: &str) -> (usize, usize, usize) {
    let mut tables = 0;
    let mut data = 0;
    let mut entries = 0;
    for line in listing.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        entries += 1;
        if line.contains(" TABLE DATA ") {
            data += 1;
        } else if line.contains(" TABLE ") {
            tables += 1;
        }
    }
    (tables, data, entries)
}

/// The `pg-toc` verdict on `pg_restore --list`'s output (`Err`: why it could
/// not read the archive): at least `min_tables` tables.
pub(crate) fn toc_verdict(
    listing: std::result::Result<&str, String>,
    min_tables: usize,
    started: Instant,
) -> Verdict {
    let listing = match listing {
        Ok(l) => l,
        Err(why) => {
            return Verdict::fail(
                "pg-toc",
                format!("pg_restore --list could not read the archive: {why}"),
                started,
            );
        }
    };
    let (tables, data, entries) = toc_counts(listing);
    if tables < min_tables {
        Verdict::fail(
            "pg-toc",
            format!("the archive lists {tables} tables, fewer than the required {min_tables}"),
            started,
        )
    } else {
        Verdict::pass(
            "pg-toc",
            format!(
                "pg_restore --list read {entries} entries: {tables} tables, {data} with data (at least {min_tables} required)"
            ),
            started,
        )
    }
}

/// The tables to fingerprint: ordinary tables (and partitions) outside the
/// system schemas, filtered like `pg_dump` filters them (exact names or `*`
/// patterns, `schema.table` or `table`).
pub(crate) async fn list_tables(
    client: &tokio_postgres::Client,
    opts: &PostgresOptions,
) -> std::result::Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                 AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    let all: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(all
        .into_iter()
        .filter(|(s, t)| table_selected(s, t, opts))
        .collect())
}

fn glob(pattern: &str, text: &str) -> bool {
    fn rec(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], t) || (!t.is_empty() && rec(p, &t[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &t[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), text.as_bytes())
}

fn table_matches(pattern: &str, schema: &str, table: &str) -> bool {
    match pattern.split_once('.') {
        Some((ps, pt)) => glob(ps, schema) && glob(pt, table),
        None => glob(pattern, table),
    }
}

fn table_selected(schema: &str, table: &str, o: &PostgresOptions) -> bool {
    (o.schemas.is_empty() || o.schemas.iter().any(|p| glob(p, schema)))
        && !o.exclude_schemas.iter().any(|p| glob(p, schema))
        && (o.tables.is_empty() || o.tables.iter().any(|p| table_matches(p, schema, table)))
        && !o
            .exclude_tables
            .iter()
            .any(|p| table_matches(p, schema, table))
}

/// Exact row counts; a failure names the table it was counting.
async fn count_rows(
    client: &tokio_postgres::Client,
    tables: &[(String, String)],
) -> std::result::Result<Vec<TableCount>, (String, tokio_postgres::Error)> {
    let mut out = Vec::with_capacity(tables.len());
    for (s, t) in tables {
        let n: i64 = client
            .query_one(
                // ONLY: an inheritance parent's own rows, which are all its
                // TABLE DATA holds; its children are counted as tables of
                // their own.
                &format!(
                    "SELECT count(*) FROM ONLY {}.{}",
                    quote_ident(s),
                    quote_ident(t)
                ),
                &[],
            )
            .await
            .map_err(|e| (format!("{s}.{t}"), e))?
            .get(0);
        out.push(TableCount {
            name: format!("{s}.{t}"),
            rows: n as u64,
        });
    }
    Ok(out)
}

/// Tables locked per `LOCK TABLE` statement: few round trips, short statements.
const LOCK_BATCH: usize = 500;

/// `LOCK TABLE … IN ACCESS SHARE MODE` every table, in the current
/// transaction (its `lock_timeout` is the lock wait). On a timeout, name the
/// table another session holds.
async fn lock_tables(
    client: &tokio_postgres::Client,
    tables: &[(String, String)],
    lock_wait: u64,
) -> std::result::Result<(), String> {
    for batch in tables.chunks(LOCK_BATCH) {
        let names: Vec<String> = batch
            .iter()
            .map(|(s, t)| format!("ONLY {}.{}", quote_ident(s), quote_ident(t)))
            .collect();
        // A savepoint keeps the transaction usable to ask who holds the lock.
        let sql = format!(
            "SAVEPOINT lifeboat_lock; LOCK TABLE {} IN ACCESS SHARE MODE; RELEASE SAVEPOINT lifeboat_lock",
            names.join(", ")
        );
        let Err(e) = client.batch_execute(&sql).await else {
            continue;
        };
        if !lock_timed_out(&e) {
            return Err(format!("cannot lock the tables to dump: {}", db_err(&e)));
        }
        let _ = client
            .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_lock")
            .await;
        let held: Vec<(String, String)> = client
            .query(
                "SELECT n.nspname, c.relname FROM pg_locks l \
                 JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.granted \
                 AND l.pid <> pg_backend_pid() \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .unwrap_or_default();
        let culprits: Vec<String> = batch
            .iter()
            .filter(|t| held.contains(t))
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        let table = match culprits.len() {
            // Released meanwhile, or held in another mode that conflicts.
            0 if batch.len() == 1 => format!("{}.{}", batch[0].0, batch[0].1),
            0 => format!("one of {} tables", batch.len()),
            _ => culprits.join(", "),
        };
        return Err(locked_message(&table, lock_wait));
    }
    Ok(())
}

/// A lock wait ran out: `lock_timeout` (55P03), or pg_dump's
/// `--lock-wait-timeout`, which is a `statement_timeout` (57014).
fn lock_timed_out(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|d| matches!(d.code().code(), "55P03" | "57014"))
}

fn locked_message(table: &str, lock_wait: u64) -> String {
    let what = if table.starts_with("one of") {
        table.to_string()
    } else {
        format!("table {table}")
    };
    format!(
        "{what} is locked by another session (ACCESS EXCLUSIVE?) for longer than the lock wait of {} (--lock-wait, [postgres] lock_wait)",
        fmt_secs(lock_wait)
    )
}

/// The table(s) a `pg_dump` that gave up waiting for a lock names in its
/// error (`Query was: LOCK TABLE public.items IN ACCESS SHARE MODE`).
fn pg_dump_lock_failure(stderr: &str) -> Option<String> {
    if !(stderr.contains("statement timeout") || stderr.contains("lock timeout")) {
        return None;
    }
    let after = stderr.split("LOCK TABLE ").nth(1)?;
    let tables = after.split(" IN ").next()?.trim();
    let tables = tables.strip_prefix("ONLY ").unwrap_or(tables);
    (!tables.is_empty()).then(|| tables.to_string())
}

fn db_err(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

impl PostgresSource {
    /// A source for the database in `conn`.
    pub fn new(conn: PgConn, opts: PostgresOptions) -> Self {
        Self {
            conn,
            opts,
            globals: None,
        }
    }

    /// One source per database named in `url` (`postgres://host/db1,db2`).
    ///
    /// # Errors
    /// [`Error::Usage`] for a malformed URL.
    pub fn from_url(url: &str, opts: &PostgresOptions) -> Result<Vec<Self>> {
        let (conn, dbs) = PgConn::parse(url)?;
        Ok(dbs
            .iter()
            .map(|d| Self::new(conn.with_dbname(d), opts.clone()))
            .collect())
    }

    /// Apply these globals (a backup's `globals` attachment, see
    /// [`fetch_globals`]) before a restore loads data: missing roles and
    /// tablespaces are created, existing ones left exactly as they are.
    pub fn with_globals(mut self, script: Vec<u8>) -> Self {
        self.globals = Some(Arc::new(script));
        self
    }

    /// The connection parameters.
    pub fn conn(&self) -> &PgConn {
        &self.conn
    }

    /// The options.
    pub fn options(&self) -> &PostgresOptions {
        &self.opts
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::source_err(self.location(), message)
    }

    fn restore_err(&self, message: impl Into<String>) -> Error {
        Error::restore_err(self.location(), message)
    }

    async fn server_version(&self, client: &tokio_postgres::Client) -> Result<PgVersion> {
        let v: String = client
            .query_one("SHOW server_version_num", &[])
            .await
            .map_err(|e| self.err(format!("cannot read the server version: {}", db_err(&e))))?
            .get(0);
        Ok(PgVersion::from_num(v.trim().parse().unwrap_or(0)))
    }

    /// Seed 003's replica guard.
    async fn check_replica(&self, client: &tokio_postgres::Client) -> Result<()> {
        let standby: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| self.err(db_err(&e)))?
            .get(0);
        if !standby {
            return Ok(());
        }
        let row = client
            .query_one(
                "SELECT pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn(), \
                 EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8",
                &[],
            )
            .await
            .map_err(|e| self.err(db_err(&e)))?;
        let behind: bool = row.get(0);
        // Caught up: no lag. Behind: time since the last replayed commit;
        // unknown (never replayed one) counts as over any limit.
        let lag: f64 = if behind {
            row.get::<_, Option<f64>>(1).unwrap_or(f64::INFINITY)
        } else {
            0.0
        };
        tracing::info!(source = %self.location(), replay_lag_secs = lag, "source is a standby");
        if let Some(max) = self.opts.max_replica_lag
            && lag > max as f64
        {
            let behind = if lag.is_finite() {
                format!("{lag:.0}s behind its primary")
            } else {
                "behind its primary by an unknown time (WAL received, none replayed yet)"
                    .to_string()
            };
            let msg = format!(
                "the source is a standby {behind}, more than the allowed {max}s; a backup now would miss recent data"
            );
            if self.opts.replica_lag_warn_only {
                tracing::warn!(source = %self.location(), "{msg}");
            } else {
                return Err(self.err(msg));
            }
        }
        Ok(())
    }

    async fn plan(&self) -> Result<Plan> {
        let client = self.conn.connect().await?;
        let server = self.server_version(&client).await?;
        self.check_replica(&client).await?;
        let pg_dump = tools::pick("pg_dump", server.major, &self.opts.tools)
            .map_err(|m| self.err(format!("server is PostgreSQL {server}: {m}")))?;
        let pg_restore = tools::pick("pg_restore", pg_dump.version.major, &self.opts.tools)
            .map_err(|m| self.err(format!("to check the dump's table of contents: {m}")))?;
        Ok(Plan {
            client,
            server,
            pg_dump,
            pg_restore,
        })
    }

    /// `pg_dumpall --globals-only`. A role that may not read `pg_authid`,
    /// where passwords are (a managed database's admin is no superuser),
    /// gets "permission denied": then it dumps again with
    /// `--no-role-passwords`, warns, and says so in the attachment's first
    /// line and the manifest. Those roles come back without passwords.
    async fn dump_globals(
        &self,
        server: PgVersion,
        secrets: &std::path::Path,
    ) -> Result<(Attachment, Option<String>)> {
        let tool = tools::pick("pg_dumpall", server.major, &self.opts.tools)
            .map_err(|m| self.err(format!("for --globals: {m}")))?;
        let run = |no_passwords: bool| {
            let mut cmd = tool.command();
            cmd.args(["--globals-only", "--no-password"]);
            if no_passwords {
                cmd.arg("--no-role-passwords");
            }
            let configured = self.conn.configure_child(&mut cmd, secrets);
            async move {
                configured?;
                tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output())
                    .await
                    .map_err(|e| self.err(format!("pg_dumpall failed: {e}")))?
                    .map_err(|e| self.err(format!("cannot run pg_dumpall: {e}")))
            }
        };
        let mut out = run(false).await?;
        let mut denied = None;
        if !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("permission denied")
        {
            let why = String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.contains("permission denied"))
                .map(|l| l.trim().to_string())
                .unwrap_or_default();
            denied = Some(why);
            out = run(true).await?;
        }
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).replace('\n', " ");
            return Err(self.err(format!(
                "pg_dumpall --globals-only failed ({}): {err}",
                out.status
            )));
        }
        let mut data = out.stdout;
        let warning = denied.map(|why| {
            let w = format!(
                "role {} may not read role passwords ({why}): globals dumped with --no-role-passwords, so restored roles have no passwords",
                self.conn.user
            );
            tracing::warn!(source = %self.location(), "{w}");
            let mut marked = format!("{} ({w})\n", globals::LIFEBOAT_NO_PASSWORDS).into_bytes();
            marked.append(&mut data);
            data = marked;
            w
        });
        Ok((
            Attachment {
                name: crate::layout::GLOBALS_ATTACHMENT.into(),
                file_name: crate::layout::GLOBALS_FILE.into(),
                data: bytes::Bytes::from(data),
            },
            warning,
        ))
    }

    fn admin_conn(&self) -> PgConn {
        self.conn.with_dbname("postgres")
    }

    /// The databases killed restores and drills left on this server
    /// (staging, scratch, moved-aside ones whose run is gone), found without
    /// touching them. The next restore or drill on the server removes them
    /// (a moved-aside one is renamed back when its name is free).
    ///
    /// # Errors
    /// The server cannot be reached or queried.
    pub async fn leftover_databases(&self) -> Result<Vec<String>> {
        let admin = self.admin_conn().connect().await?;
        restore::find_leftovers(&admin)
            .await
            .map_err(|m| self.err(m))
    }

    async fn database_exists(&self, admin: &tokio_postgres::Client, name: &str) -> Result<bool> {
        Ok(admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| self.restore_err(db_err(&e)))?
            .is_some())
    }
}

/// A backup's stored globals (`pg_dumpall --globals-only`), read back and
/// checked against the manifest; `None` when it was taken without them.
///
/// # Errors
/// Sink errors; [`Error::Restore`] when the stored object does not match
/// the manifest.
pub async fn fetch_globals(
    sink: &dyn crate::sink::Sink,
    manifest: &Manifest,
) -> Result<Option<Vec<u8>>> {
    use crate::sink::SinkExt;
    use sha2::Digest;
    let Some(info) = manifest
        .attachments
        .iter()
        .find(|a| a.name == crate::layout::GLOBALS_ATTACHMENT)
    else {
        return Ok(None);
    };
    let fail = |m: String| Error::restore_err(manifest.source.location.clone(), m);
    if let Some(c) = info.compression.as_ref().filter(|c| c.algorithm != "zstd") {
        return Err(fail(format!(
            "{} is compressed with {}, which this version cannot read",
            info.key, c.algorithm
        )));
    }
    let stored = sink.get_bytes(&info.key).await?;
    if hex::encode(sha2::Sha256::digest(&stored)) != info.sha256 {
        return Err(fail(format!(
            "{} does not match the SHA-256 in the manifest",
            info.key
        )));
    }
    let raw = zstd::bulk::decompress(&stored, info.raw_size as usize)
        .map_err(|e| fail(format!("cannot decompress {}: {e}", info.key)))?;
    Ok(Some(raw))
}

#[async_trait]
impl Source for PostgresSource {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        self.conn.location()
    }

    fn default_name(&self) -> String {
        self.conn
            .dbname
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }

    fn extension(&self) -> &'static str {
        "pgdump"
    }

    fn artifact_format(&self) -> &'static str {
        "pg_dump custom-format archive (pg_restore)"
    }

    /// Host, port and database: the user, TLS settings and spelling of the
    /// URL do not make it another database.
    fn lock_key(&self) -> String {
        let host = match self.conn.host.as_str() {
            h if h.starts_with('/') => std::fs::canonicalize(h)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| h.to_string()),
            h => h.trim_end_matches('.').to_ascii_lowercase(),
        };
        format!("postgres://{host}:{}/{}", self.conn.port, self.conn.dbname)
    }

    /// Level 1. With the archive's row chunks merged ([`archive`]), zstd's
    /// fastest level already stores the benchmark database in 0.95× the
    /// size of `pg_dump -Fc` (level 6: 0.94× for 2.4× the CPU of the run,
    /// BENCHMARKS.md), and every CPU second it does not take is one the
    /// server and `pg_dump` (the bottleneck) can have.
    fn default_compression_level(&self) -> i32 {
        1
    }

    async fn preflight(&self) -> Result<()> {
        let plan = self.plan().await?;
        tracing::info!(
            source = %self.location(),
            server = %plan.server,
            pg_dump = %plan.pg_dump.argv.join(" "),
            pg_dump_version = %plan.pg_dump.version,
            "PostgreSQL preflight ok"
        );
        Ok(())
    }

    async fn dump(&self, opts: &DumpOptions) -> Result<Dump> {
        let temp_root = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        // A PrivateDir: if this process is killed, the next run's sweep
        // removes it (and the passfile in it).
        let secrets = crate::tempdir::PrivateDir::new(&temp_root, "pg")
            .map_err(|e| self.err(format!("cannot create a private temp directory: {e}")))?;
        let Plan {
            client,
            server,
            pg_dump,
            pg_restore,
        } = self.plan().await?;

        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(|e| self.err(db_err(&e)))?;
        let snapshot: String = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| self.err(format!("cannot export a snapshot: {}", db_err(&e))))?
            .get(0);
        // Never wait forever behind another session's lock: the counting
        // transaction gives up after the lock wait, and so does pg_dump.
        let lock_wait = self.opts.lock_wait;
        client
            .batch_execute(&format!("SET LOCAL lock_timeout = '{lock_wait}s'"))
            .await
            .map_err(|e| self.err(db_err(&e)))?;
        let tables = list_tables(&client, &self.opts)
            .await
            .map_err(|e| self.err(db_err(&e)))?;
        // Take every table's ACCESS SHARE lock now, before pg_dump starts: a
        // table held ACCESS EXCLUSIVE fails the run here, named, instead of
        // stalling it.
        lock_tables(&client, &tables, lock_wait)
            .await
            .map_err(|m| self.err(m))?;
        let db_facts = restore::database_facts(&client, &self.conn.dbname, server.major)
            .await
            .map_err(|m| self.err(m))?;
        // pg_dump leaves large objects out when schemas or tables are
        // selected; otherwise it dumps them all. pg_largeobject_metadata is
        // a catalog: this count is exact at the snapshot.
        let large_objects = if self.opts.schemas.is_empty() && self.opts.tables.is_empty() {
            let n: i64 = client
                .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
                .await
                .map_err(|e| self.err(format!("counting large objects: {}", db_err(&e))))?
                .get(0);
            Some(n as u64)
        } else {
            None
        };
        let mut attachments = Vec::new();
        let mut globals_details = None;
        if self.opts.globals {
            let (a, warning) = self.dump_globals(server, secrets.path()).await?;
            attachments.push(a);
            globals_details = Some(GlobalsDetails {
                role_passwords: warning.is_none(),
                warning,
            });
        }

        let mut cmd = pg_dump.command();
        cmd.args(["--format=custom", "--compress=0", "--no-password"])
            .arg(format!("--snapshot={snapshot}"))
            .arg(format!("--lock-wait-timeout={}", lock_wait * 1000))
            .args(self.opts.filter_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.conn.configure_child(&mut cmd, secrets.path())?;
        let mut dump_child = cmd
            .spawn()
            .map_err(|e| self.err(format!("cannot run {}: {e}", pg_dump.argv.join(" "))))?;
        let dump_err = drain_stderr(&mut dump_child);
        let stdout = dump_child.stdout.take().expect("piped stdout");
        let (repacked, archive_stats) = archive::Repacker::new(stdout);

        let mut toc = pg_restore.command();
        toc.arg("--list")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut toc_child = toc
            .spawn()
            .map_err(|e| self.err(format!("cannot run {}: {e}", pg_restore.argv.join(" "))))?;
        let toc_err = drain_stderr(&mut toc_child);
        let toc_in = toc_child.stdin.take();
        let mut toc_out = toc_child.stdout.take().expect("piped stdout");
        let toc_listing = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = toc_out.read_to_string(&mut s);
            s
        });
        let toc_started = Instant::now();

        tracing::info!(
            source = %self.location(),
            server = %server,
            pg_dump = %pg_dump.version,
            tables = tables.len(),
            snapshot = %snapshot,
            "pg_dump started on an exported snapshot"
        );

        let location = self.location();
        let min_tables = self.opts.min_tables;
        let filters = self.opts.filter_args();
        let opts = self.opts.clone();
        let dump_child = Arc::new(Mutex::new(Some(dump_child)));
        let killer = KillOnDrop(dump_child.clone());
        let dump_end = watch_pg_dump(dump_child, dump_err, lock_wait);
        let reader_end = dump_end.clone();
        let outcome = async move {
            let _secrets = secrets;
            let _killer = killer;
            let fail = |m: String| Error::source_err(&location, m);
            // Exact counts inside the exporting transaction, while pg_dump runs.
            let counts = count_rows(&client, &tables).await.map_err(|(table, e)| {
                fail(match lock_timed_out(&e) {
                    true => locked_message(&table, lock_wait),
                    false => format!("counting rows of {table}: {}", db_err(&e)),
                })
            });
            let ended = blocking(move || Ok(dump_end.wait(None)))
                .await
                .map_err(fail)?;
            // Only now may the snapshot go.
            let _ = client.batch_execute("COMMIT").await;
            ended
                .unwrap_or_else(|| Err("pg_dump was stopped".into()))
                .map_err(fail)?;
            let counts = counts?;

            let (toc_status, listing, toc_stderr) = blocking(move || {
                let status = toc_child.wait();
                Ok((
                    status,
                    toc_listing.join().unwrap_or_default(),
                    toc_err.join().unwrap_or_default(),
                ))
            })
            .await
            .map_err(fail)?;
            let toc_ok = matches!(&toc_status, Ok(s) if s.success());
            let toc_verdict = toc_verdict(
                if toc_ok {
                    Ok(&listing)
                } else {
                    Err(toc_stderr)
                },
                min_tables,
                toc_started,
            );

            let stats = archive_stats.lock().expect("archive stats lock").clone();
            let rows_verdict = archive_rows_verdict(&counts, large_objects, &stats, toc_started);
            let mut fp = Fingerprint::new(counts, format!("PostgreSQL {server}"));
            let mut excluded = BTreeMap::new();
            if !opts.exclude_schemas.is_empty() {
                excluded.insert("schemas".into(), opts.exclude_schemas.clone());
            }
            if !opts.exclude_tables.is_empty() {
                excluded.insert("tables".into(), opts.exclude_tables.clone());
            }
            fp.details = PostgresDetails {
                database: Some(db_facts),
                large_objects,
                // Sequences are not transactional: a read in the snapshot and
                // pg_dump's own read differ whenever nextval() runs meanwhile.
                // The archive's SEQUENCE SET values are what every restore of
                // it sets, so they are the fingerprint (when the archive was
                // read).
                sequences: (stats.passthrough.is_none() && stats.complete).then(|| {
                    stats
                        .sequences
                        .iter()
                        .map(|(s, n, v, c)| {
                            (
                                format!("{s}.{n}"),
                                serde_json::json!({"last_value": v, "is_called": c}),
                            )
                        })
                        .collect()
                }),
                server_version: Some(server.to_string()),
                pg_dump_version: Some(pg_dump.version.to_string()),
                pg_dump_major: Some(pg_dump.version.major),
                server_major: Some(server.major),
                filters,
                excluded,
                archive: Some(archive_details(&stats)),
                globals: globals_details,
            }
            .into_details();
            let mut verdicts = vec![toc_verdict];
            verdicts.extend(rows_verdict);
            Ok(DumpOutcome {
                fingerprint: fp,
                verdicts,
            })
        };
        Ok(Dump {
            reader: Box::new(TeeReader {
                inner: DumpReader {
                    inner: repacked,
                    end: reader_end,
                },
                tee: toc_in,
                teed: 0,
            }),
            outcome: Box::pin(outcome),
            guard: None,
            size_hint: None,
            attachments,
        })
    }

    async fn check_restore_target(&self, opts: &RestoreOptions) -> Result<()> {
        let admin = self
            .admin_conn()
            .connect()
            .await
            .map_err(|e| self.restore_err(e.to_string()))?;
        if self.database_exists(&admin, &self.conn.dbname).await? && !opts.force {
            return Err(self.restore_err(format!(
                "database {} already exists; pass --force to replace it (it is kept until the restored copy is proven)",
                self.conn.dbname
            )));
        }
        Ok(())
    }

    async fn restore(
        &self,
        reader: Box<dyn Read + Send>,
        manifest: &Manifest,
        opts: &RestoreOptions,
    ) -> Result<RestoreOutcome> {
        self.check_restore_target(opts).await?;
        let recorded = PostgresDetails::from_fingerprint(&manifest.fingerprint);
        let pg_restore = tools::pick("pg_restore", recorded.pg_dump_major(), &self.opts.tools)
            .map_err(|m| {
                self.restore_err(format!(
                    "the backup was written by pg_dump {}: {m}",
                    recorded.pg_dump_version.as_deref().unwrap_or("?")
                ))
            })?;
        // The whole archive lands here: a PrivateDir, so that the sweep at the
        // start of the next run removes it if this process is killed.
        let work = crate::tempdir::PrivateDir::new(&std::env::temp_dir(), "pg-restore")
            .map_err(|e| self.restore_err(format!("cannot create a temp directory: {e}")))?;
        let archive = work.path().join("archive.pgdump");
        let t = Instant::now();
        let bytes = {
            let archive = archive.clone();
            blocking(move || {
                let mut reader = reader;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&archive)
                    .and_then(|mut f| std::io::copy(&mut reader, &mut f))
                    .map_err(|e| format!("download failed or the backup is corrupt: {e}"))
            })
            .await
            .map_err(|m| self.restore_err(m))?
        };
        tracing::info!(
            bytes,
            ms = t.elapsed().as_millis() as u64,
            "archive downloaded and checked"
        );

        let admin = self
            .admin_conn()
            .connect()
            .await
            .map_err(|e| self.restore_err(e.to_string()))?;
        let server = self
            .server_version(&admin)
            .await
            .map_err(|e| self.restore_err(e.to_string()))?;
        let script =
            restore::DbScript::read(&pg_restore, &archive, work.path(), self.opts.no_owner)
                .await
                .map_err(|m| {
                    self.restore_err(format!("cannot read the archive's database entries: {m}"))
                })?;
        let mut report = serde_json::Map::new();
        let cleaned = restore::clean_leftovers(&admin)
            .await
            .map_err(|m| self.restore_err(m))?;
        if !cleaned.is_empty() {
            report.insert("leftovers_cleaned".into(), cleaned.into());
        }
        if let Some(g) = &self.globals {
            let applied = globals::apply(&admin, g, true)
                .await
                .map_err(|m| self.restore_err(format!("cannot apply the backup's globals: {m}")))?;
            report.insert(
                "globals".into(),
                serde_json::to_value(&applied).expect("serializes"),
            );
        }
        self.check_roles(&admin, &pg_restore, &archive, &script, manifest)
            .await?;

        let tag = format!("{:08x}", rand::random::<u32>());
        let staging = restore::side_name(&self.conn.dbname, "restore", &tag);
        // Held on `admin` until this function returns (or the process dies):
        // a later run can tell this staging database from a leftover.
        restore::hold(&admin, &staging)
            .await
            .map_err(|m| self.restore_err(m))?;
        restore::create_database(&admin, &script, &staging)
            .await
            .map_err(|m| self.restore_err(m))?;
        let drop_staging = || async {
            let _ = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&staging)
                ))
                .await;
        };
        let partial = self.opts.partial;
        let staged = async {
            let loaded = restore::load(
                &self.conn.with_dbname(&staging),
                &pg_restore,
                &archive,
                &self.opts,
                work.path(),
            )
            .await?;
            let mut errors = loaded.errors;
            // Prove it before it takes the name.
            let client = self
                .conn
                .with_dbname(&staging)
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let names: Vec<(String, String)> = manifest
                .fingerprint
                .tables
                .iter()
                .filter_map(|t| {
                    t.name
                        .split_once('.')
                        .map(|(s, n)| (s.to_string(), n.to_string()))
                })
                .collect();
            let mut unreadable = BTreeMap::new();
            let counts = if partial {
                // Count what is there; a table that did not load at all is
                // one more difference, not the end.
                let mut counts = Vec::new();
                for t in &names {
                    match count_rows(&client, std::slice::from_ref(t)).await {
                        Ok(mut c) => counts.append(&mut c),
                        Err((name, e)) => {
                            unreadable.insert(format!("table {name} is missing"), db_err(&e));
                        }
                    }
                }
                counts
            } else {
                count_rows(&client, &names).await.map_err(|(t, e)| {
                    format!("cannot count the restored rows: {t}: {}", db_err(&e))
                })?
            };
            let mut actual = Fingerprint::new(counts, manifest.fingerprint.server_version.clone());
            let mut diff = manifest.fingerprint.diff(&actual);
            diff.extend(restore::objects_diff(&client, &manifest.fingerprint).await?);
            if !diff.is_empty() && !partial {
                return Err(format!(
                    "restored data differs from the backup's fingerprint: {}",
                    diff.join("; ")
                ));
            }
            let mut differing: Vec<String> = diff
                .into_iter()
                .map(|d| match unreadable.get(&d) {
                    Some(why) => format!("{d}: {why}"),
                    None => d,
                })
                .collect();
            // A restored database has no planner statistics: ANALYZE it
            // before it takes the name, or its first queries plan blind.
            if self.opts.analyze {
                let t = Instant::now();
                client.batch_execute("ANALYZE").await.map_err(|e| {
                    format!("ANALYZE of the restored database failed: {}", db_err(&e))
                })?;
                let ms = t.elapsed().as_millis() as u64;
                tracing::info!(database = %staging, ms, "restored database analyzed");
                report.insert("analyzed".into(), true.into());
                report.insert("analyze_ms".into(), ms.into());
            } else {
                report.insert("analyzed".into(), false.into());
            }
            drop(client);
            // The database's own properties go on last: a setting such as
            // default_transaction_read_only must not meet the load.
            let after = restore::apply_after(
                &self.conn.with_dbname(&staging),
                &script,
                self.opts.no_owner,
                partial,
            )
            .await?;
            errors.extend(after.errors);
            if !after.skipped.is_empty() {
                report.insert("settings_skipped".into(), after.skipped.into());
            }
            let facts = restore::database_facts(&admin, &staging, server.major).await?;
            if let Some(expected) = &recorded.database {
                let diff = restore::database_diff(expected, &facts, self.opts.no_owner);
                if !diff.is_empty() && !partial {
                    return Err(format!(
                        "the restored database differs from the backup's: {}",
                        diff.join("; ")
                    ));
                }
                differing.extend(diff);
            }
            actual.details.insert("database".into(), facts);
            if partial {
                if !differing.is_empty() {
                    tracing::warn!(differences = %differing.join("; "), "--partial: the restored database differs from the backup");
                }
                report.insert("partial".into(), true.into());
                report.insert("errors".into(), errors.into());
                report.insert("tables_differing".into(), differing.into());
            }
            Ok::<_, String>(actual)
        }
        .await;
        let mut actual = match staged {
            Ok(a) => a,
            Err(m) => {
                drop_staging().await;
                return Err(self.restore_err(m));
            }
        };
        if let Some(db) = actual.details.get_mut("database") {
            db["name"] = self.conn.dbname.clone().into();
        }
        if !report.is_empty() {
            actual.details.insert("restore".into(), report.into());
        }

        let aside = restore::side_name(&self.conn.dbname, "old", &tag);
        let existed = match self.swap(&admin, &staging, &aside, opts.force).await {
            Ok(e) => e,
            Err(m) => {
                drop_staging().await;
                return Err(self.restore_err(m));
            }
        };
        if existed
            && let Err(e) = admin
                .batch_execute(&format!(
                    "DROP DATABASE {} WITH (FORCE)",
                    quote_ident(&aside)
                ))
                .await
        {
            tracing::warn!(database = %aside, error = %db_err(&e), "could not drop the replaced database; drop it by hand");
        }
        Ok(RestoreOutcome {
            target: self.location(),
            bytes,
            fingerprint: actual,
            replaced: existed,
        })
    }
}

impl PostgresSource {
    /// Refuse, before anything is created, a restore that needs roles this
    /// server lacks, naming them and the ways out.
    async fn check_roles(
        &self,
        admin: &tokio_postgres::Client,
        pg_restore: &Tool,
        archive: &std::path::Path,
        script: &restore::DbScript,
        manifest: &Manifest,
    ) -> Result<()> {
        let needed = restore::roles_needed(pg_restore, archive, self.opts.no_owner, script)
            .await
            .map_err(|m| {
                self.restore_err(format!("cannot list the roles the backup needs: {m}"))
            })?;
        let existing = globals::existing_roles(admin)
            .await
            .map_err(|m| self.restore_err(m))?;
        let missing: Vec<&str> = needed
            .iter()
            .filter(|r| !existing.contains(*r))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let stored = manifest
            .attachments
            .iter()
            .any(|a| a.name == crate::layout::GLOBALS_ATTACHMENT);
        let globals = match (stored, self.globals.is_some()) {
            (true, false) => {
                "pass --globals to create them from the roles stored with the backup, "
            }
            (true, true) => "the backup's stored roles did not create them (see the log), so ",
            (false, _) => "the backup holds no roles (back up with --globals to store them), so ",
        };
        Err(self.restore_err(format!(
            "the backup needs roles this server does not have: {}; {globals}create them first, or pass --no-owner to restore without ownership and privileges",
            missing.join(", ")
        )))
    }

    /// Give `staging` the target's name, the old database (if any) renamed to
    /// `aside`, in one transaction: a crash leaves either the old database or
    /// the new one under the target name, never neither. Whether a database
    /// was replaced.
    async fn swap(
        &self,
        admin: &tokio_postgres::Client,
        staging: &str,
        aside: &str,
        force: bool,
    ) -> std::result::Result<bool, String> {
        let target = &self.conn.dbname;
        let mut last = String::new();
        // A client connecting between the terminations and the rename makes
        // it fail ("being accessed by other users"): try again.
        for attempt in 0..3 {
            let existed = self
                .database_exists(admin, target)
                .await
                .map_err(|e| e.to_string())?;
            if existed && !force {
                // It appeared while the restore ran: without --force it is
                // never replaced.
                return Err(format!(
                    "database {target} was created while the restore ran; it was left alone (pass --force to replace it)"
                ));
            }
            let mut sql = String::from("BEGIN;\n");
            if existed {
                sql.push_str(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid();\n\
                     ALTER DATABASE {} RENAME TO {};\n",
                    sql::quote_literal(target),
                    quote_ident(target),
                    quote_ident(aside)
                ));
            }
            sql.push_str(&format!(
                "ALTER DATABASE {} RENAME TO {};\nCOMMIT;",
                quote_ident(staging),
                quote_ident(target)
            ));
            match admin.batch_execute(&sql).await {
                Ok(()) => return Ok(existed),
                Err(e) => {
                    let _ = admin.batch_execute("ROLLBACK").await;
                    last = db_err(&e);
                    tracing::warn!(attempt, error = %last, "renaming the restored database into place failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        Err(format!(
            "cannot rename the restored database into place: {last}"
        ))
    }
}

/// How `pg_dump` ended, published by [`watch_pg_dump`]: `Ok(())`, or its
/// failure in words.
#[derive(Debug, Default)]
struct DumpEnd {
    result: Mutex<Option<std::result::Result<(), String>>>,
    cv: std::sync::Condvar,
}

impl DumpEnd {
    /// Block until pg_dump has ended (or `timeout` passed: `None`).
    fn wait(&self, timeout: Option<Duration>) -> Option<std::result::Result<(), String>> {
        let g = self.result.lock().unwrap_or_else(|e| e.into_inner());
        let g = match timeout {
            Some(t) => {
                self.cv
                    .wait_timeout_while(g, t, |r| r.is_none())
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => self
                .cv
                .wait_while(g, |r| r.is_none())
                .unwrap_or_else(|e| e.into_inner()),
        };
        g.clone()
    }
}

/// Watch `pg_dump` on a thread until it exits, and say how it ended. The
/// child stays in its mutex (polled, not waited on) so that [`KillOnDrop`]
/// can still kill it.
fn watch_pg_dump(
    child: Arc<Mutex<Option<Child>>>,
    stderr: std::thread::JoinHandle<String>,
    lock_wait: u64,
) -> Arc<DumpEnd> {
    let end = Arc::new(DumpEnd::default());
    let published = end.clone();
    std::thread::spawn(move || {
        let status = loop {
            {
                let mut g = child.lock().unwrap_or_else(|e| e.into_inner());
                match g.as_mut().map(|c| c.try_wait()) {
                    None => break None,
                    Some(Ok(Some(s))) => break Some(Ok(s)),
                    Some(Err(e)) => break Some(Err(e)),
                    Some(Ok(None)) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = stderr.join().unwrap_or_default();
        let result = match status {
            None => Err("pg_dump was stopped".to_string()),
            Some(Err(e)) => Err(format!("pg_dump: {e}")),
            Some(Ok(s)) if s.success() => Ok(()),
            Some(Ok(s)) => Err(match pg_dump_lock_failure(&stderr) {
                Some(table) => locked_message(&table, lock_wait),
                None => {
                    let how = match s.code() {
                        Some(c) => format!("exited with status {c}"),
                        None => "was killed".to_string(),
                    };
                    format!("pg_dump {how}: {stderr}")
                }
            }),
        };
        *published.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        published.cv.notify_all();
    });
    end
}

/// The archive stream. When it breaks off because `pg_dump` failed, the
/// error says why pg_dump failed (a lock wait, a permission), not only that
/// the archive was cut short.
struct DumpReader<R> {
    inner: R,
    end: Arc<DumpEnd>,
}

impl<R: Read> Read for DumpReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(out).map_err(|e| {
            // pg_dump's output has ended: it is exiting, if not gone.
            match self.end.wait(Some(Duration::from_secs(30))) {
                Some(Err(why)) => std::io::Error::other(why),
                _ => e,
            }
        })
    }
}

/// Kills `pg_dump` if the run is cancelled before it finished.
struct KillOnDrop(Arc<Mutex<Option<Child>>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.lock()
            && let Some(mut c) = g.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_rows_must_match_the_snapshot_counts() {
        let counts = vec![
            TableCount {
                name: "public.a".into(),
                rows: 10,
            },
            TableCount {
                name: "public.b".into(),
                rows: 0,
            },
            TableCount {
                name: "public.not_in_archive".into(),
                rows: 5,
            },
        ];
        let mut stats = archive::ArchiveStats {
            complete: true,
            tables: vec![
                ("public".into(), "a".into(), 10),
                ("public".into(), "b".into(), 0),
            ],
            ..Default::default()
        };
        let v = archive_rows_verdict(&counts, None, &stats, Instant::now()).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert!(v.detail.contains("2 tables"), "{}", v.detail);

        stats.tables[0].2 = 9;
        let v = archive_rows_verdict(&counts, None, &stats, Instant::now()).unwrap();
        assert!(!v.passed);
        assert_eq!(v.verifier, "pg-rows");
        assert!(
            v.detail
                .contains("public.a: 9 in the archive, 10 in the snapshot"),
            "{}",
            v.detail
        );

        // Large objects are counted too.
        stats.tables[0].2 = 10;
        stats.large_objects = 2;
        let v = archive_rows_verdict(&counts, Some(2), &stats, Instant::now()).unwrap();
        assert!(
            v.passed && v.detail.contains("its 2 large objects"),
            "{}",
            v.detail
        );
        let v = archive_rows_verdict(&counts, Some(3), &stats, Instant::now()).unwrap();
        assert!(
            !v.passed
                && v.detail
                    .contains("large objects: 2 in the archive, 3 in the snapshot"),
            "{}",
            v.detail
        );

        // Nothing to say about an archive that was not read, or not to the end.
        stats.passthrough = Some("archive version 1.99".into());
        assert!(archive_rows_verdict(&counts, None, &stats, Instant::now()).is_none());
        stats.passthrough = None;
        stats.complete = false;
        assert!(archive_rows_verdict(&counts, None, &stats, Instant::now()).is_none());
    }

    #[test]
    fn toc_listing_counts_tables_and_data() {
        let listing = "; Archive created at\n;\n215; 1259 16390 TABLE public items postgres\n\
                       216; 1259 16391 TABLE audit log postgres\n\
                       3300; 0 16390 TABLE DATA public items postgres\n\
                       3301; 1259 16392 INDEX public items_name postgres\n";
        assert_eq!(toc_counts(listing), (2, 1, 4));
    }

    #[test]
    fn lock_waits_parse_in_range_and_never_overflow() {
        assert_eq!(parse_lock_wait("30s"), Ok(30));
        assert_eq!(parse_lock_wait("5m"), Ok(300));
        assert_eq!(parse_lock_wait("90"), Ok(90));
        assert_eq!(parse_lock_wait("24h"), Ok(86_400));
        for bad in [
            "0",
            "0s",
            "25h",
            "18446744073709551615m",
            "99999999999999999999999",
            "2x",
            "",
            "-3s",
            "1.5m",
        ] {
            assert!(parse_lock_wait(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_lock_wait("100000h").unwrap_err().contains("too long"));
        assert_eq!(fmt_secs(120), "2m");
        assert_eq!(fmt_secs(90), "1m30s");
        assert_eq!(fmt_secs(2), "2s");
    }

    #[test]
    fn pg_dump_lock_timeouts_name_the_table() {
        let err = "pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout / \
                   pg_dump: detail: Query was: LOCK TABLE public.items IN ACCESS SHARE MODE";
        assert_eq!(pg_dump_lock_failure(err).as_deref(), Some("public.items"));
        assert_eq!(
            pg_dump_lock_failure("pg_dump: error: connection failed"),
            None
        );
    }

    #[test]
    fn table_filters_follow_pg_dump_patterns() {
        let mut o = PostgresOptions::default();
        assert!(table_selected("public", "items", &o));
        o.exclude_tables = vec!["public.big_*".into()];
        assert!(!table_selected("public", "big_log", &o));
        assert!(table_selected("audit", "big_log", &o));
        o.schemas = vec!["audit".into()];
        assert!(!table_selected("public", "items", &o));
        o.exclude_schemas = vec!["audit".into()];
        assert!(!table_selected("audit", "x", &o));
    }
}
