//! What can be backed up.
//!
//! A [`Source`] takes a consistent snapshot of a database and hands the
//! pipeline a byte stream of it ([`Dump`]); it also knows how to put such a
//! stream back ([`Source::restore`]). Compression, hashing, upload and the
//! manifest are the pipeline's business, not the source's.

pub mod postgres;
pub mod sqlite;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::manifest::{Fingerprint, Manifest, ManualSteps, Verdict};
use crate::verify::{self, Verifier};

pub use postgres::{PostgresDetails, PostgresOptions, PostgresSource};
pub use sqlite::{SqliteDetails, SqliteSource};

/// The engines Lifeboat knows, as a manifest's `source.kind` names them
/// ([`Source::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// `sqlite`: [`SqliteSource`].
    Sqlite,
    /// `postgres`: [`PostgresSource`].
    Postgres,
    /// `postgres-physical`: [`postgres::physical::PhysicalSource`], a base
    /// backup of a whole cluster.
    PostgresPhysical,
}

/// What a backup's fingerprint records about its engine (its `details`),
/// typed per kind. Read with [`SourceDetails::of`]; the stored JSON is the
/// map each engine's type writes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceDetails {
    /// A SQLite backup's.
    Sqlite(SqliteDetails),
    /// A PostgreSQL backup's.
    Postgres(PostgresDetails),
    /// A physical PostgreSQL base backup's.
    PostgresPhysical(postgres::physical::PhysicalDetails),
    /// A kind this version does not know: the map as stored.
    Unknown(serde_json::Map<String, serde_json::Value>),
}

impl SourceDetails {
    /// The details of `manifest`'s backup, read as its kind says.
    pub fn of(manifest: &Manifest) -> Self {
        let fp = &manifest.fingerprint;
        match SourceKind::parse(&manifest.source.kind) {
            Some(SourceKind::Sqlite) => Self::Sqlite(SqliteDetails::from_fingerprint(fp)),
            Some(SourceKind::Postgres) => Self::Postgres(PostgresDetails::from_fingerprint(fp)),
            Some(SourceKind::PostgresPhysical) => {
                Self::PostgresPhysical(postgres::physical::PhysicalDetails::from_fingerprint(fp))
            }
            None => Self::Unknown(fp.details.clone()),
        }
    }
}

