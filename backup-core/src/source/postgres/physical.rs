//! Physical base backups of a whole cluster (`lifeboat backup … --physical`)
//! and their restore into a data directory (`--to pgdata:///path`), with
//! point-in-time recovery settings.
//!
//! The backup is `pg_basebackup -Ft -X fetch -c fast`: one tar (the data
//! directory, the WAL from the backup's start to its end, and PostgreSQL's
//! own `backup_manifest`), zstd-compressed with bounded memory. On
//! PostgreSQL 15 and later the server compresses it (see
//! [`super::server_zstd`]); otherwise `pg_basebackup -D -` streams the tar
//! through the codec like a dump. A cluster with tablespaces is stored as
//! the same one tar, with each tablespace under `pg_tblspc/<oid>/` (see
//! [`super::tablespaces`]). It is self-contained: it restores to its end
//! point without the WAL archive, and to any later point with it. It is
//! proven by [`PgBackupManifest`]'s checks (`pg_verifybackup`'s): on the
//! stream as it is stored when the server compressed it (the read-back
//! SHA-256 then ties the stored copy to it), else on the copy read back
//! from the sink.

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::tablespaces::{self, Counting, TablespaceInfo};
use super::{PgConn, PgVersion, PostgresOptions, db_err, tools};
use crate::error::{Error, Result};
use crate::manifest::{Fingerprint, Manifest, Verdict};
use crate::rt::blocking;
use crate::source::{
    Dump, DumpOptions, DumpOutcome, RestoreOptions, RestoreOutcome, RestoreTarget, Source,
};
use crate::verify::{Verifier, VerifyInput};

/// The manifest's `source.kind` of a physical backup.
pub const PHYSICAL_KIND: &str = "postgres-physical";

/// A whole PostgreSQL cluster, backed up physically.
#[derive(Debug, Clone)]
pub struct PhysicalSource {
    conn: PgConn,
    opts: PostgresOptions,
}

/// What a physical backup records in its fingerprint's `details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PhysicalDetails {
    /// The cluster's system identifier (decimal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    /// The timeline the backup started on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The WAL position the backup started at (`0/2000028`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_lsn: Option<String>,
    /// The WAL position it ended at: recovery from it is consistent from
    /// here on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_lsn: Option<String>,
    /// When `pg_basebackup` ended (at or after the stop point): a target
    /// time at or after it can be reached from this backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// The server's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The server's major version: a restore needs server binaries of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_major: Option<u32>,
    /// The `pg_basebackup` that took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_basebackup_version: Option<String>,
    /// The cluster's tablespaces outside the data directory: their files
    /// are under `pg_tblspc/<oid>/` in the artifact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tablespaces: Vec<TablespaceInfo>,
}

impl PhysicalDetails {
    /// The details a physical backup's fingerprint records (lenient).
    pub fn from_fingerprint(fp: &Fingerprint) -> Self {
        serde_json::from_value(Value::Object(fp.details.clone())).unwrap_or_default()
    }

    /// The JSON map stored as the fingerprint's `details`.
    pub fn into_details(self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("PhysicalDetails serializes to a JSON object"),
        }
    }
}

/// A WAL position `X/Y` as a number.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// `(start lsn, timeline, stop lsn)` from `pg_basebackup -v`'s stderr.
fn parse_progress(stderr: &str) -> (Option<String>, Option<u32>, Option<String>) {
    let mut start = None;
    let mut tli = None;
    let mut stop = None;
    for line in stderr.lines() {
        if let Some(rest) = line.split("write-ahead log start point: ").nth(1) {
            let mut words = rest.split_whitespace();
            start = words.next().map(str::to_string);
            tli = rest
                .split("on timeline ")
                .nth(1)
                .and_then(|t| t.trim().parse().ok());
        } else if let Some(rest) = line.split("write-ahead log end point: ").nth(1) {
            stop = rest.split_whitespace().next().map(str::to_string);
        }
    }
    (start, tli, stop)
}

impl PhysicalSource {
    /// A physical source for the cluster `url` names (its database is only
    /// where Lifeboat connects to read the cluster's facts).
    ///
    /// # Errors
    /// [`Error::Usage`] for a malformed URL or one naming several databases.
    pub fn from_url(url: &str, opts: &PostgresOptions) -> Result<Self> {
        let (conn, dbs) = PgConn::parse(url)?;
        if dbs.len() > 1 {
            return Err(Error::usage(
                "a physical backup is of the whole cluster: name one database (or none) in the URL",
            ));
        }
        let conn = match dbs.first() {
            Some(d) => conn.with_dbname(d),
            None => conn,
        };
        Ok(Self {
            conn,
            opts: opts.clone(),
        })
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::source_err(self.location(), message)
    }

    /// Server version, system identifier, timeline and the tablespaces
    /// outside the data directory.
    async fn facts(&self) -> Result<(PgVersion, String, u32, Vec<TablespaceInfo>)> {
        let client = self.conn.connect().await?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num'), \
                        (SELECT system_identifier::text FROM pg_control_system()), \
                        (SELECT timeline_id FROM pg_control_checkpoint())",
                &[],
            )
            .await
            .map_err(|e| self.err(format!("cannot read the cluster's facts: {}", db_err(&e))))?;
        let version = PgVersion::from_num(row.get::<_, String>(0).trim().parse().unwrap_or(0));
        let spaces = client
            .query(
                "SELECT oid::int8, spcname::text, pg_tablespace_location(oid) FROM pg_tablespace \
                 WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid",
                &[],
            )
            .await
            .map_err(|e| self.err(format!("cannot list the tablespaces: {}", db_err(&e))))?
            .iter()
            .map(|r| TablespaceInfo {
                oid: r.get::<_, i64>(0) as u32,
                name: r.get(1),
                location: r.get(2),
            })
            .collect::<Vec<_>>();
        if !spaces.is_empty() && !self.opts.tools.command_prefix.is_empty() {
            return Err(self.err(format!(
                "the cluster has {} tablespace(s) outside the data directory: their backup needs pg_basebackup on this host (a command_prefix runs it elsewhere)",
                spaces.len()
            )));
        }
        Ok((version, row.get(1), row.get::<_, i32>(2) as u32, spaces))
    }
}

