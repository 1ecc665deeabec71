//! The restore side of [`PostgresSource`]: the archive downloaded (and so
//! proven) into a private file, the roles it needs checked, a staging
//! database created from the archive's own `CREATE DATABASE`, loaded and
//! proven against the fingerprint, and only then swapped in under the
//! target name (SQLite's counterpart is `source/sqlite/swap.rs`).

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use super::sql::{self, quote_ident};
use super::tables::count_rows;
use super::{PostgresDetails, PostgresSource, Tool, db_err, globals, restore, staging, tools};
use crate::error::Result;
use crate::manifest::{Fingerprint, Manifest};
use crate::rt::blocking;
use crate::source::{RestoreOptions, RestoreOutcome, Source, TargetReport};

impl PostgresSource {
    /// [`Source::restore`](super::Source::restore): into a new database
    /// under a temporary name, proven, then swapped in.
    pub(super) async fn restore_archive(
        &self,
        reader: Box<dyn Read + Send>,
        manifest: &Manifest,
        opts: &RestoreOptions,
    ) -> Result<RestoreOutcome> {
        crate::source::RestoreTarget::check_target(self, opts).await?;
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
        let mut report = TargetReport::default();
        let cleaned = staging::clean_leftovers(&admin)
            .await
            .map_err(|m| self.restore_err(m))?;
        report.leftovers_cleaned = cleaned;
        if let Some(g) = &self.globals {
            let applied = globals::apply(&admin, g, true)
                .await
                .map_err(|m| self.restore_err(format!("cannot apply the backup's globals: {m}")))?;
            report.globals = Some(applied);
        }
        self.check_roles(&admin, &pg_restore, &archive, &script, manifest)
            .await?;

        let tag = format!("{:08x}", rand::random::<u32>());
        let staging = staging::side_name(&self.conn.dbname, "restore", &tag);
        // Held on `admin` until this function returns (or the process dies):
        // a later run can tell this staging database from a leftover.
        staging::hold(&admin, &staging)
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
                report.analyzed = Some(true);
                report.analyze_ms = Some(ms);
            } else {
                report.analyzed = Some(false);
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
            report.settings_skipped = after.skipped;
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
                report.partial = true;
                report.errors = Some(errors);
                report.tables_differing = Some(differing);
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

        let aside = staging::side_name(&self.conn.dbname, "old", &tag);
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
            report,
        })
    }

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
