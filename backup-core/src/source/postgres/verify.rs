//! PostgreSQL's structural check on a stored backup (`pg-toc`). The restore
//! drill is [`super::drill`].

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{PostgresDetails, PostgresOptions, toc_verdict, tools};
use crate::error::{Error, Result};
use crate::manifest::Verdict;
use crate::verify::{Verifier, VerifyInput};

/// `pg_restore --list` on the decompressed archive: the table of contents is
/// readable by a `pg_restore` at least as new as the `pg_dump` that wrote it,
/// and lists at least `min_tables` tables.
#[derive(Debug, Clone, Default)]
pub struct PgToc {
    opts: PostgresOptions,
}

impl PgToc {
    /// With the tool locations and `min_tables` of `opts`.
    pub fn new(opts: PostgresOptions) -> Self {
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
        let started = Instant::now();
        let Some(path) = input.local_copy.map(|p| p.to_path_buf()) else {
            return Err(Error::usage("pg-toc needs a local copy of the backup"));
        };
        let major = PostgresDetails::from_fingerprint(&input.manifest.fingerprint).pg_dump_major();
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

/// What a stored PostgreSQL backup is checked with besides the engine-free
/// verifiers: [`PgToc`] with `opts`.
pub(crate) fn stored_verifiers(opts: &PostgresOptions) -> Vec<Arc<dyn Verifier>> {
    vec![Arc::new(PgToc::new(opts.clone()))]
}