#[async_trait]
impl Source for PhysicalSource {
    fn kind(&self) -> &'static str {
        PHYSICAL_KIND
    }

    fn location(&self) -> String {
        self.conn.location()
    }

    fn default_name(&self) -> String {
        let host: String = self
            .conn
            .host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("pg-{}-{}", host.trim_matches('-'), self.conn.port)
    }

    fn lock_key(&self) -> String {
        format!("{PHYSICAL_KIND}://{}:{}", self.conn.host, self.conn.port)
    }

    fn extension(&self) -> &'static str {
        "tar"
    }

    fn artifact_format(&self) -> &'static str {
        "tar of the data directory (pg_basebackup -Ft -X fetch: WAL to the end point and backup_manifest included, after the server's end-of-archive blocks when the server compressed it: tar --ignore-zeros; tablespaces under pg_tblspc/<oid>/)"
    }

    fn default_compression_level(&self) -> i32 {
        1
    }

    async fn preflight(&self) -> Result<()> {
        let (server, _, _, _) = self.facts().await?;
        tools::pick("pg_basebackup", server.major, &self.opts.tools)
            .map_err(|m| self.err(format!("server is PostgreSQL {server}: {m}")))?;
        Ok(())
    }

    async fn dump(&self, opts: &DumpOptions) -> Result<Dump> {
        let temp_root = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let secrets = crate::tempdir::PrivateDir::new(&temp_root, "pg")
            .map_err(|e| self.err(format!("cannot create a private temp directory: {e}")))?;
        let (server, system_identifier, _, spaces) = self.facts().await?;
        let tool = tools::pick("pg_basebackup", server.major, &self.opts.tools)
            .map_err(|m| self.err(format!("server is PostgreSQL {server}: {m}")))?;
        let mut cmd = tool.command();
        // PostgreSQL 15 and later compress on the server (see
        // super::server_zstd), unless tablespaces must be combined into one
        // tar here or pg_basebackup runs elsewhere (command_prefix) and
        // cannot write into this host's temp directory.
        let server_zstd = spaces.is_empty()
            && self.opts.compress_on == super::CompressOn::Server
            && server.major >= 15
            && tool.version.major >= 15
            && self.opts.tools.command_prefix.is_empty();
        let level = opts.zstd_level;
        // One tar on stdout; with tablespaces, one file each in a private
        // directory pg_basebackup creates, followed as it writes them (the
        // server's compressed archive too).
        let spool = secrets.path().join("basebackup");
        // The server-compressed stream is checked on its way (see
        // super::server_zstd); its WAL goes here for pg_waldump.
        let wal_check = secrets.path().join("wal-check");
        if server_zstd && let Err(e) = std::fs::create_dir(&wal_check) {
            tracing::warn!(dir = %wal_check.display(), error = %e, "cannot create a directory to check the backup's WAL in");
        }
        let waldump = server_zstd
            .then(|| tools::pick("pg_waldump", server.major, &self.opts.tools).ok())
            .flatten();
        if spaces.is_empty() && !server_zstd {
            cmd.args(["-D", "-"]).stdout(Stdio::piped());
        } else {
            // `--progress` writes a line to stderr every second or so: if
            // this process dies (kill -9), the next one breaks the pipe and
            // pg_basebackup with it, instead of going on filling the temp
            // directory with nobody reading (it writes files, not a pipe).
            cmd.arg("-D")
                .arg(&spool)
                .args(["--no-sync", "--progress"])
                .stdout(Stdio::null());
            if server_zstd {
                let mut spec = format!("--compress=server-zstd:level={level}");
                if opts.zstd_threads > 1 {
                    spec.push_str(&format!(",workers={}", opts.zstd_threads));
                }
                cmd.arg(spec);
            }
        }
        cmd.args(["-Ft", "-X", "fetch", "-c", "fast", "-v"])
            .args(["--no-password", "--label", "lifeboat"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        self.conn.configure_child(&mut cmd, secrets.path())?;
        let mut child = cmd
            .spawn()
            .map_err(|e| self.err(format!("cannot run {}: {e}", tool.argv.join(" "))))?;
        let pid = child.id();
        let stdout = child.stdout.take();
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let child = Arc::new(Mutex::new(Some(child)));
        let exited = tablespaces::Exited::default();
        // Whether the reader stopped a pg_basebackup still running: then
        // its reason is the one to give, else pg_basebackup's own.
        let stopped_by_reader = tablespaces::Exited::default();
        let (stdout, combiner): (Box<dyn Read + Send>, _) = match stdout {
            Some(out) => (Box::new(out), None),
            None => {
                let (writer, reader) = tablespaces::channel();
                let expected = spaces.iter().map(|t| t.oid).collect();
                let dir = spool.clone();
                let wal_dir = wal_check.clone();
                let (exited, child) = (exited.clone(), child.clone());
                let stopped = stopped_by_reader.clone();
                let combiner = std::thread::spawn(move || {
                    let r = if server_zstd {
                        super::server_zstd::relay(
                            &dir,
                            pid,
                            &exited,
                            level,
                            &wal_dir,
                            writer.clone(),
                        )
                        .map(|relayed| (Vec::new(), Some(relayed)))
                    } else {
                        tablespaces::combine(&dir, pid, &exited, &expected, writer.clone())
                            .map(|oids| (oids, None))
                    };
                    if let Err(m) = &r {
                        // Stop pg_basebackup at once, and give the reader
                        // the cause rather than an early end.
                        if let Some(c) = child.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
                            && matches!(c.try_wait(), Ok(None))
                        {
                            stopped.store(true, std::sync::atomic::Ordering::SeqCst);
                            let _ = c.kill();
                        }
                        writer.fail(m.clone());
                    }
                    r
                });
                (Box::new(reader) as Box<dyn Read + Send>, Some(combiner))
            }
        };
        // Read stderr to its end (a reader that stopped would break
        // pg_basebackup's pipe), keeping the lines that say something and
        // not the progress reports.
        let stderr = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut kept = String::new();
            for line in std::io::BufReader::new(&mut stderr_pipe)
                .split(b'\n')
                .map_while(std::result::Result::ok)
            {
                let line = String::from_utf8_lossy(&line);
                let line = line.rsplit('\r').next().unwrap_or_default();
                let progress = line.contains(" kB (") && line.contains("tablespace");
                if !progress && !line.is_empty() && kept.len() < (1 << 20) {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
            kept
        });
        tracing::info!(
            source = %self.location(),
            server = %server,
            pg_basebackup = %tool.version,
            compress_on = if server_zstd { "server" } else { "client" },
            "pg_basebackup started"
        );
        let killer = super::child::KillOnDrop(child.clone());
        let location = self.location();
        let t0 = Instant::now();
        let version = tool.version;
        let outcome = async move {
            let _secrets = secrets;
            let _killer = killer;
            let fail = |m: String| Error::source_err(&location, m);
            let (status, text) = blocking(move || {
                let status = loop {
                    {
                        let mut g = child.lock().unwrap_or_else(|e| e.into_inner());
                        let status = match g.as_mut().map(|c| c.try_wait()) {
                            None => Some(None),
                            Some(Ok(Some(s))) => Some(Some(s)),
                            Some(Err(_)) => Some(None),
                            Some(Ok(None)) => None,
                        };
                        if let Some(status) = status {
                            exited.store(true, std::sync::atomic::Ordering::SeqCst);
                            break status;
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                };
                Ok::<_, String>((status, stderr.join().unwrap_or_default()))
            })
            .await
            .map_err(fail)?;
            let stopped_at = Utc::now();
            let mut combiner = combiner;
            if !matches!(status, Some(s) if s.success())
                && let Some(c) = combiner.take()
            {
                // The reader stops pg_basebackup when it fails: then its
                // reason is the one to give. When pg_basebackup failed
                // first (a refused connection, a server that cannot
                // compress), the reader only saw the end: pg_basebackup's
                // own message follows.
                let why = blocking(move || {
                    let deadline = Instant::now() + std::time::Duration::from_secs(2);
                    while !c.is_finished() && Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Ok::<_, Error>(c.is_finished().then(|| c.join().ok()).flatten())
                })
                .await?;
                if let Some(Err(m)) = why
                    && stopped_by_reader.load(std::sync::atomic::Ordering::SeqCst)
                {
                    return Err(fail(m));
                }
            }
            match status {
                Some(s) if s.success() => {}
                other => {
                    let tail: Vec<&str> = text.lines().rev().take(5).collect();
                    let hint = if server_zstd
                        && (text.contains("compression is not supported")
                            || text.contains("compression worker count"))
                    {
                        " (the server cannot compress with zstd: compress_on = \"client\" in [postgres] has Lifeboat compress instead)"
                    } else {
                        ""
                    };
                    return Err(fail(format!(
                        "pg_basebackup {}: {}{hint}",
                        match other.and_then(|s| s.code()) {
                            Some(c) => format!("exited with status {c}"),
                            None => "was stopped".into(),
                        },
                        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                    )));
                }
            }
            let mut stored_spaces = Vec::new();
            let mut raw_size = None;
            let mut verdicts = Vec::new();
            if let Some(combiner) = combiner {
                let (oids, relayed) = blocking(move || {
                    combiner
                        .join()
                        .unwrap_or_else(|_| Err("the tablespace reader panicked".into()))
                })
                .await
                .map_err(fail)?;
                if let Some(relayed) = relayed {
                    raw_size = Some(relayed.raw);
                    verdicts.extend(on_the_way(relayed.check, waldump, &wal_check, t0).await);
                }
                stored_spaces = spaces
                    .into_iter()
                    .filter(|t| oids.contains(&t.oid))
                    .collect();
            }
            let (start, timeline, stop) = parse_progress(&text);
            let Some(stop_lsn) = stop else {
                return Err(fail(format!(
                    "pg_basebackup did not report the backup's end point: {text}"
                )));
            };
            let mut fp = Fingerprint::new(Vec::new(), format!("PostgreSQL {server}"));
            fp.details = PhysicalDetails {
                system_identifier: Some(system_identifier),
                timeline,
                start_lsn: start,
                stop_lsn: Some(stop_lsn),
                stopped_at: Some(stopped_at),
                server_version: Some(server.to_string()),
                server_major: Some(server.major),
                pg_basebackup_version: Some(version.to_string()),
                tablespaces: stored_spaces,
            }
            .into_details();
            Ok(DumpOutcome {
                fingerprint: fp,
                verdicts,
                raw_size,
            })
        };
        Ok(Dump {
            reader: stdout,
            outcome: Box::pin(outcome),
            guard: None,
            size_hint: None,
            attachments: Vec::new(),
            precompressed: server_zstd,
        })
    }
}

/// The `pg-backup-manifest` verdict on a stream checked as it was stored
/// (see [`super::server_zstd`]), once `pg_waldump` has parsed its WAL in
/// `wal_dir`. None when the check could not run (no room for the WAL, no
/// `pg_waldump`): the stored copy is then read back as for any other
/// backup.
async fn on_the_way(
    check: Option<std::result::Result<super::manifest_check::Checked, String>>,
    waldump: Option<tools::Tool>,
    wal_dir: &Path,
    t0: Instant,
) -> Option<Verdict> {
    let name = "pg-backup-manifest";
    // A mismatch is a failure whether or not the WAL can be parsed.
    let checked = match check? {
        Ok(c) => c,
        Err(why) => return Some(Verdict::fail(name, why, t0)),
    };
    let waldump = waldump?;
    Some(
        match waldump_ranges(&waldump, wal_dir, &checked.wal_ranges).await {
            Ok(Ok(parsed)) => Verdict::pass(
                name,
                format!(
                    "checked as it was stored: {}",
                    checked_detail(&checked, &parsed)
                ),
                t0,
            ),
            Ok(Err(why)) => Verdict::fail(name, why, t0),
            Err(e) => {
                tracing::warn!(error = %e.display_chain(), "cannot parse the backup's WAL on its way; the stored copy is read back instead");
                return None;
            }
        },
    )
}

/// `pg-backup-manifest`: the stored base backup read back from the sink
/// and checked as it streams against PostgreSQL's own `backup_manifest`,
/// the checks of `pg_verifybackup` (the manifest's checksum, every file's
/// size and CRC32C, no file missing or extra), then the WAL from the start
/// to the end point parsed by `pg_waldump`. Only the WAL touches the disk;
/// the data directory is never unpacked (see [`super::manifest_check`]).
#[derive(Debug, Clone, Default)]
pub struct PgBackupManifest {
    tools: tools::ToolOptions,
    temp_dir: Option<PathBuf>,
}

impl PgBackupManifest {
    /// With tools looked up as `opts` say.
    pub fn new(opts: &PostgresOptions) -> Self {
        Self {
            tools: opts.tools.clone(),
            temp_dir: None,
        }
    }

    /// Where the WAL segments are written for `pg_waldump` (default: the
    /// system's temp directory).
    pub fn temp_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.temp_dir = dir;
        self
    }
}

#[async_trait]
impl Verifier for PgBackupManifest {
    fn name(&self) -> &'static str {
        "pg-backup-manifest"
    }

    async fn verify(&self, input: &VerifyInput<'_>) -> Result<Verdict> {
        use super::manifest_check::{StreamError, check_stream};
        let name = "pg-backup-manifest";
        let t0 = Instant::now();
        let major = PhysicalDetails::from_fingerprint(&input.manifest.fingerprint)
            .server_major
            .unwrap_or(0);
        let waldump = tools::pick("pg_waldump", major, &self.tools).map_err(|m| {
            Error::config("pg_waldump", format!("cannot check a physical backup: {m}"))
        })?;
        let temp_root = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let local = |e: std::io::Error| {
            Error::config(
                temp_root.display().to_string(),
                format!(
                    "cannot write the backup's WAL for pg_waldump: {e}; point --temp-dir (temp_dir) at a disk with room"
                ),
            )
        };
        crate::tempdir::sweep(&temp_root);
        let temp = crate::tempdir::PrivateDir::new(&temp_root, "verify").map_err(local)?;
        let wal_dir = temp.path().join("pg_wal");
        std::fs::create_dir(&wal_dir).map_err(local)?;
        let reader = match crate::codec::artifact_reader(
            input.sink,
            input.manifest,
            crate::progress::ProgressHandle::default(),
            input.keys,
        )
        .await
        {
            Ok(r) => r,
            Err(Error::NotFound { key, .. }) => {
                return Ok(Verdict::fail(
                    name,
                    format!("{key} is missing from the sink"),
                    t0,
                ));
            }
            Err(e) => return Err(e),
        };
        let dir = wal_dir.clone();
        let checked = blocking(move || Ok::<_, Error>(check_stream(reader, &dir))).await?;
        let checked = match checked {
            Ok(Ok(c)) => c,
            Ok(Err(why)) => return Ok(Verdict::fail(name, why, t0)),
            Err(StreamError::Local(e)) => return Err(local(e)),
            Err(StreamError::Read(e)) => {
                return match crate::codec::sink_error(e) {
                    Ok(Error::NotFound { key, .. }) => Ok(Verdict::fail(
                        name,
                        format!("{key} is missing from the sink"),
                        t0,
                    )),
                    Ok(sink) => Err(sink),
                    Err(e) => Ok(Verdict::fail(
                        name,
                        format!("cannot read the backup's data: {e}"),
                        t0,
                    )),
                };
            }
        };
        let parsed = match waldump_ranges(&waldump, &wal_dir, &checked.wal_ranges).await? {
            Ok(p) => p,
            Err(why) => return Ok(Verdict::fail(name, why, t0)),
        };
        Ok(Verdict::pass(
            name,
            format!(
                "read back from the sink: {}",
                checked_detail(&checked, &parsed)
            ),
            t0,
        ))
    }
}

/// What a passed `pg-backup-manifest` check found, for its verdict.
fn checked_detail(checked: &super::manifest_check::Checked, parsed: &[String]) -> String {
    format!(
        "{} files ({} bytes) match backup_manifest (size and CRC32C); the WAL from {} parses (pg_waldump, {} segment(s))",
        checked.files,
        checked.bytes,
        parsed.join(", "),
        checked.wal_segments
    )
}

/// `pg_waldump` over each of the manifest's WAL `ranges`, the segments in
/// `wal_dir`: `Ok(Ok(the ranges parsed))`, `Ok(Err(why))` when one does
/// not parse, `Err` when `pg_waldump` cannot run.
async fn waldump_ranges(
    waldump: &tools::Tool,
    wal_dir: &Path,
    ranges: &[super::manifest_check::WalRange],
) -> Result<std::result::Result<Vec<String>, String>> {
    let mut parsed = Vec::new();
    for r in ranges {
        let args = [
            "--quiet".to_string(),
            format!("--path={}", wal_dir.display()),
            format!("--timeline={}", r.timeline),
            format!("--start={}", r.start),
            format!("--end={}", r.end),
        ];
        let mut cmd = waldump.command();
        cmd.args(&args).stdin(Stdio::null());
        let out = blocking(move || {
            cmd.output()
                .map_err(|e| Error::config("pg_waldump", format!("cannot run pg_waldump: {e}")))
        })
        .await?;
        if !out.status.success() {
            return Ok(Err(format!(
                "the WAL from {} to {} on timeline {} does not parse: pg_waldump: {}",
                r.start,
                r.end,
                r.timeline,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parsed.push(format!(
            "{} to {} on timeline {}",
            r.start, r.end, r.timeline
        ));
    }
    Ok(Ok(parsed))
}

/// fsync every file and directory below `path` (and `path`), as
/// `pg_basebackup` does for what it writes; symbolic links are left alone.
fn sync_tree(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for e in std::fs::read_dir(path)? {
            sync_tree(&e?.path())?;
        }
        std::fs::File::open(path)?.sync_all()
    } else if meta.is_file() {
        std::fs::File::open(path)?.sync_all()
    } else {
        Ok(())
    }
}

/// A hidden sibling of `path` to build it in, renamed into place when
/// complete.
fn staging_beside(path: &Path) -> Result<PathBuf> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} names no directory", path.display())))?;
    Ok(parent.unwrap_or(Path::new(".")).join(format!(
        ".{}.lifeboat-restore-{:08x}",
        name.to_string_lossy(),
        rand::random::<u32>()
    )))
}

/// fsync the directory holding `path`.
fn sync_parent(path: &Path) {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Ok(d) = std::fs::File::open(parent.unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
}

/// Unpack a physical backup's tar into `dir`, with the files of each
/// tablespace in `routes` (`pg_tblspc/<oid>/…`) into its directory there
/// instead. Entries that would land outside are refused. Returns the bytes
/// read (to the stream's end).
fn unpack_routed(reader: impl Read, dir: &Path, routes: &[(u32, PathBuf)]) -> std::io::Result<u64> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut archive = tar::Archive::new(Counting(reader, 0));
    // A server-compressed backup has backup_manifest after the end of
    // the server's archive (see super::server_zstd).
    archive.set_ignore_zeros(true);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    let syncer = EarlySync::start();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let file = entry.header().entry_type().is_file();
        let mut parts = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir));
        let first = parts.next();
        let in_tblspc = matches!(first, Some(std::path::Component::Normal(a)) if a == "pg_tblspc");
        // A tablespace holds directories and files; a link there (in the
        // archive, never in a real backup) could point anywhere, and the
        // restored server, or `restore --start` as root, would follow it.
        if in_tblspc
            && !matches!(
                entry.header().entry_type(),
                tar::EntryType::Directory | tar::EntryType::Regular
            )
        {
            return Err(std::io::Error::other(format!(
                "the backup has a link or special file under pg_tblspc: {}",
                path.display()
            )));
        }
        let routed = match (in_tblspc, parts.next()) {
            (true, Some(std::path::Component::Normal(oid))) => routes
                .iter()
                .find(|(o, _)| oid.to_str() == Some(&o.to_string()))
                .map(|(_, d)| (d, parts.collect::<PathBuf>())),
            _ => None,
        };
        match routed {
            Some((dest, rest)) => {
                if rest.as_os_str().is_empty() {
                    continue;
                }
                if !rest
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
                {
                    return Err(std::io::Error::other(format!(
                        "the backup has an entry outside its tablespace: {}",
                        path.display()
                    )));
                }
                let to = dest.join(&rest);
                if let Some(parent) = to.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)?;
                }
                entry.unpack(&to)?;
                if file {
                    syncer.sync(to);
                }
            }
            None => {
                // What `unpack_in` writes: the path without a root or `./`
                // (it skips, and writes nothing for, a path with `..`).
                if entry.unpack_in(dir)? && file {
                    let rel: PathBuf = path
                        .components()
                        .filter(|c| matches!(c, std::path::Component::Normal(_)))
                        .collect();
                    syncer.sync(dir.join(rel));
                }
            }
        }
    }
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())?;
    syncer.finish()?;
    Ok(rest.1)
}

