//! A throwaway PostgreSQL cluster for restore drills: `initdb` into a private
//! temp directory, start on a Unix socket only (no TCP), stop and delete on
//! drop. A cluster whose process was killed is stopped and removed by the
//! next run (`tempdir::sweep` stops a server left in an abandoned directory). Server tools refuse to run as root, so as root they run as the
//! `postgres` user.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::PgConn;

/// A running scratch cluster.
#[derive(Debug)]
pub struct ScratchCluster {
    dir: crate::tempdir::PrivateDir,
    bin: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
}

/// `chown -R`, without following symlinks.
/// Why a server stopped, from its `log`: the lines naming any of
/// `markers` (`FATAL`, `PANIC`, …), or, when none does, its last `tail`
/// lines; joined with ` / `.
pub(crate) fn reasons_in_log(log: &str, markers: &[&str], tail: usize) -> String {
    let why: Vec<&str> = log
        .lines()
        .filter(|l| markers.iter().any(|m| l.contains(m)))
        .collect();
    if why.is_empty() {
        let mut last: Vec<&str> = log.lines().rev().take(tail).collect();
        last.reverse();
        last.join(" / ")
    } else {
        why.join(" / ")
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for e in std::fs::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// `chown -R` of a data directory and of the tablespaces its `pg_tblspc`
/// links point to.
fn chown_cluster(data: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    chown_tree(data, uid, gid)?;
    for link in std::fs::read_dir(data.join("pg_tblspc"))
        .into_iter()
        .flatten()
        .flatten()
    {
        // Only a tablespace's link (`<oid>` to an absolute directory), as
        // the restore made it.
        let oid = link.file_name();
        if !oid
            .to_str()
            .is_some_and(|o| o.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        if let Ok(target) = std::fs::read_link(link.path())
            && target.is_absolute()
            && target.is_dir()
        {
            chown_tree(&target, uid, gid)?;
        }
    }
    Ok(())
}

/// uid and gid of a user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn is_root() -> bool {
    crate::rt::effective_uid() == Some(0)
}

/// A server tool from `bin`, run as `owner` when given.
fn server_command(bin: &Path, name: &str, owner: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin.join(name));
    c.stdin(Stdio::null());
    if let Some((uid, gid)) = owner {
        c.uid(uid).gid(gid);
    }
    // Relocatable builds keep their libraries beside bin/.
    let lib = bin.with_file_name("lib");
    if lib.is_dir() {
        c.env("LD_LIBRARY_PATH", lib);
    }
    c
}

/// Where a recovery started by `restore --start` ended up.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoveryReached {
    /// `promoted` (a primary on a new timeline), `paused` (read-only, at
    /// the target: `pg_wal_replay_resume()` promotes) or `shut down` (at the
    /// target).
    pub state: String,
    /// The server's own words for the point it stopped at: `recovery
    /// stopping before commit of transaction 735, time …`, or `redo done at
    /// 0/3000100` when it replayed to the end of the archive.
    pub point_reached: Option<String>,
    /// `last completed transaction was at log time …`.
    pub last_transaction: Option<String>,
    /// The timeline it promoted onto.
    pub timeline: Option<u32>,
    /// The server's log of this start.
    pub log: PathBuf,
    /// How long recovery took, from the start of the server.
    pub duration_ms: u64,
}