impl SourceKind {
    /// The kind a manifest's `source.kind` names; `None` for one this
    /// version does not know.
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "sqlite" => Some(Self::Sqlite),
            "postgres" => Some(Self::Postgres),
            postgres::physical::PHYSICAL_KIND => Some(Self::PostgresPhysical),
            _ => None,
        }
    }

    /// The name in the manifest: `sqlite`, `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::PostgresPhysical => postgres::physical::PHYSICAL_KIND,
        }
    }

    /// Add this engine's steps to a backup's manual restore (how to put the
    /// decompressed artifact back with the engine's own tools).
    pub fn manual_restore(self, manifest: &Manifest, steps: &mut ManualSteps) {
        match self {
            Self::Sqlite => sqlite::manual_restore(steps),
            Self::Postgres => postgres::manual_restore(manifest, steps),
            Self::PostgresPhysical => postgres::physical::manual_restore(steps),
        }
    }

    /// The verifiers that prove a stored backup of this kind again, later:
    /// the engine-free ones ([`verify::default_verifiers`]) plus the
    /// engine's structural check, which needs the data itself. (A kind this
    /// version does not know gets the engine-free ones alone.)
    pub fn stored_verifiers(
        self,
        min_size: u64,
        postgres: &PostgresOptions,
        temp_dir: Option<PathBuf>,
    ) -> Vec<Arc<dyn Verifier>> {
        let mut v = verify::default_verifiers(min_size);
        v.extend(match self {
            Self::Sqlite => sqlite::verify::stored_verifiers(),
            Self::Postgres => postgres::verify::stored_verifiers(postgres),
            Self::PostgresPhysical => {
                vec![Arc::new(
                    postgres::physical::PgBackupManifest::new(postgres).temp_dir(temp_dir),
                ) as Arc<dyn Verifier>]
            }
        });
        v
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-call options for [`Source::dump`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DumpOptions {
    /// Where temporary files may go (default: the system temp directory).
    pub temp_dir: Option<PathBuf>,
    /// The zstd level the backup is compressed at: a source that can have
    /// its server compress (a physical PostgreSQL backup) uses it and sets
    /// [`Dump::precompressed`].
    pub zstd_level: i32,
    /// The compression threads the backup may use.
    pub zstd_threads: u32,
}

/// What a source's snapshot learned once the stream has been read.
#[derive(Debug, Clone)]
pub struct DumpOutcome {
    /// Tables, row counts and versions at the snapshot.
    pub fingerprint: Fingerprint,
    /// Checks the source ran on the snapshot itself (SQLite's
    /// `integrity_check`); they go into the manifest with the verifiers'.
    pub verdicts: Vec<Verdict>,
    /// The artifact's size before compression, when the pipeline did not
    /// see it (a [`Dump::precompressed`] stream): the source counted it.
    pub raw_size: Option<u64>,
}

/// A snapshot being streamed.
pub struct Dump {
    /// The artifact's bytes. Read on a blocking thread.
    pub reader: Box<dyn Read + Send>,
    /// Resolves once the snapshot is fully read: the fingerprint and any
    /// snapshot checks, or the reason the dump is not good (a child process
    /// that failed, a snapshot that failed `integrity_check`). The pipeline
    /// polls it concurrently with the upload and never commits a backup whose
    /// outcome is an error.
    pub outcome: BoxFuture<'static, Result<DumpOutcome>>,
    /// Keeps temporary files alive until the dump is dropped.
    pub guard: Option<Box<dyn Send + Sync>>,
    /// The artifact's size, when known before streaming (for progress).
    pub size_hint: Option<u64>,
    /// Small extra objects to store beside the artifact, compressed
    /// (PostgreSQL globals): `(name, file name, bytes)`.
    pub attachments: Vec<Attachment>,
    /// The reader yields zstd frames already, at
    /// [`DumpOptions::zstd_level`] (the server compressed them): the pipeline stores them as they are (encrypted, given
    /// recipients), and the outcome gives the raw size.
    pub precompressed: bool,
}

/// A small object stored beside a backup's artifact.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// What it is (`globals`).
    pub name: String,
    /// File name in the backup's directory, before `.zst` (`globals.sql`).
    pub file_name: String,
    /// The bytes.
    pub data: bytes::Bytes,
}

impl fmt::Debug for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dump").finish_non_exhaustive()
    }
}

/// Per-call options for [`Source::restore`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Replace an existing database. The old one is kept aside until the new
    /// one is proven, then removed.
    pub force: bool,
}

impl RestoreOptions {
    /// Options with `force` set as given.
    pub fn force(force: bool) -> Self {
        Self { force }
    }
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct RestoreOutcome {
    /// Where the database now is.
    pub target: String,
    /// Bytes written.
    pub bytes: u64,
    /// The restored database's fingerprint, equal to the manifest's.
    pub fingerprint: Fingerprint,
    /// Whether an existing database was replaced.
    pub replaced: bool,
    /// What the target reports beyond the fingerprint (empty for SQLite).
    pub report: TargetReport,
}

/// What a restore target reports about a restore, beyond the fingerprint.
/// Serialized into the restore's JSON output beside the fingerprint; a
/// field without a value is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TargetReport {
    /// Staging databases of killed runs removed first (PostgreSQL).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftovers_cleaned: Vec<String>,
    /// What applying the backup's globals did (`restore --globals`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub globals: Option<postgres::GlobalsReport>,
    /// Whether the restored database was analyzed before it took its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analyzed: Option<bool>,
    /// How long `ANALYZE` took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analyze_ms: Option<u64>,
    /// Database settings the server refused (`ALTER DATABASE … SET` of an
    /// unknown parameter), with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings_skipped: Vec<String>,
    /// A `--partial` restore: what loaded was kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// With `partial`: the errors of the load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
    /// With `partial`: the tables (and database properties) that differ
    /// from the backup's fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables_differing: Option<Vec<String>>,
}

impl TargetReport {
    /// A partial restore that did not get everything back.
    pub fn incomplete(&self) -> bool {
        [&self.errors, &self.tables_differing]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
    }
}

/// Default zstd level: fast, and smaller than gzip -6 on database pages.
pub const DEFAULT_LEVEL: i32 = 3;

/// A database that can be backed up and restored.
#[async_trait]
pub trait Source: Send + Sync + fmt::Debug {
    /// `sqlite` or `postgres`: recorded in the manifest, and used to pick
    /// verifiers for stored backups.
    fn kind(&self) -> &'static str;

