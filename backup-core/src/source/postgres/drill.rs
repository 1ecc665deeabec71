//! The restore drill (seeds 001 and 003): restore a stored PostgreSQL backup
//! into a scratch database, compare every table's row count with the
//! fingerprint, run smoke checks, time it, and drop the scratch database
//! whatever happens. The evidence is uploaded to
//! `<source>/drills/<YYYY>-Q<n>/<drill-id>.json` ([`crate::layout::drill_key`])
//! as a [`CheckRecord`].

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;

use super::cluster::ScratchCluster;
use super::{
    PgConn, PostgresDetails, PostgresOptions, fetch_globals, globals, restore, sql, staging, tools,
};
use crate::error::Result;
use crate::manifest::{Fingerprint, Verdict};
use crate::record::{CheckRecord, RecordKind};
use crate::sink::PutOptions;
use crate::verify::{Verifier, VerifyInput};

/// Where a drill restores to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrillTarget {
    /// A temporary database on this server (any database URL of it; the
    /// drill connects to its `postgres` database to create and drop).
    Server(String),
    /// A throwaway cluster started from local server binaries.
    Cluster,
    /// A throwaway cluster when local server binaries for the backup's
    /// major version are found, else a temporary database on `fallback`
    /// (the source's own server, when a backup asks for a drill), else the
    /// drill cannot run.
    Auto {
        /// A server to drill on when no local binaries fit.
        fallback: Option<String>,
    },
}

/// Why a drill did not pass.
#[derive(Debug)]
enum DrillError {
    /// The drill target could not be set up (no server binaries, a server
    /// that cannot be reached, a locale the target lacks, no room): nothing
    /// is known about the backup, so this is no verdict on it.
    Setup(String),
    /// The restore into the target failed: a verdict on the backup.
    Restore(String),
}

/// Whether a failure message is the drill target's (no room, no memory, a
/// lost or shut-down server) rather than the backup's.
fn environmental(message: &str) -> bool {
    const SIGNS: [&str; 9] = [
        "No space left on device",
        "could not extend file",
        "(53100)",
        "(53200)",
        "out of memory",
        "server closed the connection",
        "terminating connection due to administrator command",
        "connection refused",
        "the database system is shutting down",
    ];
    SIGNS.iter().any(|s| message.contains(s))
}

impl DrillError {
    /// A restore failure, unless the message shows the target failed.
    fn classify(message: String) -> Self {
        if environmental(&message) {
            DrillError::Setup(message)
        } else {
            DrillError::Restore(message)
        }
    }
}

impl From<String> for DrillError {
    fn from(s: String) -> Self {
        DrillError::Restore(s)
    }
}

impl From<&str> for DrillError {
    fn from(s: &str) -> Self {
        DrillError::Restore(s.to_string())
    }
}

/// Whether local server binaries could start a throwaway cluster of
/// `major` (or newer): what `DrillTarget::Auto` prefers.
pub fn cluster_available(major: u32, opts: &PostgresOptions) -> bool {
    tools::server_bin_dir(major.max(1), &opts.tools).is_ok()
}

/// A smoke check: a query or a table that must yield at least `min_rows`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SmokeCheck {
    /// A query; its rows are counted.
    pub sql: Option<String>,
    /// A table (`schema.table` or `table`); its rows are counted.
    pub table: Option<String>,
    /// The fewest rows that pass.
    pub min_rows: u64,
}

/// The `pg-drill` verifier.
#[derive(Debug, Clone)]
pub struct PgDrill {
    target: DrillTarget,
    opts: PostgresOptions,
    smoke: Vec<SmokeCheck>,
}

impl PgDrill {
    /// A drill into `target` with the tools and jobs of `opts`.
    pub fn new(target: DrillTarget, opts: PostgresOptions, smoke: Vec<SmokeCheck>) -> Self {
        Self {
            target,
            opts,
            smoke,
        }
    }
}