/// Start a server on a restored data directory (handed to the `postgres`
/// user when running as root) and wait until recovery ends: promoted,
/// paused or shut down at the target. `port` overrides `postgresql.conf`'s.
///
/// # Errors
/// A message with the server's FATAL lines when it stopped without
/// reaching the target, or could not start.
pub fn start_recovery(
    data: &Path,
    bin: &Path,
    port: Option<u16>,
) -> Result<RecoveryReached, String> {
    let t0 = std::time::Instant::now();
    if !data.join("postgresql.conf").is_file() {
        return Err(format!(
            "{} has no postgresql.conf (a Debian cluster keeps it in /etc/postgresql/…): put the configuration in place and start the server yourself, without --start",
            data.display()
        ));
    }
    let owner = if is_root() {
        let ids = user_ids("postgres").ok_or(
            "running as root, but there is no 'postgres' user to run the server as (the server refuses root)",
        )?;
        chown_cluster(data, ids.0, ids.1)
            .map_err(|e| format!("cannot hand the data directory to the postgres user: {e}"))?;
        Some(ids)
    } else {
        None
    };
    let log = data.join("lifeboat-start.log");
    let _ = std::fs::remove_file(&log);
    // The log goes to one file we read, whatever the configuration says.
    let mut opts = "-c logging_collector=off".to_string();
    if let Some(p) = port {
        opts.push_str(&format!(" -p {p}"));
    }
    let out = server_command(bin, "pg_ctl", owner)
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(&log)
        .args(["-o", &opts, "start"])
        .output()
        .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let state = if text.contains("database system is ready to accept connections") {
            Some("promoted")
        } else if text.contains("pausing at the end of recovery")
            || text.contains("recovery has paused")
        {
            Some("paused")
        } else if text.contains("shutdown at recovery target") {
            Some("shut down")
        } else {
            None
        };
        let stopped = text.contains("database system is shut down")
            || (started.elapsed() > std::time::Duration::from_secs(5)
                && !data.join("postmaster.pid").exists());
        if let Some(state) = state
            && (state != "shut down" || stopped)
        {
            let after = |marker: &str| {
                text.lines()
                    .rev()
                    .find_map(|l| l.find(marker).map(|i| l[i..].trim().to_string()))
            };
            return Ok(RecoveryReached {
                state: state.to_string(),
                point_reached: after("recovery stopping").or_else(|| after("redo done at")),
                last_transaction: after("last completed transaction"),
                timeline: after("selected new timeline ID:")
                    .and_then(|l| l.rsplit(':').next().and_then(|n| n.trim().parse().ok())),
                log: log.clone(),
                duration_ms: t0.elapsed().as_millis() as u64,
            });
        }
        if stopped {
            let why: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("FATAL") || l.contains("PANIC") || l.contains("DETAIL"))
                .collect();
            return Err(format!(
                "the server stopped before recovery reached its target: {} (log: {})",
                if why.is_empty() {
                    text.lines().rev().take(2).collect::<Vec<_>>().join(" / ")
                } else {
                    why.join(" / ")
                },
                log.display()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

impl ScratchCluster {
    /// Start a cluster with the server binaries in `bin`.
    ///
    /// # Errors
    /// A message with the tail of the server log when it does not start.
    pub fn start(bin: &Path) -> Result<Self, String> {
        let this = Self::prepare(bin)?;
        let data = this.data_dir();
        let out = this
            .tool("initdb")
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        this.launch("fsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_wal_size = 4GB\nshared_buffers = 128MB\nmaintenance_work_mem = 256MB\n")?;
        Ok(this)
    }

    /// A private directory for a cluster, with no data directory yet and
    /// nothing started: write one into [`data_dir`](Self::data_dir) (a
    /// restored base backup), then [`launch`](Self::launch) it.
    ///
    /// # Errors
    /// A message when the directory cannot be set up.
    pub fn prepare(bin: &Path) -> Result<Self, String> {
        let owner = if is_root() {
            Some(user_ids("postgres").ok_or(
                "running as root, but there is no 'postgres' user to run the throwaway cluster as",
            )?)
        } else {
            None
        };
        // A private dir: if this process is killed, the next run stops the
        // orphaned server and removes it (`tempdir::sweep`), and `list`
        // reports it meanwhile (both look in the temp directory). Socket
        // paths are limited to 107 bytes: a temp directory too long for
        // `<dir>/lifeboat-drill-cluster-XXXXXX/sock/.s.PGSQL.NNNNN` gives
        // way to /tmp, and so does one the server's user cannot reach
        // (running as root, the server runs as `postgres`).
        let temp = std::env::temp_dir();
        let reachable = owner.is_none()
            || temp.ancestors().all(|a| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
            });
        let root = if reachable && temp.as_os_str().len() + 56 <= 107 {
            temp
        } else {
            PathBuf::from("/tmp")
        };
        crate::tempdir::sweep(&root);
        let dir = crate::tempdir::PrivateDir::new(&root, "drill-cluster")
            .map_err(|e| format!("cannot create a temp directory: {e}"))?;
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = owner {
            for p in [dir.path(), sock.as_path()] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            dir,
            bin: bin.to_path_buf(),
            port,
            owner,
        })
    }

    /// Where the data directory is (or goes).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where a restored backup's tablespaces go (`<oid>` each), removed
    /// with the cluster.
    pub fn tablespace_dir(&self) -> PathBuf {
        self.dir.path().join("tablespaces")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Start the server on [`data_dir`](Self::data_dir) (handed to the
    /// server's user when running as root), with `conf` and this cluster's
    /// socket-only connection settings appended to `postgresql.conf`.
    ///
    /// # Errors
    /// A message with the tail of the server log when it does not start.
    pub fn launch(&self, conf: &str) -> Result<(), String> {
        let data = self.data_dir();
        if let Some((uid, gid)) = self.owner {
            chown_cluster(&data, uid, gid)
                .map_err(|e| format!("cannot hand the data directory to the server's user: {e}"))?;
        }
        let conf = format!(
            "\n{conf}\nlisten_addresses = ''\nport = {}\nunix_socket_directories = '{}'\nlogging_collector = off\n",
            self.port,
            self.dir.path().join("sock").display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
            .map_err(|e| format!("cannot configure the cluster: {e}"))?;
        let log = self.dir.path().join("server.log");
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "600", "start"])
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if !out.status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = tail.lines().collect();
            // The FATAL lines say why; the last ones say how it ended.
            let mut why: Vec<&str> = lines
                .iter()
                .filter(|l| l.contains("FATAL") || l.contains("ERROR") || l.contains("DETAIL"))
                .copied()
                .take(4)
                .collect();
            why.extend(&lines[lines.len().saturating_sub(2)..]);
            return Err(format!(
                "the throwaway cluster did not start: {}",
                why.join(" / ")
            ));
        }
        Ok(())
    }

    /// A server tool of this cluster's binaries, run as the cluster's user.
    pub fn server_tool(&self, name: &str) -> Command {
        self.tool(name)
    }

    fn tool(&self, name: &str) -> Command {
        server_command(&self.bin, name, self.owner)
    }

    /// A superuser connection to database `db`.
    pub fn conn(&self, db: &str) -> PgConn {
        PgConn::socket(&self.dir.path().join("sock"), self.port, "postgres", db)
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reasons_in_log_are_the_marked_lines_else_the_last_ones() {
        let log = "LOG:  starting\nFATAL:  could not open file\nDETAIL:  gone\nLOG:  shut down\n";
        assert_eq!(
            super::reasons_in_log(log, &["FATAL", "PANIC"], 3),
            "FATAL:  could not open file"
        );
        assert_eq!(
            super::reasons_in_log("a\nb\nc\nd\n", &["FATAL"], 3),
            "b / c / d"
        );
        assert_eq!(super::reasons_in_log("a\nb\n", &["FATAL"], 0), "");
    }
}
