//! The backup side of [`PostgresSource`]: connect and plan (server version,
//! replica guard, the tools), the exported snapshot, `pg_dump` streamed
//! through the repacker with its table of contents teed to
//! `pg_restore --list`, the exact row counts at the snapshot, the globals,
//! and the fingerprint (see the module documentation of
//! [`super`](crate::source::postgres)).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::child::{DumpReader, KillOnDrop, drain_stderr, watch_pg_dump};
use super::tables::{count_rows, list_tables, lock_tables, lock_timed_out, locked_message};
use super::verify::toc_verdict;
use super::{
    GlobalsDetails, PgVersion, PostgresDetails, PostgresSource, Tool, archive, db_err, globals,
    restore, tools,
};
use crate::error::{Error, Result};
use crate::manifest::{Fingerprint, TableCount, Verdict};
use crate::rt::blocking;
use crate::source::{Attachment, Dump, DumpOptions, DumpOutcome, Source};

/// How much of the stream `pg_restore --list` may read: the table of
/// contents sits at the start of a custom-format archive.
const TOC_TEE_LIMIT: u64 = 64 * 1024 * 1024;

/// What a connection learned before dumping.
pub(super) struct Plan {
    client: tokio_postgres::Client,
    pub(super) server: PgVersion,
    pub(super) pg_dump: Tool,
    pg_restore: Tool,
}

/// Reads from `pg_dump` and copies the first bytes into `pg_restore --list`.
struct TeeReader<R> {
    inner: R,
    tee: Option<ChildStdin>,
    teed: u64,
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        if let Some(t) = self.tee.as_mut() {
            // pg_restore --list stops reading after the table of contents;
            // a broken pipe then just ends the copy.
            if n == 0 || self.teed >= TOC_TEE_LIMIT || t.write_all(&out[..n]).is_err() {
                self.tee = None;
            } else {
                self.teed += n as u64;
            }
        }
        Ok(n)
    }
}

/// The archive's own row counts against the snapshot's `count(*)`: every
/// counted table whose data is in the archive must hold exactly as many
/// rows. `None` when the archive was passed through unread.
fn archive_rows_verdict(
    counts: &[TableCount],
    large_objects: Option<u64>,
    stats: &archive::ArchiveStats,
    started: Instant,
) -> Option<Verdict> {
    if stats.passthrough.is_some() || !stats.complete {
        return None;
    }
    let in_archive: BTreeMap<String, u64> = stats
        .tables
        .iter()
        .map(|(s, t, n)| (format!("{s}.{t}"), *n))
        .collect();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for c in counts {
        if let Some(&n) = in_archive.get(&c.name) {
            checked += 1;
            if n != c.rows {
                wrong.push(format!(
                    "{}: {} in the archive, {} in the snapshot",
                    c.name, n, c.rows
                ));
            }
        }
    }
    let mut lobs = String::new();
    if let Some(n) = large_objects {
        if stats.large_objects != n {
            wrong.push(format!(
                "large objects: {} in the archive, {n} in the snapshot",
                stats.large_objects
            ));
        }
        lobs = format!(" and its {n} large objects");
    }
    Some(if wrong.is_empty() {
        Verdict::pass(
            "pg-rows",
            format!("the archive holds exactly the snapshot's rows for {checked} tables{lobs}"),
            started,
        )
    } else {
        Verdict::fail(
            "pg-rows",
            format!("row counts differ: {}", wrong.join("; ")),
            started,
        )
    })
}

fn archive_details(stats: &archive::ArchiveStats) -> serde_json::Value {
    serde_json::json!({
        "format": "custom",
        "version": stats.version,
        "chunks_merged": stats.passthrough.is_none(),
        "chunks_in": stats.chunks_in,
        "chunks_out": stats.chunks_out,
        "passthrough": stats.passthrough,
    })
}

