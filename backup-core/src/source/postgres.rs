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
//!
//! This file holds [`PostgresSource`] and its [`Source`] impl, which
//! delegates: `options.rs` (what to dump, the lock wait, table filters),
//! `dump.rs` with `tables.rs` and `child.rs` (the backup side), `swap.rs`
//! with `restore.rs` and `staging.rs` (the restore side), `details.rs` (the
//! fingerprint's typed details), `verify.rs` and `drill.rs` (the engine's
//! verifiers).

pub mod archive;
mod child;
pub mod cluster;
mod conn;
mod details;
pub mod drill;
mod dump;
pub(crate) mod globals;
mod manifest_check;
mod options;
pub mod physical;
pub(crate) mod restore;
mod server_zstd;
pub(crate) mod sql;
mod staging;
mod swap;
mod tables;
pub mod tablespaces;
pub mod tls;
pub mod tools;
pub(crate) mod verify;
pub mod walfile;

use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;

pub use conn::PgConn;
pub use details::{GlobalsDetails, PostgresDetails};
pub use drill::{DrillTarget, PgDrill, SmokeCheck, cluster_available, pg_drill};
pub use globals::GlobalsReport;
pub use options::{
    BackupMode, CompressOn, DEFAULT_LOCK_WAIT_SECS, MAX_LOCK_WAIT_SECS, PostgresOptions,
    parse_lock_wait,
};
pub use tools::{PgVersion, Tool, ToolOptions};
pub use verify::{PgToc, toc_counts};

use super::{Dump, DumpOptions, RestoreOptions, RestoreOutcome, Source};
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// One PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresSource {
    conn: PgConn,
    opts: PostgresOptions,
    /// A backup's `pg_dumpall --globals-only`, to apply before a restore.
    globals: Option<Arc<Vec<u8>>>,
}

/// A database error as `message (SQLSTATE)`.
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
        staging::find_leftovers(&admin)
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
    keys: Option<&crate::crypt::Identities>,
) -> Result<Option<Vec<u8>>> {
    use crate::sink::SinkExt;
    let Some(info) = manifest
        .attachments
        .iter()
        .find(|a| a.name == crate::layout::GLOBALS_ATTACHMENT)
    else {
        return Ok(None);
    };
    let stored = sink.get_bytes(&info.key).await?;
    let raw = crate::codec::decode_attachment(&stored, info, keys)
        .map_err(|m| Error::restore_err(manifest.source.location.clone(), m))?;
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
        self.dump_archive(opts).await
    }
}

#[async_trait]
impl crate::source::RestoreTarget for PostgresSource {
    fn target_kind(&self) -> &'static str {
        "postgres"
    }

    fn target_location(&self) -> String {
        Source::location(self)
    }

    fn target_lock_key(&self) -> String {
        Source::lock_key(self)
    }

    async fn check_target(&self, opts: &RestoreOptions) -> Result<()> {
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
        self.restore_archive(reader, manifest, opts).await
    }
}
/// The manual restore of a PostgreSQL backup: the attachments (globals
/// first), then `pg_restore --create` of the archive, then the row check.
pub(crate) fn manual_restore(manifest: &Manifest, steps: &mut crate::manifest::ManualSteps) {
    for a in &manifest.attachments {
        let f = a.key.rsplit('/').next().unwrap_or("attachment.zst");
        let raw = f.trim_end_matches(".zst");
        let open = match &a.encryption {
            None => format!("zstd -d {f} -o {raw}"),
            Some(_) => format!("age -d -i KEYFILE {f} | zstd -d -o {raw}"),
        };
        steps.push(format_args!(
            "Fetch and decompress the {} ({}): {}; {open}",
            a.name,
            a.format.as_deref().unwrap_or("zstd"),
            steps.fetch(&a.key, f),
        ));
        if a.name == crate::layout::GLOBALS_ATTACHMENT {
            steps.push(format_args!(
                "Create the roles first, as a superuser: psql -d postgres -f {raw} (errors for roles that already exist are expected)"
            ));
        }
    }
    let details = PostgresDetails::from_fingerprint(&manifest.fingerprint);
    let pg_dump = details.pg_dump_version.as_deref().unwrap_or("?");
    let raw = steps.raw_file().to_string();
    // A database setting `default_transaction_read_only = on` would apply
    // to pg_restore's own sessions as soon as the database exists: a
    // session option outranks it.
    steps.push(format_args!(
        "Restore the database with its properties (owner, encoding, locale, settings), using a pg_restore at least as new as the pg_dump that wrote it ({pg_dump}), with its sessions kept writable whatever the database's settings say: PGOPTIONS='-c default_transaction_read_only=off' pg_restore --create --dbname=postgres --jobs=4 {raw}"
    ));
    steps.push(
        "Compare the row counts of fingerprint.tables with SELECT count(*) FROM ONLY <table>, then run ANALYZE",
    );
}