/// fsync files on another thread as soon as they are written, so that
/// the disk writes one file while the next is unpacked, instead of all of
/// them after the last (the restore's final `sync_tree` then finds them
/// clean). pgBackRest's restore also syncs each file as it goes.
struct EarlySync {
    tx: Option<std::sync::mpsc::Sender<PathBuf>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl EarlySync {
    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
        let thread = std::thread::Builder::new()
            .name("lifeboat-sync".into())
            .spawn(move || {
                for path in rx {
                    std::fs::File::open(&path)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| {
                            std::io::Error::new(
                                e.kind(),
                                format!("cannot sync {}: {e}", path.display()),
                            )
                        })?;
                }
                Ok(())
            })
            .ok();
        Self {
            tx: thread.is_some().then_some(tx),
            thread,
        }
    }

    /// Sync `path` soon (a thread that stopped on an error says so at
    /// [`Self::finish`]).
    fn sync(&self, path: PathBuf) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(path);
        }
    }

    /// Wait until every file sent is synced.
    fn finish(mut self) -> std::io::Result<()> {
        drop(self.tx.take());
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the sync thread panicked")),
            None => Ok(()),
        }
    }
}

/// Unpack a tar stream into `dir` (created `0700`), returning the bytes
/// read, refusing entries that
/// would land outside it; read to the stream's end.
pub(crate) fn unpack(reader: impl Read, dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut archive = tar::Archive::new(Counting(reader, 0));
    // A server-compressed backup has backup_manifest after the end of
    // the server's archive (see super::server_zstd).
    archive.set_ignore_zeros(true);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    // `unpack_in` refuses absolute paths and `..`.
    for entry in archive.entries()? {
        let mut entry = entry?;
        entry.unpack_in(dir)?;
    }
    // Past the end-of-archive blocks: read to the real end, so that a
    // verifying reader checks the whole stream.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink())?;
    Ok(rest.1)
}