/// A drill's own evidence, stored beside the [`CheckRecord`]'s `backup_id`,
/// `started_at` and `passed`.
#[derive(serde::Serialize)]
struct Evidence<'a> {
    drill_id: String,
    source: &'a str,
    target: String,
    restore_ms: u64,
    total_ms: u64,
    tables_checked: usize,
    rows_checked: u64,
    mismatches: Vec<String>,
    smoke: Vec<serde_json::Value>,
    /// Roles created from the backup's globals (throwaway cluster only).
    roles_created: Vec<String>,
    /// Roles the archive needs that its globals did not hold, created
    /// `NOLOGIN` in the throwaway cluster.
    placeholder_roles: Vec<String>,
    error: Option<String>,
}

fn quote_table(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// A fingerprint's `schema.table`: the schema ends at the first dot, as the
/// restore reads it (a table name may hold dots).
fn fingerprint_table(name: &str) -> String {
    match name.split_once('.') {
        Some((s, t)) => format!("{}.{}", sql::quote_ident(s), sql::quote_ident(t)),
        None => sql::quote_ident(name),
    }
}

impl PgDrill {
    async fn run_checks(
        &self,
        conn: &PgConn,
        expected: &Fingerprint,
        ev: &mut Evidence<'_>,
    ) -> std::result::Result<(), String> {
        let client = conn.connect().await.map_err(|e| e.to_string())?;
        ev.mismatches
            .extend(restore::objects_diff(&client, expected).await?);
        for t in &expected.tables {
            let n: i64 = client
                .query_one(
                    // ONLY, as the fingerprint counted: a parent's own rows.
                    &format!("SELECT count(*) FROM ONLY {}", fingerprint_table(&t.name)),
                    &[],
                )
                .await
                .map_err(|e| format!("counting {}: {e}", t.name))?
                .get(0);
            ev.tables_checked += 1;
            ev.rows_checked += n as u64;
            if n as u64 != t.rows {
                ev.mismatches.push(format!(
                    "table {} has {n} rows, expected {}",
                    t.name, t.rows
                ));
            }
        }
        for check in &self.smoke {
            let (what, sql) = match (&check.sql, &check.table) {
                (Some(sql), _) => (
                    sql.clone(),
                    format!("SELECT count(*) FROM ({sql}) AS smoke"),
                ),
                (None, Some(t)) => (
                    t.clone(),
                    format!("SELECT count(*) FROM {}", quote_table(t)),
                ),
                (None, None) => return Err("a smoke check needs sql or table".into()),
            };
            let result = client.query_one(&sql, &[]).await;
            let (rows, ok, err) = match result {
                Ok(r) => {
                    let n: i64 = r.get(0);
                    (n as u64, n as u64 >= check.min_rows, None)
                }
                Err(e) => (0, false, Some(e.to_string())),
            };
            if !ok {
                ev.mismatches.push(match &err {
                    Some(e) => format!("smoke check {what:?} failed: {e}"),
                    None => format!(
                        "smoke check {what:?} found {rows} rows, fewer than {}",
                        check.min_rows
                    ),
                });
            }
            ev.smoke.push(serde_json::json!({"check": what, "rows": rows, "min_rows": check.min_rows, "passed": ok, "error": err}));
        }
        Ok(())
    }

    /// The roles the archive needs. A throwaway cluster has none: the
    /// backup's stored globals are applied there, and any role still
    /// missing is created as a `NOLOGIN` placeholder (the cluster is gone
    /// after the drill). On a real server the drill creates no roles: it
    /// fails, naming them.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_roles(
        &self,
        client: &tokio_postgres::Client,
        scratch: bool,
        input: &VerifyInput<'_>,
        pg_restore: &tools::Tool,
        archive: &std::path::Path,
        script: &restore::DbScript,
        ev: &mut Evidence<'_>,
    ) -> std::result::Result<(), String> {
        if scratch
            && let Some(g) = fetch_globals(input.sink, input.manifest, input.keys)
                .await
                .map_err(|e| e.display_chain())?
        {
            let applied = globals::apply(client, &g, false).await?;
            ev.roles_created.extend(applied.roles_created);
        }
        let needed = restore::roles_needed(pg_restore, archive, self.opts.no_owner, script).await?;
        let existing = globals::existing_roles(client).await?;
        let missing: Vec<&String> = needed.iter().filter(|r| !existing.contains(*r)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if !scratch {
            return Err(format!(
                "the backup needs roles this server does not have: {}; the drill creates no roles on a real server: create them, drill with --drill-cluster, or pass --no-owner",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for r in missing {
            client
                .batch_execute(&format!("CREATE ROLE {} NOLOGIN", sql::quote_ident(r)))
                .await
                .map_err(|e| format!("cannot create placeholder role {r}: {e}"))?;
            ev.placeholder_roles.push(r.clone());
        }
        Ok(())
    }

    async fn drill(
        &self,
        input: &VerifyInput<'_>,
        ev: &mut Evidence<'_>,
    ) -> std::result::Result<(), DrillError> {
        let setup = DrillError::Setup;
        let archive = input
            .local_copy
            .ok_or_else(|| setup("the drill needs the decompressed archive".into()))?;
        let m = input.manifest;
        let recorded = PostgresDetails::from_fingerprint(&m.fingerprint);
        let pg_restore =
            tools::pick("pg_restore", recorded.pg_dump_major(), &self.opts.tools).map_err(setup)?;
        let major = recorded.server_major().max(1);
        let target = match &self.target {
            DrillTarget::Auto { fallback } => {
                match (cluster_available(major, &self.opts), fallback) {
                    (true, _) => DrillTarget::Cluster,
                    (false, Some(url)) => DrillTarget::Server(url.clone()),
                    (false, None) => {
                        return Err(setup(format!(
                            "no local PostgreSQL {major} (or newer) server binaries for a throwaway cluster, and no drill server; install postgresql-{major}, or set [drill] server"
                        )));
                    }
                }
            }
            other => other.clone(),
        };
        let (cluster, admin) = match &target {
            DrillTarget::Server(url) => {
                let (conn, _) = PgConn::parse(url).map_err(|e| setup(e.to_string()))?;
                (None, conn)
            }
            _ => {
                let bin = tools::server_bin_dir(major, &self.opts.tools).map_err(setup)?;
                // initdb and pg_ctl block: off the async workers.
                let c = tokio::task::spawn_blocking(move || ScratchCluster::start(&bin))
                    .await
                    .map_err(|e| setup(format!("worker failed: {e}")))?
                    .map_err(|e| setup(format!("cannot start a throwaway cluster: {e}")))?;
                let admin = c.conn("postgres");
                (Some(c), admin)
            }
        };
        crate::failpoint::pause("drill:cluster-started").await;
        let db = format!("lifeboat_drill_{:08x}", rand::random::<u32>());
        let conn = admin.with_dbname(&db);
        ev.target = conn.location();
        let secrets = crate::tempdir::PrivateDir::new(&std::env::temp_dir(), "pg-drill")
            .map_err(|e| setup(format!("cannot create a temp directory: {e}")))?;
        let client = match admin.with_dbname("postgres").connect().await {
            Ok(c) => c,
            Err(e) => {
                if let Some(c) = cluster {
                    let _ = tokio::task::spawn_blocking(move || drop(c)).await;
                }
                return Err(setup(format!("cannot connect to the drill target: {e}")));
            }
        };
        let result = async {
            let server: String = client
                .query_one("SHOW server_version_num", &[])
                .await
                .map_err(|e| setup(e.to_string()))?
                .get(0);
            let server_major = server.trim().parse::<u32>().unwrap_or(0) / 10_000;
            staging::clean_leftovers(&client).await.map_err(setup)?;
            // Held until `client` goes: a later run can tell this scratch
            // database from a killed drill's leftover.
            staging::hold(&client, &db).await.map_err(setup)?;
            let script =
                restore::DbScript::read(&pg_restore, archive, secrets.path(), self.opts.no_owner)
                    .await?;
            self.prepare_roles(
                &client,
                cluster.is_some(),
                input,
                &pg_restore,
                archive,
                &script,
                ev,
            )
            .await?;
            // The archive's own CREATE DATABASE: if the target cannot take
            // it (a locale or ICU it lacks), that says nothing about the
            // backup.
            restore::create_database(&client, &script, &db)
                .await
                .map_err(setup)?;
            // A throwaway cluster has none of the backup's tablespaces:
            // everything goes to its default one.
            let mut opts = self.opts.clone();
            opts.no_tablespaces |= cluster.is_some();
            opts.partial = false;
            let loaded = restore::load(&conn, &pg_restore, archive, &opts, secrets.path())
                .await
                .map_err(DrillError::classify)?;
            ev.restore_ms = loaded.took.as_millis() as u64;
            self.run_checks(&conn, &m.fingerprint, ev)
                .await
                .map_err(DrillError::classify)?;
            // The database as the backup had it: the archive's owner,
            // comment, ACL and settings must apply, and the properties match.
            restore::apply_after(&conn, &script, self.opts.no_owner, false).await?;
            let facts = restore::database_facts(&client, &db, server_major).await?;
            if let Some(expected) = &recorded.database {
                ev.mismatches
                    .extend(restore::database_diff(expected, &facts, self.opts.no_owner));
            }
            Ok(())
        }
        .await;
        // Whatever happened, the scratch database goes.
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .await;
        // Stopping a throwaway cluster blocks too.
        if let Some(c) = cluster {
            let _ = tokio::task::spawn_blocking(move || drop(c)).await;
        }
        result
    }
}

#[async_trait]
impl Verifier for PgDrill {
    fn name(&self) -> &str {
        "pg-drill"
    }

    fn needs_local_copy(&self) -> bool {
        true
    }

    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict> {
        let started = Instant::now();
        let now = Utc::now();
        let m = input.manifest;
        let mut ev = Evidence {
            drill_id: format!(
                "{}-{:04x}",
                now.format("%Y%m%dT%H%M%SZ"),
                rand::random::<u16>()
            ),
            source: &m.source.location,
            target: String::new(),
            restore_ms: 0,
            total_ms: 0,
            tables_checked: 0,
            rows_checked: 0,
            mismatches: Vec::new(),
            smoke: Vec::new(),
            roles_created: Vec::new(),
            placeholder_roles: Vec::new(),
            error: None,
        };
        let outcome = match self.drill(input, &mut ev).await {
            Ok(()) => Ok(()),
            Err(DrillError::Restore(e)) => Err(e),
            // No verdict, no evidence: the drill did not run.
            Err(DrillError::Setup(e)) => {
                return Err(crate::Error::Config {
                    origin: "restore drill".into(),
                    message: format!("the restore drill could not run: {e}"),
                });
            }
        };
        ev.total_ms = started.elapsed().as_millis() as u64;
        if let Err(e) = &outcome {
            ev.error = Some(e.clone());
        }
        let passed = outcome.is_ok() && ev.mismatches.is_empty();
        let key = crate::layout::drill_key(&m.source.name, now, &ev.drill_id);
        let record = CheckRecord {
            kind: RecordKind::Drill,
            backup_id: m.backup_id.clone(),
            at: now,
            passed,
            evidence: ev,
        };
        record
            .store(input.sink, &key, PutOptions::create_only())
            .await;
        let ev = record.evidence;
        let detail = match (&outcome, passed) {
            (Err(e), _) => format!("restore drill failed: {e}"),
            (Ok(()), false) => {
                format!("restore drill found problems: {}", ev.mismatches.join("; "))
            }
            (Ok(()), true) => format!(
                "restore drill OK: {} tables, {} rows match the fingerprint{}; restore {} ms, drill {} ms; evidence {key}",
                ev.tables_checked,
                ev.rows_checked,
                match ev.smoke.len() {
                    0 => String::new(),
                    n => format!(", {n} smoke checks passed"),
                },
                ev.restore_ms,
                ev.total_ms
            ),
        };
        if passed {
            tracing::info!(backup_id = %m.backup_id, restore_ms = ev.restore_ms, "restore drill OK");
        }
        Ok(Verdict::new(self.name(), passed, detail, started))
    }
}

/// A shareable drill verifier.
pub fn pg_drill(
    target: DrillTarget,
    opts: PostgresOptions,
    smoke: Vec<SmokeCheck>,
) -> Arc<dyn Verifier> {
    Arc::new(PgDrill::new(target, opts, smoke))
}
