//! Structural checks on the data itself.

use std::time::Instant;

use async_trait::async_trait;

use super::{Verifier, VerifyInput, verdict};
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
        let verdict_result = tokio::task::spawn_blocking(move || {
            match sqlite::integrity_check(&path) {
                Err(m) => (false, format!("backup is not a readable database: {m}")),
                Ok(Some(problems)) => (false, format!("PRAGMA integrity_check: {problems}")),
                Ok(None) => match sqlite::fingerprint(&path) {
                    Err(m) => (false, format!("cannot count rows: {m}")),
                    Ok(actual) => {
                        let diff = expected.diff(&actual);
                        if diff.is_empty() {
                            (
                                true,
                                format!(
                                    "PRAGMA integrity_check: ok; {} tables, {} rows match the fingerprint",
                                    actual.tables.len(),
                                    actual.total_rows()
                                ),
                            )
                        } else {
                            (false, format!("fingerprint mismatch: {}", diff.join("; ")))
                        }
                    }
                },
            }
        })
        .await
        .map_err(|e| Error::verification(name.clone(), format!("worker failed: {e}")))?;
        Ok(verdict(
            self.name(),
            verdict_result.0,
            verdict_result.1,
            started,
        ))
    }
}