/// Where and how a restored data directory recovers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The `restore_command` (`lifeboat wal fetch %f %p …`); none: the data
    /// directory starts at the backup's end point without the archive.
    pub restore_command: Option<String>,
    /// `recovery_target_*` settings as `(name, value)`, e.g.
    /// `("recovery_target_time", "2026-12-03 05:00:00+00")`.
    pub targets: Vec<(String, String)>,
    /// Keep the backup's `archive_mode` (the restored server replaces the
    /// primary and goes on archiving, on a new timeline). Without it the
    /// restored server gets `archive_mode = off`: a copy restored beside a
    /// live primary must not write its timeline into the primary's
    /// archive, where later recoveries would follow it.
    pub keep_archiving: bool,
}

/// A data directory to restore a physical backup into (`pgdata:///path`).
#[derive(Debug, Clone)]
pub struct PgDataTarget {
    path: PathBuf,
    recovery: Recovery,
    /// `(old, new)` tablespace locations.
    relocate: Vec<(PathBuf, PathBuf)>,
    /// Every tablespace into `<this>/<oid>` instead.
    tablespaces_under: Option<PathBuf>,
}

impl PgDataTarget {
    /// The data directory at `path`: it must not exist, or be empty.
    /// Tablespaces go back to their recorded locations, which must not
    /// exist or be empty.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            recovery: Recovery::default(),
            relocate: Vec::new(),
            tablespaces_under: None,
        }
    }

    /// Recover with these settings after the restore.
    pub fn with_recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// Put the tablespace recorded at `old` into `new` instead, for each
    /// pair (`--tablespace-map OLD=NEW`).
    pub fn relocate_tablespaces(mut self, pairs: Vec<(PathBuf, PathBuf)>) -> Self {
        self.relocate = pairs;
        self
    }

    /// Put every tablespace into `dir/<oid>` (a throwaway cluster must not
    /// write where the original's tablespaces live).
    pub fn tablespaces_under(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tablespaces_under = Some(dir.into());
        self
    }

    /// Where each recorded tablespace goes: `(oid, destination)`. Refuses
    /// a relocation that names no tablespace, two tablespaces in one
    /// place, and a destination that is not empty.
    fn tablespace_routes(&self, recorded: &[TablespaceInfo]) -> Result<Vec<(u32, PathBuf)>> {
        let norm = |p: &Path| PathBuf::from(p.to_string_lossy().trim_end_matches('/'));
        for (old, _) in &self.relocate {
            if !recorded
                .iter()
                .any(|t| norm(Path::new(&t.location)) == norm(old))
            {
                return Err(Error::usage(format!(
                    "--tablespace-map {}: the backup has no tablespace there (its tablespaces: {})",
                    old.display(),
                    if recorded.is_empty() {
                        "none".to_string()
                    } else {
                        recorded
                            .iter()
                            .map(|t| format!("{} at {}", t.name, t.location))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            }
        }
        let mut routes: Vec<(u32, PathBuf)> = Vec::new();
        for t in recorded {
            let at = norm(Path::new(&t.location));
            let dest = match &self.tablespaces_under {
                Some(dir) => dir.join(t.oid.to_string()),
                None => self
                    .relocate
                    .iter()
                    .find(|(old, _)| norm(old) == at)
                    .map_or(at, |(_, new)| norm(new)),
            };
            if let Some((other, _)) = routes.iter().find(|(_, d)| *d == dest) {
                return Err(self.err(format!(
                    "tablespaces {other} and {} would both go to {}",
                    t.oid,
                    dest.display()
                )));
            }
            match std::fs::read_dir(&dest).map(|mut d| d.next().is_some()) {
                Ok(true) => {
                    return Err(self.err(format!(
                        "tablespace {} goes to {}, which is not empty: a tablespace directory is never overwritten (move it with --tablespace-map {}=NEW_DIR)",
                        t.name,
                        dest.display(),
                        t.location
                    )));
                }
                Ok(false) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(self.err(format!(
                        "tablespace {} goes to {}: {e}",
                        t.name,
                        dest.display()
                    )));
                }
            }
            routes.push((t.oid, dest));
        }
        Ok(routes)
    }

    fn err(&self, m: impl Into<String>) -> Error {
        Error::restore_err(self.target_location(), m)
    }

    fn staging(&self) -> Result<PathBuf> {
        staging_beside(&self.path)
    }

    /// The settings appended to `postgresql.auto.conf`.
    fn recovery_conf(&self) -> String {
        let q = |v: &str| format!("'{}'", v.replace('\'', "''"));
        // A backup of a standby carries its primary_conninfo: the restored
        // server is a new one recovering from the archive, never a standby
        // streaming from that primary.
        let mut out = String::from(
            "\n# Written by lifeboat restore\nprimary_conninfo = ''\nprimary_slot_name = ''\n",
        );
        if let Some(c) = &self.recovery.restore_command {
            out.push_str(&format!("restore_command = {}\n", q(c)));
        }
        for (k, v) in &self.recovery.targets {
            out.push_str(&format!("{k} = {}\n", q(v)));
        }
        if !self.recovery.keep_archiving {
            out.push_str("# Not into the archive of the server it was copied from (restore --keep-archiving keeps it)\narchive_mode = off\n");
        }
        out
    }
}

impl PgDataTarget {
    /// `pg_tblspc` and `tablespace_map` in the unpacked `staging`: a link
    /// to each routed tablespace's destination, and a map naming them (the
    /// server recreates the links from it).
    fn place_tablespaces(&self, staging: &Path, routes: &[(u32, PathBuf)]) -> Result<()> {
        let map = staging.join("tablespace_map");
        let listed = match std::fs::read_to_string(&map) {
            Ok(t) => tablespaces::parse_map(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.err(format!("cannot read tablespace_map: {e}"))),
        };
        let mut entries = Vec::new();
        for (oid, dest) in routes {
            let link = staging.join("pg_tblspc").join(oid.to_string());
            if let Ok(m) = std::fs::symlink_metadata(&link) {
                // Only an empty directory from the archive can be in the way.
                if m.is_dir() {
                    std::fs::remove_dir(&link).map_err(|e| {
                        self.err(format!(
                            "tablespace {oid}: {} is in the way: {e}",
                            link.display()
                        ))
                    })?;
                }
            }
            std::os::unix::fs::symlink(dest, &link).map_err(|e| {
                self.err(format!(
                    "cannot link {} to {}: {e}",
                    link.display(),
                    dest.display()
                ))
            })?;
            entries.push((*oid, dest.to_string_lossy().into_owned()));
        }
        // A tablespace in the archive that the manifest does not record
        // (none: the backup fails when one appears) could not be routed.
        if let Some((oid, _)) = listed
            .iter()
            .find(|(o, _)| !routes.iter().any(|(r, _)| r == o))
        {
            return Err(self.err(format!(
                "the backup holds tablespace {oid}, which its manifest does not record: restore it by hand (see the restore guide)"
            )));
        }
        if entries.is_empty() {
            match std::fs::remove_file(&map) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(format!("cannot remove tablespace_map: {e}"))),
            }
        } else {
            std::fs::write(&map, tablespaces::format_map(&entries))
                .map_err(|e| self.err(format!("cannot write tablespace_map: {e}")))?;
        }
        Ok(())
    }
}

