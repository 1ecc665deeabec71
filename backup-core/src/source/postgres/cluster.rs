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

/// uid and gid of a user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

impl ScratchCluster {
    /// Start a cluster with the server binaries in `bin`.
    ///
    /// # Errors
    /// A message with the tail of the server log when it does not start.
    pub fn start(bin: &Path) -> Result<Self, String> {
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
        let (data, sock) = (dir.path().join("data"), dir.path().join("sock"));
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
        let this = Self {
            dir,
            bin: bin.to_path_buf(),
            port,
            owner,
        };
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
        let conf = format!(
            "\nlisten_addresses = ''\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_wal_size = 4GB\nshared_buffers = 128MB\nmaintenance_work_mem = 256MB\nlogging_collector = off\n",
            sock.display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
            .map_err(|e| format!("cannot configure the cluster: {e}"))?;
        let log = this.dir.path().join("server.log");
        let out = this
            .tool("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if !out.status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = tail.lines().collect();
            return Err(format!(
                "the throwaway cluster did not start: {}",
                lines[lines.len().saturating_sub(3)..].join(" / ")
            ));
        }
        Ok(this)
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
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