    /// Where the database is, without credentials. Safe to log.
    fn location(&self) -> String;

    /// The source name used in the bucket layout when none is configured.
    fn default_name(&self) -> String;

    /// What identifies the database itself, however it is spelled: runs on
    /// this host with the same key take turns (the lock file is named
    /// after it). Default: [`location`](Self::location).
    fn lock_key(&self) -> String {
        self.location()
    }

    /// File extension of the raw artifact (`sqlite`, `pgdump`).
    fn extension(&self) -> &'static str;

    /// What the raw artifact is, for people restoring by hand
    /// (`sqlite3 database file`).
    fn artifact_format(&self) -> &'static str {
        "raw bytes"
    }

    /// The zstd level a backup uses unless told otherwise.
    fn default_compression_level(&self) -> i32 {
        DEFAULT_LEVEL
    }

    /// Check, before any upload starts, that the database exists and can be
    /// read.
    ///
    /// # Errors
    /// [`Error::Source`] saying what is wrong.
    async fn preflight(&self) -> Result<()>;

    /// Take a consistent snapshot and start streaming it.
    async fn dump(&self, opts: &DumpOptions) -> Result<Dump>;
}

/// Where a restore writes: a database created, or replaced, from a stored
/// backup. Its own trait rather than a part of [`Source`]: what a restore
/// writes need not be anything a backup reads (a physical PostgreSQL
/// restore writes a data directory, `pgdata:///path`), and a source need
/// not be restorable in place.
#[async_trait]
pub trait RestoreTarget: Send + Sync + fmt::Debug {
    /// The kind of backup it takes (`sqlite`, `postgres`): a restore of a
    /// backup of another kind is refused.
    fn target_kind(&self) -> &'static str;

    /// Where it writes, without credentials. Safe to log.
    fn target_location(&self) -> String;

    /// What identifies it however it is spelled: a restore and a backup of
    /// the same database on this host take turns.
    fn target_lock_key(&self) -> String {
        self.target_location()
    }

    /// Check, before anything is downloaded, that a restore with `opts`
    /// may proceed (for example: the target does not exist, or `force`).
    ///
    /// # Errors
    /// [`Error::Restore`] saying why not.
    async fn check_target(&self, _opts: &RestoreOptions) -> Result<()> {
        Ok(())
    }

    /// Restore from `reader` (the decompressed artifact) into the database
    /// this target names.
    ///
    /// `reader` returns an error instead of end-of-file if the stored bytes
    /// do not match the manifest's SHA-256: an implementation must read to
    /// end-of-file before it makes anything visible.
    ///
    /// # Errors
    /// [`Error::Restore`], including when the target exists and
    /// [`RestoreOptions::force`] is not set.
    async fn restore(
        &self,
        reader: Box<dyn Read + Send>,
        manifest: &Manifest,
        opts: &RestoreOptions,
    ) -> Result<RestoreOutcome>;
}

/// The restore target a URL names: `sqlite:///path/restored.db` or
/// `postgres://user@host/newdb` (one database).
///
/// # Errors
/// [`Error::Usage`] for an unknown scheme, or a URL naming several
/// databases.
pub fn restore_target_from_url(
    url: &str,
    postgres: &PostgresOptions,
) -> Result<Arc<dyn RestoreTarget>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut all = PostgresSource::from_url(url, postgres)?;
        if all.len() != 1 {
            return Err(Error::usage("restore into one database at a time"));
        }
        return Ok(Arc::new(all.remove(0)));
    }
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(Error::usage(format!(
            "target {url:?} has no scheme (use sqlite:///path/restored.db, postgres://…/newdb or pgdata:///path/datadir)"
        )));
    };
    match scheme {
        "pgdata" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path == "/" {
                return Err(Error::usage(format!("target {url:?} names no directory")));
            }
            Ok(Arc::new(postgres::physical::PgDataTarget::new(path)))
        }
        "sqlite" | "sqlite3" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(Error::usage(format!("target {url:?} names no file")));
            }
            Ok(Arc::new(SqliteSource::new(path)))
        }
        other => Err(Error::usage(format!(
            "unknown target scheme {other:?} in {url:?} (use sqlite:///path/restored.db, postgres://…/newdb or pgdata:///path/datadir)"
        ))),
    }
}