#[async_trait]
impl RestoreTarget for PgDataTarget {
    fn target_kind(&self) -> &'static str {
        PHYSICAL_KIND
    }

    fn target_location(&self) -> String {
        format!("pgdata://{}", self.path.display())
    }

    fn target_lock_key(&self) -> String {
        let p = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        format!("pgdata://{}", p.display())
    }

    async fn check_target(&self, _opts: &RestoreOptions) -> Result<()> {
        match std::fs::read_dir(&self.path) {
            Ok(mut d) => {
                if d.next().is_some() {
                    return Err(self.err(
                        "the directory is not empty: a data directory is never overwritten (point --to at a new or empty directory)",
                    ));
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                Err(self.err("it exists and is not a directory"))
            }
            Err(e) => Err(self.err(format!("cannot read it: {e}"))),
        }
    }

    async fn restore(
        &self,
        reader: Box<dyn Read + Send>,
        manifest: &Manifest,
        opts: &RestoreOptions,
    ) -> Result<RestoreOutcome> {
        self.check_target(opts).await?;
        let staging = self.staging()?;
        let this = self.clone();
        let fingerprint = manifest.fingerprint.clone();
        let recorded = PhysicalDetails::from_fingerprint(&fingerprint).tablespaces;
        let destinations = self.tablespace_routes(&recorded)?;
        // Each tablespace is built beside where it goes (same file system:
        // a rename puts it in place), and moved there with the data
        // directory.
        // A destination that exists (empty: checked) is built in directly:
        // it may be a mount point, which a sibling is not on.
        let routes = destinations
            .iter()
            .map(|(oid, dest)| {
                Ok((
                    *oid,
                    if dest.is_dir() {
                        dest.clone()
                    } else {
                        staging_beside(dest)?
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let counted = blocking(move || {
            let mut placed: Vec<PathBuf> = Vec::new();
            let result = (|| {
                for ((_, s), (_, dest)) in routes.iter().zip(&destinations) {
                    if s == dest {
                        continue;
                    }
                    if let Some(parent) = s.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            this.err(format!("cannot create {}: {e}", parent.display()))
                        })?;
                    }
                    std::fs::DirBuilder::new()
                        .mode(0o700)
                        .create(s)
                        .map_err(|e| this.err(format!("cannot create {}: {e}", s.display())))?;
                }
                let bytes = unpack_routed(reader, &staging, &routes).map_err(|e| {
                    this.err(match crate::codec::sink_error(e) {
                        Ok(sink) => sink.display_chain(),
                        Err(e) => format!("cannot unpack the backup: {e}"),
                    })
                })?;
                // pg_basebackup's own markers of a backup in progress stay;
                // recovery needs backup_label. Ours go on top.
                let auto = staging.join("postgresql.auto.conf");
                let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
                conf.push_str(&this.recovery_conf());
                std::fs::write(&auto, conf)
                    .map_err(|e| this.err(format!("cannot write postgresql.auto.conf: {e}")))?;
                // A backup of a standby carries standby.signal: recovery
                // here is targeted archive recovery, which ends.
                let standby = staging.join("standby.signal");
                if standby.exists() {
                    std::fs::remove_file(&standby)
                        .map_err(|e| this.err(format!("cannot remove standby.signal: {e}")))?;
                    tracing::info!("the backup was taken from a standby: its standby.signal is removed, the restored server recovers and becomes a primary");
                }
                if this.recovery.restore_command.is_some() || !this.recovery.targets.is_empty() {
                    std::fs::write(staging.join("recovery.signal"), "")
                        .map_err(|e| this.err(format!("cannot write recovery.signal: {e}")))?;
                }
                this.place_tablespaces(&staging, &destinations)?;
                // Durable before it becomes visible: a crash after the
                // rename must not leave a complete-looking directory whose
                // files never reached the disk.
                for dir in std::iter::once(&staging).chain(routes.iter().map(|(_, s)| s)) {
                    sync_tree(dir).map_err(|e| {
                        this.err(format!("cannot sync the restored files to disk: {e}"))
                    })?;
                }
                for ((_, s), (_, dest)) in routes.iter().zip(&destinations) {
                    if s == dest {
                        sync_parent(dest);
                        continue;
                    }
                    if dest.is_dir() {
                        std::fs::remove_dir(dest).map_err(|e| {
                            this.err(format!(
                                "the tablespace directory {} is no longer empty: {e}",
                                dest.display()
                            ))
                        })?;
                    }
                    std::fs::rename(s, dest).map_err(|e| {
                        this.err(format!(
                            "cannot move the tablespace into {}: {e}",
                            dest.display()
                        ))
                    })?;
                    placed.push(dest.clone());
                    sync_parent(dest);
                }
                // An empty directory in the way goes; anything else was
                // refused above and is refused again here.
                if this.path.is_dir() {
                    std::fs::remove_dir(&this.path).map_err(|e| {
                        this.err(format!("the target directory is no longer empty: {e}"))
                    })?;
                }
                std::fs::rename(&staging, &this.path).map_err(|e| {
                    this.err(format!(
                        "cannot move the restored directory into place: {e}"
                    ))
                })?;
                sync_parent(&this.path);
                Ok::<_, Error>(bytes)
            })();
            if result.is_err() {
                let _ = std::fs::remove_dir_all(&staging);
                for ((_, s), (_, dest)) in routes.iter().zip(&destinations) {
                    if s == dest {
                        // Built in place: empty it again.
                        for e in std::fs::read_dir(s).into_iter().flatten().flatten() {
                            let _ = std::fs::remove_dir_all(e.path())
                                .or_else(|_| std::fs::remove_file(e.path()));
                        }
                    } else {
                        let _ = std::fs::remove_dir_all(s);
                    }
                }
                // Tablespaces moved into place before the data directory
                // failed to: they were absent or empty before.
                for p in &placed {
                    let _ = std::fs::remove_dir_all(p);
                }
            }
            result
        })
        .await?;
        Ok(RestoreOutcome {
            target: self.target_location(),
            bytes: counted,
            fingerprint,
            replaced: false,
            report: Default::default(),
        })
    }
}

/// The manual restore of a physical backup: unpack, then recover.
pub(crate) fn manual_restore(steps: &mut crate::manifest::ManualSteps) {
    let raw = steps.raw_file().to_string();
    steps.push(format_args!(
        "{raw} is a tar of the data directory (with the WAL to its end point and backup_manifest): mkdir -m 700 DATADIR && tar -x --ignore-zeros -f {raw} -C DATADIR && pg_verifybackup DATADIR, as the server's user (--ignore-zeros: a backup the server compressed has backup_manifest after the server's end-of-archive blocks)"
    ));
    steps.push(
        "A cluster with tablespaces has each one's files under DATADIR/pg_tblspc/<oid>/ (tablespace_map names their original directories): move each to its directory, replace DATADIR/pg_tblspc/<oid> with a link to it, and make tablespace_map say where (PostgreSQL refuses directories in pg_tblspc unless allow_in_place_tablespaces = on)",
    );
    steps.push(
        "To recover further, put restore_command = 'lifeboat wal fetch %f %p --from <this sink> --name <source>' and a recovery_target_* in DATADIR/postgresql.auto.conf, touch DATADIR/recovery.signal, and start the server with binaries of the backup's major version",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_basebackup_progress_gives_the_start_and_end_points() {
        let err = "pg_basebackup: initiating base backup, waiting for checkpoint to complete\n\
                   pg_basebackup: checkpoint completed\n\
                   pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1\n\
                   pg_basebackup: write-ahead log end point: 0/2000100\n\
                   pg_basebackup: base backup completed\n";
        assert_eq!(
            parse_progress(err),
            (Some("0/2000028".into()), Some(1), Some("0/2000100".into()))
        );
        assert_eq!(parse_lsn("0/2000100"), Some(0x2000100));
        assert_eq!(parse_lsn("1A/0"), Some(0x1A << 32));
        assert_eq!(parse_lsn("x"), None);
    }

    /// A tar with `entries` (path, symlink target or file content).
    fn tar_of(entries: &[(&str, Result<&str, &[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, what) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o600);
            match what {
                Ok(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, target).unwrap();
                }
                Err(data) => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn links_under_pg_tblspc_are_refused_and_nothing_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let dest = dir.path().join("ts");
        std::fs::create_dir(&dest).unwrap();
        let routes = vec![(16384, dest.clone())];
        // Inside a routed tablespace: a link, then a file through it.
        let forged = tar_of(&[
            ("PG_VERSION", Err(b"15\n")),
            ("pg_tblspc/16384/PG_15_1/d", Ok(outside.to_str().unwrap())),
            ("pg_tblspc/16384/PG_15_1/d/evil", Err(b"x")),
        ]);
        let err = unpack_routed(&forged[..], &dir.path().join("data"), &routes).unwrap_err();
        assert!(err.to_string().contains("link"), "{err}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A link standing for a tablespace nobody routed.
        let forged = tar_of(&[("pg_tblspc/99999", Ok("/"))]);
        let err = unpack_routed(&forged[..], &dir.path().join("data2"), &routes).unwrap_err();
        assert!(err.to_string().contains("link"), "{err}");
        // A real one: files land in the tablespace's directory.
        let good = tar_of(&[
            ("PG_VERSION", Err(b"15\n")),
            ("./pg_tblspc/16384/PG_15_1/5/16385", Err(b"rows")),
        ]);
        unpack_routed(&good[..], &dir.path().join("data3"), &routes).unwrap();
        assert_eq!(
            std::fs::read(dest.join("PG_15_1/5/16385")).unwrap(),
            b"rows"
        );
        assert!(!dir.path().join("data3/pg_tblspc/16384").exists());
    }

    #[tokio::test]
    async fn a_stream_that_failed_its_check_fails_even_without_pg_waldump() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let v = on_the_way(
            Some(Err("PG_VERSION has checksum 1, the manifest says 2".into())),
            None,
            dir.path(),
            t0,
        )
        .await
        .expect("a verdict");
        assert!(!v.passed && v.detail.contains("PG_VERSION"), "{v:?}");
        // A stream that matched, but whose WAL nothing can parse: no
        // verdict, so the stored copy is read back instead.
        let checked = super::super::manifest_check::Checked {
            files: 1,
            bytes: 3,
            wal_segments: 0,
            wal_ranges: Vec::new(),
        };
        assert!(
            on_the_way(Some(Ok(checked)), None, dir.path(), t0)
                .await
                .is_none()
        );
        assert!(on_the_way(None, None, dir.path(), t0).await.is_none());
    }

    #[test]
    fn early_sync_reports_a_file_it_could_not_sync() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("a");
        std::fs::write(&ok, b"x").unwrap();
        let s = EarlySync::start();
        s.sync(ok.clone());
        s.finish().unwrap();
        let s = EarlySync::start();
        s.sync(ok);
        s.sync(dir.path().join("gone"));
        let err = s.finish().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(err.to_string().contains("cannot sync"), "{err}");
        assert!(err.to_string().contains("gone"), "{err}");
    }

    #[test]
    fn recovery_settings_are_quoted_for_postgresql_conf() {
        let t = PgDataTarget::new("/tmp/x").with_recovery(Recovery {
            restore_command: Some("lifeboat wal fetch %f %p --from 'file:///a b'".into()),
            targets: vec![("recovery_target_name".into(), "it's".into())],
            keep_archiving: false,
        });
        let c = t.recovery_conf();
        // A restored copy does not archive into its original's archive.
        assert!(c.ends_with("archive_mode = off\n"), "{c}");
        assert!(
            c.contains("restore_command = 'lifeboat wal fetch %f %p --from ''file:///a b'''"),
            "{c}"
        );
        assert!(c.contains("recovery_target_name = 'it''s'"), "{c}");
    }
}
