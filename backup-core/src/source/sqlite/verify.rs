//! SQLite's verifiers: the structural check on a stored backup
//! (`sqlite-integrity`) and the restore drill (`sqlite-drill`).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::manifest::Verdict;
use crate::verify::{Verifier, VerifyInput};

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
            let problems = match super::integrity_check(&path) {
                Err(m) => return fail(format!("backup is not a readable database: {m}")),
                Ok(p) => p,
            };
            let integrity = super::integrity_verdict(problems, started);
            if !integrity.passed {
                return integrity;
            }
            match super::fingerprint(&path) {
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

/// What a stored SQLite backup is checked with besides the engine-free
/// verifiers: [`SqliteIntegrity`].
pub(crate) fn stored_verifiers() -> Vec<Arc<dyn Verifier>> {
    vec![Arc::new(SqliteIntegrity)]
}
