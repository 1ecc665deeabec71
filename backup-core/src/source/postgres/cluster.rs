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
fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for e in std::fs::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid)?;
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
        // Short path: socket paths are limited to 107 bytes. A private dir:
        // if this process is killed, the next run stops the orphaned server
        // and removes it (`tempdir::sweep`).
        crate::tempdir::sweep(Path::new("/tmp"));
        let dir = crate::tempdir::PrivateDir::new(Path::new("/tmp"), "drill-cluster")
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
            chown_tree(&data, uid, gid)
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
                .filter(|l| l.contains("FATAL") || l.contains("ERROR"))
                .copied()
                .take(3)
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
        let mut c = Command::new(self.bin.join(name));
        c.stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            c.uid(uid).gid(gid);
        }
        // Relocatable builds keep their libraries beside bin/.
        let lib = self.bin.with_file_name("lib");
        if lib.is_dir() {
            c.env("LD_LIBRARY_PATH", lib);
        }
        c
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
