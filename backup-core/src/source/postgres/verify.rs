//! PostgreSQL's structural check on a stored backup (`pg-toc`). The restore
//! drill is [`super::drill`].

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{PostgresDetails, PostgresOptions, tools};
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

/// What a stored PostgreSQL backup is checked with besides the engine-free
/// verifiers: [`PgToc`] with `opts`.
pub(crate) fn stored_verifiers(opts: &PostgresOptions) -> Vec<Arc<dyn Verifier>> {
    vec![Arc::new(PgToc::new(opts.clone()))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_listing_counts_tables_and_data() {
        let listing = "; Archive created at\n;\n215; 1259 16390 TABLE public items postgres\n\
                       216; 1259 16391 TABLE audit log postgres\n\
                       3300; 0 16390 TABLE DATA public items postgres\n\
                       3301; 1259 16392 INDEX public items_name postgres\n";
        assert_eq!(toc_counts(listing), (2, 1, 4));
    }
}