impl PostgresSource {
    /// Seed 003's replica guard.
    async fn check_replica(&self, client: &tokio_postgres::Client) -> Result<()> {
        let standby: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| self.err(db_err(&e)))?
            .get(0);
        if !standby {
            return Ok(());
        }
        let row = client
            .query_one(
                "SELECT pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn(), \
                 EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8",
                &[],
            )
            .await
            .map_err(|e| self.err(db_err(&e)))?;
        let behind: bool = row.get(0);
        // Caught up: no lag. Behind: time since the last replayed commit;
        // unknown (never replayed one) counts as over any limit.
        let lag: f64 = if behind {
            row.get::<_, Option<f64>>(1).unwrap_or(f64::INFINITY)
        } else {
            0.0
        };
        tracing::info!(source = %self.location(), replay_lag_secs = lag, "source is a standby");
        if let Some(max) = self.opts.max_replica_lag
            && lag > max as f64
        {
            let behind = if lag.is_finite() {
                format!("{lag:.0}s behind its primary")
            } else {
                "behind its primary by an unknown time (WAL received, none replayed yet)"
                    .to_string()
            };
            let msg = format!(
                "the source is a standby {behind}, more than the allowed {max}s; a backup now would miss recent data"
            );
            if self.opts.replica_lag_warn_only {
                tracing::warn!(source = %self.location(), "{msg}");
            } else {
                return Err(self.err(msg));
            }
        }
        Ok(())
    }

    pub(super) async fn plan(&self) -> Result<Plan> {
        let client = self.conn.connect().await?;
        let server = self.server_version(&client).await?;
        self.check_replica(&client).await?;
        let pg_dump = tools::pick("pg_dump", server.major, &self.opts.tools)
            .map_err(|m| self.err(format!("server is PostgreSQL {server}: {m}")))?;
        let pg_restore = tools::pick("pg_restore", pg_dump.version.major, &self.opts.tools)
            .map_err(|m| self.err(format!("to check the dump's table of contents: {m}")))?;
        Ok(Plan {
            client,
            server,
            pg_dump,
            pg_restore,
        })
    }

    /// `pg_dumpall --globals-only`. A role that may not read `pg_authid`,
    /// where passwords are (a managed database's admin is no superuser),
    /// gets "permission denied": then it dumps again with
    /// `--no-role-passwords`, warns, and says so in the attachment's first
    /// line and the manifest. Those roles come back without passwords.
    async fn dump_globals(
        &self,
        server: PgVersion,
        secrets: &std::path::Path,
    ) -> Result<(Attachment, Option<String>)> {
        let tool = tools::pick("pg_dumpall", server.major, &self.opts.tools)
            .map_err(|m| self.err(format!("for --globals: {m}")))?;
        let run = |no_passwords: bool| {
            let mut cmd = tool.command();
            cmd.args(["--globals-only", "--no-password"]);
            if no_passwords {
                cmd.arg("--no-role-passwords");
            }
            let configured = self.conn.configure_child(&mut cmd, secrets);
            async move {
                configured?;
                tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output())
                    .await
                    .map_err(|e| self.err(format!("pg_dumpall failed: {e}")))?
                    .map_err(|e| self.err(format!("cannot run pg_dumpall: {e}")))
            }
        };
        let mut out = run(false).await?;
        let mut denied = None;
        if !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("permission denied")
        {
            let why = String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.contains("permission denied"))
                .map(|l| l.trim().to_string())
                .unwrap_or_default();
            denied = Some(why);
            out = run(true).await?;
        }
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).replace('\n', " ");
            return Err(self.err(format!(
                "pg_dumpall --globals-only failed ({}): {err}",
                out.status
            )));
        }
        let mut data = out.stdout;
        let warning = denied.map(|why| {
            let w = format!(
                "role {} may not read role passwords ({why}): globals dumped with --no-role-passwords, so restored roles have no passwords",
                self.conn.user
            );
            tracing::warn!(source = %self.location(), "{w}");
            let mut marked = format!("{} ({w})\n", globals::LIFEBOAT_NO_PASSWORDS).into_bytes();
            marked.append(&mut data);
            data = marked;
            w
        });
        Ok((
            Attachment {
                name: crate::layout::GLOBALS_ATTACHMENT.into(),
                file_name: crate::layout::GLOBALS_FILE.into(),
                data: bytes::Bytes::from(data),
            },
            warning,
        ))
    }

    /// [`Source::dump`](super::Source::dump): see the module documentation.
    pub(super) async fn dump_archive(&self, opts: &DumpOptions) -> Result<Dump> {
        let temp_root = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        // A PrivateDir: if this process is killed, the next run's sweep
        // removes it (and the passfile in it).
        let secrets = crate::tempdir::PrivateDir::new(&temp_root, "pg")
            .map_err(|e| self.err(format!("cannot create a private temp directory: {e}")))?;
        let Plan {
            client,
            server,
            pg_dump,
            pg_restore,
        } = self.plan().await?;

        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(|e| self.err(db_err(&e)))?;
        let snapshot: String = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| self.err(format!("cannot export a snapshot: {}", db_err(&e))))?
            .get(0);
        // Never wait forever behind another session's lock: the counting
        // transaction gives up after the lock wait, and so does pg_dump.
        let lock_wait = self.opts.lock_wait;
        client
            .batch_execute(&format!("SET LOCAL lock_timeout = '{lock_wait}s'"))
            .await
            .map_err(|e| self.err(db_err(&e)))?;
        let tables = list_tables(&client, &self.opts)
            .await
            .map_err(|e| self.err(db_err(&e)))?;
        // Take every table's ACCESS SHARE lock now, before pg_dump starts: a
        // table held ACCESS EXCLUSIVE fails the run here, named, instead of
        // stalling it.
        lock_tables(&client, &tables, lock_wait)
            .await
            .map_err(|m| self.err(m))?;
        let db_facts = restore::database_facts(&client, &self.conn.dbname, server.major)
            .await
            .map_err(|m| self.err(m))?;
        // pg_dump leaves large objects out when schemas or tables are
        // selected; otherwise it dumps them all. pg_largeobject_metadata is
        // a catalog: this count is exact at the snapshot.
        let large_objects = if self.opts.schemas.is_empty() && self.opts.tables.is_empty() {
            let n: i64 = client
                .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
                .await
                .map_err(|e| self.err(format!("counting large objects: {}", db_err(&e))))?
                .get(0);
            Some(n as u64)
        } else {
            None
        };
        let mut attachments = Vec::new();
        let mut globals_details = None;
        if self.opts.globals {
            let (a, warning) = self.dump_globals(server, secrets.path()).await?;
            attachments.push(a);
            globals_details = Some(GlobalsDetails {
                role_passwords: warning.is_none(),
                warning,
            });
        }

        let mut cmd = pg_dump.command();
        cmd.args(["--format=custom", "--compress=0", "--no-password"])
            .arg(format!("--snapshot={snapshot}"))
            .arg(format!("--lock-wait-timeout={}", lock_wait * 1000))
            .args(self.opts.filter_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.conn.configure_child(&mut cmd, secrets.path())?;
        let mut dump_child = cmd
            .spawn()
            .map_err(|e| self.err(format!("cannot run {}: {e}", pg_dump.argv.join(" "))))?;
        let dump_err = drain_stderr(&mut dump_child);
        let stdout = dump_child.stdout.take().expect("piped stdout");
        let (repacked, archive_stats) = archive::Repacker::new(stdout);

        let mut toc = pg_restore.command();
        toc.arg("--list")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut toc_child = toc
            .spawn()
            .map_err(|e| self.err(format!("cannot run {}: {e}", pg_restore.argv.join(" "))))?;
        let toc_err = drain_stderr(&mut toc_child);
        let toc_in = toc_child.stdin.take();
        let mut toc_out = toc_child.stdout.take().expect("piped stdout");
        let toc_listing = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = toc_out.read_to_string(&mut s);
            s
        });
        let toc_started = Instant::now();

        tracing::info!(
            source = %self.location(),
            server = %server,
            pg_dump = %pg_dump.version,
            tables = tables.len(),
            snapshot = %snapshot,
            "pg_dump started on an exported snapshot"
        );

        let location = self.location();
        let min_tables = self.opts.min_tables;
        let filters = self.opts.filter_args();
        let opts = self.opts.clone();
        let dump_child = Arc::new(Mutex::new(Some(dump_child)));
        let killer = KillOnDrop(dump_child.clone());
        let dump_end = watch_pg_dump(dump_child, dump_err, lock_wait);
        let reader_end = dump_end.clone();
        let outcome = async move {
            let _secrets = secrets;
            let _killer = killer;
            let fail = |m: String| Error::source_err(&location, m);
            // Exact counts inside the exporting transaction, while pg_dump runs.
            let counts = count_rows(&client, &tables).await.map_err(|(table, e)| {
                fail(match lock_timed_out(&e) {
                    true => locked_message(&table, lock_wait),
                    false => format!("counting rows of {table}: {}", db_err(&e)),
                })
            });
            let ended = blocking(move || Ok(dump_end.wait(None)))
                .await
                .map_err(fail)?;
            // Only now may the snapshot go.
            let _ = client.batch_execute("COMMIT").await;
            ended
                .unwrap_or_else(|| Err("pg_dump was stopped".into()))
                .map_err(fail)?;
            let counts = counts?;

            let (toc_status, listing, toc_stderr) = blocking(move || {
                let status = toc_child.wait();
                Ok((
                    status,
                    toc_listing.join().unwrap_or_default(),
                    toc_err.join().unwrap_or_default(),
                ))
            })
            .await
            .map_err(fail)?;
            let toc_ok = matches!(&toc_status, Ok(s) if s.success());
            let toc_verdict = toc_verdict(
                if toc_ok {
                    Ok(&listing)
                } else {
                    Err(toc_stderr)
                },
                min_tables,
                toc_started,
            );

            let stats = archive_stats.lock().expect("archive stats lock").clone();
            let rows_verdict = archive_rows_verdict(&counts, large_objects, &stats, toc_started);
            let mut fp = Fingerprint::new(counts, format!("PostgreSQL {server}"));
            let mut excluded = BTreeMap::new();
            if !opts.exclude_schemas.is_empty() {
                excluded.insert("schemas".into(), opts.exclude_schemas.clone());
            }
            if !opts.exclude_tables.is_empty() {
                excluded.insert("tables".into(), opts.exclude_tables.clone());
            }
            fp.details = PostgresDetails {
                database: Some(db_facts),
                large_objects,
                // Sequences are not transactional: a read in the snapshot and
                // pg_dump's own read differ whenever nextval() runs meanwhile.
                // The archive's SEQUENCE SET values are what every restore of
                // it sets, so they are the fingerprint (when the archive was
                // read).
                sequences: (stats.passthrough.is_none() && stats.complete).then(|| {
                    stats
                        .sequences
                        .iter()
                        .map(|(s, n, v, c)| {
                            (
                                format!("{s}.{n}"),
                                serde_json::json!({"last_value": v, "is_called": c}),
                            )
                        })
                        .collect()
                }),
                server_version: Some(server.to_string()),
                pg_dump_version: Some(pg_dump.version.to_string()),
                pg_dump_major: Some(pg_dump.version.major),
                server_major: Some(server.major),
                filters,
                excluded,
                archive: Some(archive_details(&stats)),
                globals: globals_details,
            }
            .into_details();
            let mut verdicts = vec![toc_verdict];
            verdicts.extend(rows_verdict);
            Ok(DumpOutcome {
                fingerprint: fp,
                verdicts,
                raw_size: None,
            })
        };
        Ok(Dump {
            reader: Box::new(TeeReader {
                inner: DumpReader {
                    inner: repacked,
                    end: reader_end,
                },
                tee: toc_in,
                teed: 0,
            }),
            outcome: Box::pin(outcome),
            guard: None,
            size_hint: None,
            attachments,
            precompressed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_rows_must_match_the_snapshot_counts() {
        let counts = vec![
            TableCount {
                name: "public.a".into(),
                rows: 10,
            },
            TableCount {
                name: "public.b".into(),
                rows: 0,
            },
            TableCount {
                name: "public.not_in_archive".into(),
                rows: 5,
            },
        ];
        let mut stats = archive::ArchiveStats {
            complete: true,
            tables: vec![
                ("public".into(), "a".into(), 10),
                ("public".into(), "b".into(), 0),
            ],
            ..Default::default()
        };
        let v = archive_rows_verdict(&counts, None, &stats, Instant::now()).unwrap();
        assert!(v.passed, "{}", v.detail);
        assert!(v.detail.contains("2 tables"), "{}", v.detail);

        stats.tables[0].2 = 9;
        let v = archive_rows_verdict(&counts, None, &stats, Instant::now()).unwrap();
        assert!(!v.passed);
        assert_eq!(v.verifier, "pg-rows");
        assert!(
            v.detail
                .contains("public.a: 9 in the archive, 10 in the snapshot"),
            "{}",
            v.detail
        );

        // Large objects are counted too.
        stats.tables[0].2 = 10;
        stats.large_objects = 2;
        let v = archive_rows_verdict(&counts, Some(2), &stats, Instant::now()).unwrap();
        assert!(
            v.passed && v.detail.contains("its 2 large objects"),
            "{}",
            v.detail
        );
        let v = archive_rows_verdict(&counts, Some(3), &stats, Instant::now()).unwrap();
        assert!(
            !v.passed
                && v.detail
                    .contains("large objects: 2 in the archive, 3 in the snapshot"),
            "{}",
            v.detail
        );

        // Nothing to say about an archive that was not read, or not to the end.
        stats.passthrough = Some("archive version 1.99".into());
        assert!(archive_rows_verdict(&counts, None, &stats, Instant::now()).is_none());
        stats.passthrough = None;
        stats.complete = false;
        assert!(archive_rows_verdict(&counts, None, &stats, Instant::now()).is_none());
    }
}
