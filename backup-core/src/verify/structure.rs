//! Structural checks on the data itself.

use std::time::Instant;

use async_trait::async_trait;

use super::{Verifier, VerifyInput};
use crate::error::{Error, Result};
use crate::manifest::Verdict;
use crate::source::sqlite;

/// `PRAGMA integrity_check` on the decompressed backup, and its row counts
/// compared with the manifest's fingerprint.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteIntegrity;

#[async_trait]
impl Verifier for SqliteIntegrity {
    fn name(&self) -> &str {
        "sqlite-integrity"
    }

    fn needs_local_copy(&self) -> bool {
        true
    }

    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict> {
        let started = Instant::now();
        let Some(path) = input.local_copy.map(|p| p.to_path_buf()) else {
            return Err(Error::usage(
                "sqlite-integrity needs a local copy of the backup",
            ));
        };
        let expected = input.manifest.fingerprint.clone();
        let name = self.name().to_string();
        tokio::task::spawn_blocking(move || {
            let fail = |detail: String| Verdict::fail(&name, detail, started);
            let problems = match sqlite::integrity_check(&path) {
                Err(m) => return fail(format!("backup is not a readable database: {m}")),
                Ok(p) => p,
            };
            let integrity = sqlite::integrity_verdict(problems, started);
            if !integrity.passed {
                return integrity;
            }
            match sqlite::fingerprint(&path) {
                Err(m) => fail(format!("cannot count rows: {m}")),
                Ok(actual) => match expected.diff(&actual) {
                    diff if diff.is_empty() => Verdict::pass(
                        &name,
                        format!(
                            "{}; {} tables, {} rows match the fingerprint",
                            integrity.detail,
                            actual.tables.len(),
                            actual.total_rows()
                        ),
                        started,
                    ),
                    diff => fail(format!("fingerprint mismatch: {}", diff.join("; "))),
                },
            }
        })
        .await
        .map_err(|e| Error::verification(self.name(), format!("worker failed: {e}")))
    }
}

/// The SQLite restore drill: the stored bytes, downloaded and decompressed
/// into a scratch file as a restore would write them, pass
/// `integrity_check` and hold the fingerprint's rows. (A SQLite restore is
/// that file, renamed into place.) Named `sqlite-drill` so the manifest
/// tells it from the snapshot check at backup time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteDrill;

#[async_trait]
impl Verifier for SqliteDrill {
    fn name(&self) -> &str {
        "sqlite-drill"
    }

    fn needs_local_copy(&self) -> bool {
        true
    }

    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict> {
        let mut v = SqliteIntegrity.verify(input).await?;
        v.verifier = self.name().to_string();
        if v.passed {
            v.detail = format!("restore drill OK: {}", v.detail);
        }
        Ok(v)
    }
}

/// `pg_restore --list` on the decompressed archive: the table of contents is
/// readable by a `pg_restore` at least as new as the `pg_dump` that wrote it,
/// and lists at least `min_tables` tables.
#[derive(Debug, Clone, Default)]
pub struct PgToc {
    opts: crate::source::PostgresOptions,
}

impl PgToc {
    /// With the tool locations and `min_tables` of `opts`.
    pub fn new(opts: crate::source::PostgresOptions) -> Self {
        Self { opts }
    }
}

#[async_trait]
impl Verifier for PgToc {
    fn name(&self) -> &str {
        "pg-toc"
    }

    fn needs_local_copy(&self) -> bool {
        true
    }

    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict> {
        use crate::source::postgres::{toc_verdict, tools};
        let started = Instant::now();
        let Some(path) = input.local_copy.map(|p| p.to_path_buf()) else {
            return Err(Error::usage("pg-toc needs a local copy of the backup"));
        };
        let major = input
            .manifest
            .fingerprint
            .details
            .get("pg_dump_major")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        let tool = match tools::pick("pg_restore", major, &self.opts.tools) {
            Ok(t) => t,
            Err(m) => return Ok(Verdict::fail(self.name(), m, started)),
        };
        let min = self.opts.min_tables;
        let out =
            tokio::task::spawn_blocking(move || tool.command().arg("--list").arg(&path).output())
                .await
                .map_err(|e| Error::verification("pg-toc", format!("worker failed: {e}")))?;
        let listing = match out {
            Err(e) => Err(format!("cannot run pg_restore: {e}")),
            Ok(o) if !o.status.success() => Err(String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace('\n', " / ")),
            Ok(o) => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        };
        Ok(toc_verdict(
            listing.as_deref().map_err(Clone::clone),
            min,
            started,
        ))
    }
}