/// Build one source per database a URL names:
/// `postgres://user@host:port/db1,db2` gives two, a SQLite URL one.
///
/// # Errors
/// [`Error::Usage`] for an unknown scheme or a malformed URL.
pub fn sources_from_url(url: &str, postgres: &PostgresOptions) -> Result<Vec<Arc<dyn Source>>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(PostgresSource::from_url(url, postgres)?
            .into_iter()
            .map(|s| Arc::new(s) as Arc<dyn Source>)
            .collect());
    }
    Ok(vec![source_from_url(url)?])
}

/// Build a source from a URL: `sqlite:///abs/path.db`, `sqlite://rel/path.db`,
/// `sqlite:path.db`, or `postgres://user@host:port/db` (with default
/// options; one database).
///
/// # Errors
/// [`Error::Usage`] for an unknown scheme, an empty path, or a PostgreSQL
/// URL naming several databases (use [`sources_from_url`]).
pub fn source_from_url(url: &str) -> Result<Arc<dyn Source>> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(Error::usage(format!(
            "source {url:?} has no scheme (use sqlite:///path/to/app.db)"
        )));
    };
    match scheme {
        "sqlite" | "sqlite3" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(Error::usage(format!("source {url:?} names no file")));
            }
            Ok(Arc::new(SqliteSource::new(path)))
        }
        "postgres" | "postgresql" => {
            let mut all = PostgresSource::from_url(url, &PostgresOptions::default())?;
            if all.len() != 1 {
                return Err(Error::usage(format!(
                    "{url:?} names several databases; use one at a time here"
                )));
            }
            Ok(Arc::new(all.remove(0)))
        }
        other => Err(Error::usage(format!(
            "unknown source scheme {other:?} in {url:?} (use sqlite:///path/to/app.db)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_accept_absolute_and_relative_paths() {
        assert_eq!(
            source_from_url("sqlite:///srv/app.db").unwrap().location(),
            "sqlite:///srv/app.db"
        );
        let rel = source_from_url("sqlite:data/app.db").unwrap().location();
        assert!(
            rel.starts_with("sqlite:///") && rel.ends_with("/data/app.db"),
            "{rel}"
        );
    }

    #[test]
    fn source_kinds_parse_what_sources_record_and_pick_their_verifiers() {
        let sqlite = SqliteSource::new("/srv/app.db");
        let pg = source_from_url("postgres://u@h/app").unwrap();
        for (source, kind) in [
            (&sqlite as &dyn Source, SourceKind::Sqlite),
            (&*pg, SourceKind::Postgres),
        ] {
            assert_eq!(SourceKind::parse(source.kind()), Some(kind));
            assert_eq!(kind.as_str(), source.kind());
        }
        let names = |kind: SourceKind| -> Vec<String> {
            kind.stored_verifiers(1, &PostgresOptions::default(), None)
                .iter()
                .map(|v| v.name().to_string())
                .collect()
        };
        assert_eq!(
            names(SourceKind::Sqlite),
            ["min-size", "checksum", "sqlite-integrity"]
        );
        assert_eq!(
            names(SourceKind::Postgres),
            ["min-size", "checksum", "pg-toc"]
        );
        // An unknown kind is not guessed at: VerifyJob then runs the
        // engine-free verifiers alone.
        assert_eq!(SourceKind::parse("mysql"), None);
        assert_eq!(SourceKind::parse("Postgres"), None);
    }

    #[test]
    fn restore_targets_are_their_own_trait_and_refuse_what_they_cannot_take() {
        let t = restore_target_from_url("sqlite:///tmp/r.db", &PostgresOptions::default()).unwrap();
        assert_eq!(
            (t.target_kind(), t.target_location().contains("r.db")),
            ("sqlite", true)
        );
        let t =
            restore_target_from_url("postgres://u@h/copy", &PostgresOptions::default()).unwrap();
        assert_eq!(t.target_kind(), "postgres");
        for bad in ["mysql://h/db", "sqlite://", "postgres://u@h/a,b", "nothing"] {
            let e = restore_target_from_url(bad, &PostgresOptions::default()).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Usage, "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_schemes_and_empty_paths_are_usage_errors() {
        for url in ["mysql://x/y", "sqlite://", "nothing", "postgres://h/a,b"] {
            let err = source_from_url(url).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Usage, "{url}");
        }
    }
}
