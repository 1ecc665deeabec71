//! Lifeboat's core: back up databases to object storage and prove every
//! backup restores.
//!
//! Three traits carry the design:
//!
//! - [`Source`]: a database that can be snapshotted and restored
//!   ([`SqliteSource`]).
//! - [`Sink`]: where backups live ([`LocalSink`], and S3, DigitalOcean
//!   Spaces, Google Cloud Storage and memory through [`ObjectStoreSink`]).
//! - [`Verifier`]: proves something about a stored backup ([`MinSize`],
//!   [`ChecksumReadBack`], [`SqliteIntegrity`]).
//!
//! [`BackupJob`] streams a snapshot through multithreaded zstd and SHA-256
//! into a multipart upload, runs the verifiers, and writes `manifest.json`
//! last as the commit marker. [`Catalog`] lists backups from their manifests;
//! [`RestoreJob`] and [`VerifyJob`] read them back.
//!
//! # Example
//!
//! Back up a SQLite database to a local folder and restore it, inside the
//! caller's own tokio runtime:
//!
//! ```
//! use std::sync::Arc;
//! use backup_core::{BackupJob, LocalSink, RestoreJob, SqliteSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> backup_core::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = dir.path().join("app.db");
//! backup_core::source::sqlite::write_sample_database(&db, 1000).unwrap();
//!
//! let sink = Arc::new(LocalSink::new(dir.path().join("backups"))?);
//! let report = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink.clone())
//!     .lock_dir(dir.path())
//!     .run()
//!     .await?;
//! assert!(report.manifest.verified());
//!
//! let restored = dir.path().join("restored.db");
//! let r = RestoreJob::new(sink, Arc::new(SqliteSource::new(&restored)))
//!     .lock_dir(dir.path())
//!     .run()
//!     .await?;
//! assert_eq!(r.outcome.fingerprint.tables, report.manifest.fingerprint.tables);
//! # Ok(()) }
//! ```

pub mod catalog;
pub mod codec;
pub mod config;
pub mod crypt;
pub mod error;
pub mod failpoint;
pub mod health;
pub mod layout;
pub mod lease;
pub mod leftovers;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod mirror;
pub mod notify;
pub mod ops;
pub mod pipeline;
pub mod progress;
pub mod record;
pub mod redact;
pub mod retention;
mod rt;
pub mod sink;
pub mod source;
pub mod tempdir;
pub mod units;
pub mod verify;
pub mod wal;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use catalog::{BackupEntry, Catalog, IncompleteBackup, Listing, Selector};
pub use config::{Config, RetryPolicy, Settings};
pub use error::{Error, ErrorKind, Result};
pub use leftovers::Leftover;
pub use lock::LockMode;
pub use manifest::{Fingerprint, Manifest, TableCount, Verdict};
pub use pipeline::{
    BackupJob, BackupReport, Clock, RestoreJob, RestoreReport, VerifyJob, VerifyReport,
};
pub use progress::{NoProgress, Phase, Progress};
pub use retention::{PruneReport, RetentionPolicy};
pub use sink::{
    ListResult, LocalSink, ObjectInfo, ObjectStoreSink, PendingUpload, PutMode, PutOptions, Sink,
    SinkExt, SinkOptions, Upload, sink_from_url,
};
pub use source::postgres::{DrillTarget, PgDrill, PgToc, SmokeCheck, pg_drill};
pub use source::sqlite::{SqliteDrill, SqliteIntegrity};
pub use source::{
    PostgresDetails, PostgresOptions, PostgresSource, RestoreOptions, RestoreTarget, Source,
    SourceDetails, SourceKind, SqliteDetails, SqliteSource, TargetReport, restore_target_from_url,
    source_from_url, sources_from_url,
};
pub use units::ByteSize;
pub use verify::{ChecksumReadBack, MinSize, Verifier, VerifyInput};
