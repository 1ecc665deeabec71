//! The reliability suite: faults injected at every step of backup, restore,
//! verify and prune, and bad inputs of every kind, through the `lifeboat`
//! binary against real SQLite files, a local folder and S3 (moto) behind a
//! fault-injecting proxy.
//!
//! Every case checks the same invariants afterwards:
//!
//! - every backup committed before the fault is still listed and verifies
//!   (what is not counts as **bytes lost**, which must be 0);
//! - the source database and any restore target hold whole data (the old
//!   or the new database, never a broken one);
//! - nothing half-done is visible, and what the fault left is removed by the
//!   next run or `prune`;
//! - the exit code is the documented one, and no output (stdout, stderr,
//!   the log file) holds a secret canary or a panic.
//!
//! One line sums it up, printed on stderr (run with `--nocapture` to see it
//! next to the tests): bad inputs tried, fault classes injected, cases held,
//! bytes lost, canaries found, panics.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::lifeboat;
use lifeboat_tests::faults::{Action, FaultyHttp, Rule};
use lifeboat_tests::support::{
    SmallDisk, all_files, create_s3_bucket, http, s3_endpoint, sample_db, unique_bucket,
};

/// A secret that every run carries (as an S3 secret key, a webhook path, a
/// password) and that no output may ever show.
const CANARY: &str = "ReliabilityCanary7qX";

#[derive(Default)]
struct Suite {
    bad_inputs: AtomicUsize,
    classes: Mutex<BTreeSet<String>>,
    cases: AtomicUsize,
    held: AtomicUsize,
    failures: Mutex<Vec<String>>,
    bytes_lost: AtomicU64,
    canaries: AtomicUsize,
    panics: AtomicUsize,
}

/// What one run of the binary did.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        format!("exit {:?}\n{}\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Suite {
    /// Scan output for canaries and panics.
    fn scan(&self, text: &str) {
        if text.contains(CANARY) {
            self.canaries.fetch_add(1, Ordering::SeqCst);
            self.failures.lock().unwrap().push(format!(
                "canary in output: {}",
                &text[..text.len().min(1500)]
            ));
        }
        if text.contains("panicked") || text.contains("RUST_BACKTRACE") {
            self.panics.fetch_add(1, Ordering::SeqCst);
            self.failures
                .lock()
                .unwrap()
                .push(format!("panic: {}", &text[..text.len().min(1500)]));
        }
    }

    fn run(&self, cmd: &mut Command) -> Out {
        let out = cmd.output().expect("lifeboat runs");
        let o = Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        };
        if o.code == Some(101) {
            self.panics.fetch_add(1, Ordering::SeqCst);
        }
        self.scan(&o.stdout);
        self.scan(&o.stderr);
        o
    }

    /// Run one case of fault class `class`.
    fn case(&self, class: &str, name: &str, f: impl FnOnce() -> Result<(), String>) {
        self.classes.lock().unwrap().insert(class.to_string());
        self.cases.fetch_add(1, Ordering::SeqCst);
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        match r {
            Ok(Ok(())) => {
                self.held.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Err(why)) => self
                .failures
                .lock()
                .unwrap()
                .push(format!("[{class}] {name}: {why}")),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.failures
                    .lock()
                    .unwrap()
                    .push(format!("[{class}] {name}: assertion: {msg}"));
            }
        }
        let _ = t;
    }

    fn lost(&self, bytes: u64) {
        self.bytes_lost.fetch_add(bytes, Ordering::SeqCst);
    }
}

fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(why()) }
}

fn expect_code(o: &Out, code: i32, what: &str) -> Result<(), String> {
    ensure(o.code == Some(code), || {
        format!("{what}: expected exit {code}, got {}", o.text())
    })
}

/// One database, one sink, one config: the world a case runs in.
struct World<'s> {
    suite: &'s Suite,
    dir: tempfile::TempDir,
    /// `s3` (through `proxy`) or `file`.
    kind: &'static str,
    proxy: Option<FaultyHttp>,
    endpoint: Option<String>,
    bucket: String,
}

impl<'s> World<'s> {
    fn new(suite: &'s Suite, kind: &'static str, rows: usize) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        sample_db(&dir.path().join("app.db"), rows);
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let (proxy, endpoint, bucket) = match kind {
            "s3" => {
                let ep = s3_endpoint()?;
                let bucket = unique_bucket("rel");
                create_s3_bucket(&ep, &bucket);
                (Some(FaultyHttp::start(&ep, vec![])), Some(ep), bucket)
            }
            _ => (None, None, String::new()),
        };
        let w = Self {
            suite,
            dir,
            kind,
            proxy,
            endpoint,
            bucket,
        };
        w.configure("");
        Some(w)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn sink(&self) -> String {
        match self.kind {
            "s3" => format!("s3://{}/prod", self.bucket),
            _ => "file:backups".into(),
        }
    }

    /// Write lifeboat.toml with `extra` appended at the top level.
    fn configure(&self, extra: &str) {
        self.configure_with(extra, "");
    }

    /// … and `sink_extra` in `[sink_options]`.
    fn configure_with(&self, extra: &str, sink_extra: &str) {
        let sink_options = match &self.proxy {
            Some(p) => format!(
                "[sink_options]\nendpoint = \"{}\"\naccess_key_id = \"testing\"\nsecret_access_key = \"${{LB_CANARY}}\"\nmax_retries = 2\npart_size = 5242880\n{sink_extra}",
                p.url()
            ),
            None => String::new(),
        };
        std::fs::write(
            self.path().join("lifeboat.toml"),
            format!(
                "source = \"sqlite:app.db\"\nsink = \"{}\"\ntemp_dir = \"tmp\"\n{extra}\n[retention]\nkeep_last = 50\nincomplete_grace = \"0s\"\n{sink_options}",
                self.sink()
            ),
        )
        .unwrap();
    }

    fn cmd(&self) -> Command {
        let mut c = lifeboat(self.path());
        c.env("LB_CANARY", CANARY)
            .env("AWS_SECRET_ACCESS_KEY", CANARY)
            .args(["--log-file", "run.log"]);
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        self.suite.run(self.cmd().args(args))
    }

    fn run_env(&self, env: (&str, &str), args: &[&str]) -> Out {
        self.suite.run(self.cmd().env(env.0, env.1).args(args))
    }

    fn proxy(&self) -> &FaultyHttp {
        self.proxy.as_ref().expect("an s3 world")
    }

    /// Take a backup; its id.
    fn backup(&self) -> Result<String, String> {
        let o = self.run(&["backup", "--json"]);
        expect_code(&o, 0, "backup")?;
        let v: serde_json::Value = serde_json::from_str(&o.stdout).map_err(|e| e.to_string())?;
        Ok(v[0]["manifest"]["backup_id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    fn listing(&self) -> Result<serde_json::Value, String> {
        let o = self.run(&["list", "--json"]);
        expect_code(&o, 0, "list")?;
        serde_json::from_str(&o.stdout).map_err(|e| e.to_string())
    }

    /// The committed backups: id → stored bytes.
    fn ledger(&self) -> Result<Vec<(String, u64)>, String> {
        let l = self.listing()?;
        Ok(l["complete"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["backup_id"].as_str().unwrap().to_string(),
                    m["artifact"]["stored_size"].as_u64().unwrap(),
                )
            })
            .collect())
    }

    /// Every backup of `before` must still be listed and verify; the bytes
    /// of those that do not are lost. Then a new backup must succeed, and
    /// `prune` must leave no leftovers and nothing incomplete.
    fn settle(&self, before: &[(String, u64)]) -> Result<(), String> {
        if let Some(p) = &self.proxy {
            p.clear();
        }
        let now = self.ledger()?;
        for (id, bytes) in before {
            let listed = now.iter().any(|(i, _)| i == id);
            let verifies = listed && self.run(&["verify", id]).code == Some(0);
            if !verifies {
                self.suite.lost(*bytes);
                return Err(format!("committed backup {id} was lost (listed: {listed})"));
            }
        }
        let db_ok = rusqlite::Connection::open(self.path().join("app.db"))
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)))
            .map_err(|e| e.to_string())?;
        ensure(db_ok == "ok", || {
            format!("the source database is damaged: {db_ok}")
        })?;
        self.backup()?;
        let o = self.run(&["prune"]);
        expect_code(&o, 0, "prune after the fault")?;
        let l = self.listing()?;
        ensure(l["incomplete"].as_array().unwrap().is_empty(), || {
            format!("incomplete backups left after prune: {l}")
        })?;
        ensure(
            l["leftovers"]["uploads"].as_array().unwrap().is_empty()
                && l["leftovers"]["local"].as_array().unwrap().is_empty(),
            || format!("leftovers after prune: {l}"),
        )?;
        if let (Some(ep), "s3") = (&self.endpoint, self.kind) {
            let (_, uploads) = http("GET", &format!("{ep}/{}?uploads", self.bucket), b"");
            ensure(!uploads.contains("<UploadId>"), || {
                format!("open multipart upload after prune: {uploads}")
            })?;
        }
        for c in l["complete"].as_array().unwrap() {
            let id = c["backup_id"].as_str().unwrap();
            let o = self.run(&["verify", id]);
            expect_code(&o, 0, &format!("every listed backup verifies ({id})"))?;
        }
        let log = std::fs::read_to_string(self.path().join("run.log")).unwrap_or_default();
        self.suite.scan(&log);
        Ok(())
    }

    /// Spawn `args`, wait until `ready()`, send `signal`; the result.
    fn signal_when(
        &self,
        args: &[&str],
        env: Option<(&str, &str)>,
        signal: &str,
        ready: impl Fn() -> bool,
    ) -> Result<Out, String> {
        let mut cmd = self.cmd();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        while !ready() {
            if t0.elapsed() > Duration::from_secs(60) {
                return Err("the operation never reached the point to interrupt".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let o = Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        };
        self.suite.scan(&o.stdout);
        self.suite.scan(&o.stderr);
        Ok(o)
    }
}

fn rows(db: &Path) -> Result<i64, String> {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT count(*) FROM items", [], |r| r.get(0)))
        .map_err(|e| e.to_string())
}

/// A WAL-mode database with `n` rows whose last commit sits in the WAL.
fn live_db(path: &Path, n: usize) {
    sample_db(path, n);
    let st = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, os, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA wal_autocheckpoint=0')\nc.execute(\"INSERT INTO items (name) VALUES ('wal')\")\nc.commit()\nos._exit(0)\n",
        )
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

// ---------------------------------------------------------------- faults ---

/// kill -9 at every crash point of backup, verify, prune and restore.
fn crash_points(s: &Suite) {
    for kind in ["file", "s3"] {
        for point in [
            "backup:uploaded",
            "backup:before-commit",
            "backup:committed",
            "verify:downloaded",
            "prune:manifest-deleted",
        ] {
            s.case(
                "kill -9 at a crash point",
                &format!("{kind} {point}"),
                || {
                    let Some(w) = World::new(s, kind, 2000) else {
                        return Ok(());
                    };
                    w.backup()?;
                    std::thread::sleep(Duration::from_millis(1100));
                    w.backup()?;
                    let before = w.ledger()?;
                    let args: Vec<&str> = match point.split(':').next().unwrap() {
                        "backup" => vec!["backup"],
                        "verify" => vec!["verify", "--latest"],
                        _ => vec!["prune", "--keep-last", "1"],
                    };
                    let o = w.run_env(("LIFEBOAT_FAILPOINTS", point), &args);
                    ensure(o.code.is_none(), || {
                        format!("not killed at {point}: {}", o.text())
                    })?;
                    // A prune was asked to delete the older backup: only the
                    // newer one must survive it.
                    let keep: Vec<(String, u64)> = if point.starts_with("prune") {
                        before[before.len() - 1..].to_vec()
                    } else {
                        before.clone()
                    };
                    w.settle(&keep)?;
                    if point == "backup:committed" {
                        // The run died after its commit: that backup counts.
                        ensure(w.ledger()?.len() >= before.len() + 2, || {
                            "the backup committed before the kill is not listed".into()
                        })?;
                    }
                    Ok(())
                },
            );
        }
    }
    for (point, new) in [
        ("sqlite-restore:staged", false),
        ("sqlite-restore:quiesced", false),
        ("sqlite-restore:renamed", true),
    ] {
        s.case("kill -9 at a crash point", point, || {
            let Some(w) = World::new(s, "file", 1500) else {
                return Ok(());
            };
            w.backup()?;
            live_db(&w.path().join("target.db"), 30);
            let o = w.run_env(
                ("LIFEBOAT_FAILPOINTS", point),
                &["restore", "--latest", "--force", "--to", "sqlite:target.db"],
            );
            ensure(o.code.is_none(), || format!("not killed: {}", o.text()))?;
            let n = rows(&w.path().join("target.db"))?;
            let want = if new { 1500 } else { 31 };
            if n != want {
                s.lost(
                    std::fs::metadata(w.path().join("target.db"))
                        .map(|m| m.len())
                        .unwrap_or(1),
                );
                return Err(format!("target holds {n} rows, expected {want}"));
            }
            let o = w.run(&["restore", "--latest", "--force", "--to", "sqlite:target.db"]);
            expect_code(&o, 0, "the next restore")?;
            ensure(rows(&w.path().join("target.db"))? == 1500, || {
                "restored".into()
            })?;
            w.settle(&w.ledger()?)
        });
    }
}

/// kill -9, SIGTERM and SIGINT while an upload is in flight.
fn signals(s: &Suite) {
    for (signal, expect) in [("KILL", None), ("TERM", Some(143)), ("INT", Some(130))] {
        for kind in ["s3", "file"] {
            s.case(&format!("SIG{signal} during upload"), kind, || {
                let Some(w) = World::new(s, kind, 300_000) else {
                    return Ok(());
                };
                if let Some(p) = &w.proxy {
                    p.add(Rule::new(
                        "PUT",
                        "partNumber=",
                        Action::Delay(Duration::from_millis(800)),
                        1000,
                    ));
                    w.configure_with("", "upload_concurrency = 1\n");
                }
                let before = Vec::new();
                let dir = w.path().to_path_buf();
                let o =
                    w.signal_when(&["backup", "--level", "1"], None, signal, || match kind {
                        "s3" => w.proxy().injected() >= 1,
                        _ => all_files(&dir.join("backups"))
                            .iter()
                            .any(|p| p.to_string_lossy().ends_with(".partial")),
                    })?;
                ensure(o.code == expect, || format!("exit: {}", o.text()))?;
                if expect.is_some() {
                    let l = w.listing()?;
                    ensure(
                        l["leftovers"]["uploads"].as_array().unwrap().is_empty()
                            && l["incomplete"].as_array().unwrap().is_empty(),
                        || format!("a handled signal left something: {l}"),
                    )?;
                }
                w.settle(&before)
            });
        }
    }
    for kind in ["file", "s3"] {
        s.case("SIGTERM after the upload, before the commit", kind, || {
            let Some(w) = World::new(s, kind, 20_000) else {
                return Ok(());
            };
            let dir = w.path().to_path_buf();
            let o = w.signal_when(
                &["backup"],
                Some(("LIFEBOAT_FAILPOINTS", "backup:uploaded=pause")),
                "TERM",
                || match (kind, &w.endpoint) {
                    ("s3", Some(ep)) => lifeboat_tests::support::s3_keys(ep, &w.bucket)
                        .iter()
                        .any(|k| k.ends_with("data.sqlite.zst")),
                    _ => all_files(&dir.join("backups"))
                        .iter()
                        .any(|p| p.to_string_lossy().ends_with("/data.sqlite.zst")),
                },
            )?;
            ensure(o.code == Some(143), || format!("exit: {}", o.text()))?;
            let l = w.listing()?;
            ensure(
                l["incomplete"].as_array().unwrap().is_empty()
                    && l["complete"].as_array().unwrap().is_empty()
                    && l["leftovers"]["uploads"].as_array().unwrap().is_empty(),
                || format!("a SIGTERM before the commit left something visible: {l}"),
            )?;
            w.settle(&[])
        });
    }
    s.case("SIGTERM during restore", "sqlite", || {
        let Some(w) = World::new(s, "file", 300_000) else {
            return Ok(());
        };
        w.backup()?;
        live_db(&w.path().join("target.db"), 10);
        let dir = w.path().to_path_buf();
        let o = w.signal_when(
            &["restore", "--latest", "--force", "--to", "sqlite:target.db"],
            None,
            "TERM",
            || {
                std::fs::read_dir(&dir)
                    .map(|r| {
                        r.flatten()
                            .any(|e| e.file_name().to_string_lossy().contains("lifeboat-restore"))
                    })
                    .unwrap_or(false)
            },
        )?;
        ensure(o.code == Some(143), || format!("exit: {}", o.text()))?;
        ensure(rows(&dir.join("target.db"))? == 11, || {
            "the old target changed".into()
        })?;
        let staging = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("lifeboat-restore"))
            .count();
        ensure(staging == 0, || "the staging file was left".into())?;
        w.settle(&w.ledger()?)
    });
}

/// A full disk under the sink, the temp dir, or the restore target; a
/// read-only one.
fn disks(s: &Suite) {
    s.case("disk full (sink)", "backup", || {
        let Some(disk) = SmallDisk::mount(1024 * 1024) else {
            return Ok(());
        };
        let Some(w) = World::new(s, "file", 200) else {
            return Ok(());
        };
        let sink = disk.path().join("b");
        let cfg = |_: ()| {
            std::fs::write(
                w.path().join("lifeboat.toml"),
                format!(
                    "source = \"sqlite:app.db\"\nsink = \"file://{}\"\ntemp_dir = \"tmp\"\n[retention]\nkeep_last = 5\nincomplete_grace = \"0s\"\n",
                    sink.display()
                ),
            )
            .unwrap()
        };
        cfg(());
        w.backup()?;
        let before = w.ledger()?;
        sample_db(&w.path().join("big.db"), 150_000);
        let o = w.run(&["backup", "sqlite:big.db", "--name", "app", "--level", "1"]);
        expect_code(&o, 3, "backup onto a full disk")?;
        let partial = all_files(&sink)
            .iter()
            .filter(|p| p.to_string_lossy().contains("partial"))
            .count();
        ensure(partial == 0, || "a partial file was left on the full disk".into())?;
        let l = w.listing()?;
        ensure(l["incomplete"].as_array().unwrap().is_empty(), || format!("{l}"))?;
        w.settle(&before)
    });
    s.case("disk full (temp)", "verify", || {
        let Some(disk) = SmallDisk::mount(256 * 1024) else {
            return Ok(());
        };
        let Some(w) = World::new(s, "file", 20_000) else {
            return Ok(());
        };
        w.backup()?;
        let before = w.ledger()?;
        let o = w.run(&[
            "verify",
            "--latest",
            "--temp-dir",
            disk.path().to_str().unwrap(),
        ]);
        expect_code(&o, 78, "verify with a full temp dir")?;
        let o = w.run(&["status"]);
        expect_code(&o, 0, "status stays healthy: no verdict was recorded")?;
        w.settle(&before)
    });
    s.case("disk full (temp)", "backup snapshot copy", || {
        let Some(disk) = SmallDisk::mount(256 * 1024) else {
            return Ok(());
        };
        let Some(w) = World::new(s, "file", 20_000) else {
            return Ok(());
        };
        w.backup()?;
        let before = w.ledger()?;
        // A reader on an old snapshot forces the copy into the temp dir.
        let reader = rusqlite::Connection::open(w.path().join("app.db")).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        reader
            .query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))
            .unwrap();
        rusqlite::Connection::open(w.path().join("app.db"))
            .unwrap()
            .execute("INSERT INTO items (name) VALUES ('x')", [])
            .unwrap();
        let o = w.run(&["backup", "--temp-dir", disk.path().to_str().unwrap()]);
        reader.execute_batch("COMMIT").unwrap();
        expect_code(&o, 2, "a snapshot that cannot be written")?;
        ensure(
            std::fs::read_dir(disk.path()).unwrap().next().is_none(),
            || "the failed snapshot was left in the temp dir".into(),
        )?;
        w.settle(&before)
    });
    s.case("disk full (restore target)", "sqlite", || {
        let Some(disk) = SmallDisk::mount(512 * 1024) else {
            return Ok(());
        };
        let Some(w) = World::new(s, "file", 20_000) else {
            return Ok(());
        };
        w.backup()?;
        let target = disk.path().join("t.db");
        sample_db(&target, 10);
        let o = w.run(&[
            "restore",
            "--latest",
            "--force",
            "--to",
            &format!("sqlite://{}", target.display()),
        ]);
        expect_code(&o, 5, "restore onto a full disk")?;
        ensure(rows(&target)? == 10, || "the old target was damaged".into())?;
        let left = std::fs::read_dir(disk.path()).unwrap().count();
        ensure(left <= 2, || format!("staging files left: {left}"))?;
        w.settle(&w.ledger()?)
    });
    s.case("read-only file system", "sink, temp, target", || {
        let Some(disk) = SmallDisk::mount(8 * 1024 * 1024) else {
            return Ok(());
        };
        let Some(w) = World::new(s, "file", 500) else {
            return Ok(());
        };
        let sink = disk.path().join("b");
        std::fs::write(
            w.path().join("lifeboat.toml"),
            format!(
                "source = \"sqlite:app.db\"\nsink = \"file://{}\"\n[retention]\nkeep_last = 1\nincomplete_grace = \"0s\"\n",
                sink.display()
            ),
        )
        .unwrap();
        w.backup()?;
        std::thread::sleep(Duration::from_millis(1100));
        w.backup()?;
        let target = disk.path().join("t.db");
        sample_db(&target, 7);
        disk.set_read_only(true);
        let before = w.ledger()?;
        expect_code(&w.run(&["backup"]), 3, "backup to a read-only sink")?;
        expect_code(&w.run(&["list"]), 0, "list of a read-only sink")?;
        expect_code(&w.run(&["prune"]), 3, "prune of a read-only sink")?;
        expect_code(
            &w.run(&["verify", "--latest", "--temp-dir", disk.path().to_str().unwrap()]),
            78,
            "verify with a read-only temp dir",
        )?;
        expect_code(
            &w.run(&["restore", "--latest", "--force", "--to", &format!("sqlite://{}", target.display())]),
            5,
            "restore onto a read-only target",
        )?;
        disk.set_read_only(false);
        ensure(rows(&target)? == 7, || "the read-only target changed".into())?;
        ensure(w.ledger()? == before, || "a read-only failure changed the listing".into())?;
        w.settle(&before[1..])
    });
}

/// What an S3 service can do wrong.
fn http_faults(s: &Suite) {
    type Setup = fn(&FaultyHttp);
    let cases: Vec<(&str, &str, Setup, &[&str], i32)> = vec![
        (
            "503 storm",
            "every part upload",
            |p| p.add(Rule::new("PUT", "partNumber=", Action::Status(503), 1000)),
            &["backup"],
            3,
        ),
        (
            "503 storm",
            "every request",
            |p| {
                p.add(Rule {
                    method: None,
                    path_contains: "/".into(),
                    action: Action::Status(503),
                    times: 1000,
                })
            },
            &["backup"],
            3,
        ),
        (
            "503 storm",
            "reads during verify",
            |p| {
                p.add(Rule::new(
                    "GET",
                    "data.sqlite.zst",
                    Action::Status(503),
                    1000,
                ))
            },
            &["verify", "--latest"],
            3,
        ),
        (
            "503 storm",
            "listing",
            |p| p.add(Rule::new("GET", "list-type=2", Action::Status(503), 1000)),
            &["list"],
            3,
        ),
        (
            "503 storm",
            "a few, then through",
            |p| {
                p.add(Rule {
                    method: None,
                    path_contains: "/".into(),
                    action: Action::Status(503),
                    times: 2,
                })
            },
            &["backup"],
            0,
        ),
        (
            "dropped connection before the write lands",
            "a part",
            |p| p.add(Rule::new("PUT", "partNumber=", Action::DropMidRequest, 1)),
            &["backup"],
            0,
        ),
        (
            "dropped connection before the write lands",
            "the manifest",
            |p| p.add(Rule::new("PUT", "manifest.json", Action::DropMidRequest, 1)),
            &["backup"],
            0,
        ),
        (
            "dropped connection after the write lands",
            "a part",
            |p| p.add(Rule::new("PUT", "partNumber=", Action::ForwardThenDrop, 1)),
            &["backup"],
            0,
        ),
        (
            "dropped connection after the write lands",
            "the manifest",
            |p| {
                p.add(Rule::new(
                    "PUT",
                    "manifest.json",
                    Action::ForwardThenDrop,
                    1,
                ))
            },
            &["backup"],
            0,
        ),
        (
            "dropped connection after the write lands",
            "the completion",
            |p| p.add(Rule::new("POST", "uploadId=", Action::ForwardThenDrop, 1)),
            &["backup"],
            0,
        ),
        (
            "5xx after the write lands",
            "the manifest",
            |p| {
                p.add(Rule::new(
                    "PUT",
                    "manifest.json",
                    Action::ForwardThenStatus(500),
                    1,
                ))
            },
            &["backup"],
            0,
        ),
        (
            "body corrupted on GET",
            "verify",
            |p| {
                p.add(Rule::new(
                    "GET",
                    "data.sqlite.zst",
                    Action::CorruptBody,
                    1000,
                ))
            },
            &["verify", "--latest"],
            4,
        ),
        (
            "body corrupted on GET",
            "restore",
            |p| {
                p.add(Rule::new(
                    "GET",
                    "data.sqlite.zst",
                    Action::CorruptBody,
                    1000,
                ))
            },
            &["restore", "--latest", "--force", "--to", "sqlite:target.db"],
            5,
        ),
        (
            "manifest returned as garbage",
            "restore",
            |p| {
                p.add(Rule::new(
                    "GET",
                    "manifest.json",
                    Action::ReplaceBody(b"<html>oops</html>".to_vec()),
                    1000,
                ))
            },
            &["restore", "--latest", "--to", "sqlite:new.db"],
            3,
        ),
        (
            "slow service",
            "every request delayed",
            |p| {
                p.add(Rule {
                    method: None,
                    path_contains: "/".into(),
                    action: Action::Delay(Duration::from_millis(150)),
                    times: 1000,
                })
            },
            &["backup"],
            0,
        ),
    ];
    for (class, name, setup, args, code) in cases {
        s.case(class, name, || {
            let Some(w) = World::new(s, "s3", 40_000) else {
                return Ok(());
            };
            w.backup()?;
            let before = w.ledger()?;
            sample_db(&w.path().join("target.db"), 9);
            setup(w.proxy());
            let o = w.run(args);
            expect_code(&o, code, &format!("{args:?}"))?;
            ensure(w.proxy().injected() > 0, || "no fault was injected".into())?;
            ensure(rows(&w.path().join("target.db"))? == 9, || {
                "the restore target changed".into()
            })?;
            w.proxy().clear();
            if class == "body corrupted on GET" && args[0] == "verify" {
                // Recorded: status is red until a verify passes again.
                expect_code(&w.run(&["status"]), 6, "status after a failed verify")?;
            }
            w.settle(&before)
        });
    }
}

// ------------------------------------------------------------ bad inputs ---

/// Bad input of every kind: each must end with a documented usage, config
/// or refusal code, never a panic, never a success.
fn bad_inputs(s: &Suite) {
    let Some(w) = World::new(s, "file", 200) else {
        return;
    };
    let _ = std::fs::remove_file(w.path().join("lifeboat.toml"));
    let o = w.run(&["backup", "sqlite:app.db", "--to", "b"]);
    assert_eq!(o.code, Some(0), "a first backup: {}", o.text());
    std::fs::write(w.path().join("notes.txt"), "not a database").unwrap();
    let long = "x".repeat(100_000);
    let pw_url = format!("postgres://app:{CANARY}@127.0.0.1:1/shop");
    let argv: Vec<(Vec<String>, &[i32])> = vec![
        (vec!["backup".into()], &[64]),
        (vec!["backup".into(), "sqlite:app.db".into()], &[64]),
        (
            vec![
                "backup".into(),
                "sqlite:missing.db".into(),
                "--to".into(),
                "b".into(),
            ],
            &[2],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:notes.txt".into(),
                "--to".into(),
                "b".into(),
            ],
            &[2],
        ),
        (
            vec!["backup".into(), "sqlite:".into(), "--to".into(), "b".into()],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "mysql://h/db".into(),
                "--to".into(),
                "b".into(),
            ],
            &[64],
        ),
        (
            vec!["backup".into(), "app.db".into(), "--to".into(), "b".into()],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "ftp://h/x".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "s3://".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "s3:///nobucket".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "s3://b/p?colour=red".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                format!("s3://b/p?token={CANARY}"),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "file://host/x".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "app.db".into(),
            ],
            &[3],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "/proc/version".into(),
            ],
            &[3],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--name".into(),
                "../escape".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--name".into(),
                ".hidden".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--name".into(),
                "a/b".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--name".into(),
                long.clone(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--name".into(),
                "日本".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--level".into(),
                "0".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--level".into(),
                "-5".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--level".into(),
                "20".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--level".into(),
                "NaN".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--threads".into(),
                "0".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--threads".into(),
                "99999999999".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--min-size".into(),
                "lots".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--min-size".into(),
                "1 parsec".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--min-size".into(),
                "1e999".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--min-size".into(),
                "1 GiB".into(),
            ],
            &[4],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--temp-dir".into(),
                "/nonexistent/dir".into(),
            ],
            &[2],
        ),
        (
            vec![
                "backup".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
                "--lock-dir".into(),
                "/nonexistent/dir".into(),
            ],
            &[78],
        ),
        (
            vec!["backup".into(), pw_url.clone(), "--to".into(), "b".into()],
            &[2],
        ),
        (
            vec![
                "backup".into(),
                "postgres://h/a,b".into(),
                "--to".into(),
                "b".into(),
                "--name".into(),
                "x".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "postgres://h:notaport/db".into(),
                "--to".into(),
                "b".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "postgres://h/db?sslmode=sometimes".into(),
                "--to".into(),
                "b".into(),
            ],
            &[64],
        ),
        (
            vec![
                "backup".into(),
                "postgres://h/db?colour=red".into(),
                "--to".into(),
                "b".into(),
            ],
            &[64],
        ),
        (
            vec!["backup".into(), "--config".into(), "nope.toml".into()],
            &[78],
        ),
        (
            vec!["backup".into(), "--profile".into(), "prod".into()],
            &[78],
        ),
        (vec!["list".into()], &[64]),
        (
            vec!["list".into(), "--from".into(), "missing-dir".into()],
            &[0],
        ),
        (
            vec!["list".into(), "--from".into(), "notes.txt".into()],
            &[3],
        ),
        (
            vec![
                "list".into(),
                "--from".into(),
                "b".into(),
                "--source".into(),
                "../x".into(),
            ],
            &[64, 3],
        ),
        (
            vec![
                "verify".into(),
                "--from".into(),
                "b".into(),
                "no-such-id".into(),
            ],
            &[3],
        ),
        (
            vec![
                "verify".into(),
                "--from".into(),
                "b".into(),
                "2".into(),
                "--latest".into(),
            ],
            &[64],
        ),
        (
            vec![
                "verify".into(),
                "--from".into(),
                "b".into(),
                "--latest".into(),
                "--min-size".into(),
                "-1".into(),
            ],
            &[64],
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                "b".into(),
                "--latest".into(),
            ],
            &[64],
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                "b".into(),
                "--latest".into(),
                "--to".into(),
                "sqlite:app.db".into(),
            ],
            &[5],
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                "b".into(),
                "--latest".into(),
                "--to".into(),
                "sqlite:/".into(),
                "--force".into(),
            ],
            &[5],
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                "b".into(),
                "--latest".into(),
                "--to".into(),
                "sqlite:/dev/null".into(),
                "--force".into(),
            ],
            &[5],
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                "b".into(),
                "--latest".into(),
                "--to".into(),
                "sqlite:/proc/self/status".into(),
                "--force".into(),
            ],
            &[5],
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                "b".into(),
                "--latest".into(),
                "--to".into(),
                "postgres://h/a,b".into(),
            ],
            &[64],
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                "b".into(),
                "--latest".into(),
                "--to".into(),
                "s3://b/x".into(),
            ],
            &[64],
        ),
        (
            vec![
                "restore".into(),
                "--from".into(),
                "b".into(),
                "nope".into(),
                "--to".into(),
                "sqlite:n.db".into(),
            ],
            &[3],
        ),
        (vec!["prune".into(), "--from".into(), "b".into()], &[64]),
        (
            vec![
                "prune".into(),
                "--from".into(),
                "b".into(),
                "--keep-last".into(),
                "-1".into(),
            ],
            &[64],
        ),
        (
            vec![
                "prune".into(),
                "--from".into(),
                "b".into(),
                "--keep-days".into(),
                "4000000000".into(),
            ],
            &[64],
        ),
        (
            vec![
                "prune".into(),
                "--from".into(),
                "b".into(),
                "--keep-weekly".into(),
                "abc".into(),
            ],
            &[64],
        ),
        (
            vec![
                "status".into(),
                "--from".into(),
                "b".into(),
                "--max-age".into(),
                "soon".into(),
            ],
            &[64],
        ),
        (
            vec![
                "status".into(),
                "--from".into(),
                "b".into(),
                "--max-age".into(),
                "18446744073709551615".into(),
            ],
            &[64],
        ),
        (
            vec![
                "status".into(),
                "--from".into(),
                "b".into(),
                "--max-size-drop".into(),
                "inf".into(),
            ],
            &[64],
        ),
        (
            vec![
                "status".into(),
                "--from".into(),
                "b".into(),
                "--format".into(),
                "yaml".into(),
            ],
            &[64],
        ),
        (
            vec!["status".into(), "--from".into(), "empty-dir".into()],
            &[6],
        ),
        (vec!["schedule".into(), "--cron".into()], &[78, 64]),
        (vec!["frobnicate".into()], &[64]),
        (
            vec![
                "backup".into(),
                "--wait".into(),
                "--wait".into(),
                "sqlite:app.db".into(),
                "--to".into(),
                "b".into(),
            ],
            &[64],
        ),
        (vec![long.clone()], &[64]),
        (
            vec![
                "backup".into(),
                format!("sqlite:{long}"),
                "--to".into(),
                "b".into(),
            ],
            &[2, 64],
        ),
    ];
    for (args, codes) in argv {
        s.bad_inputs.fetch_add(1, Ordering::SeqCst);
        let label = args.join(" ");
        let label = label[..label.len().min(80)].to_string();
        s.case("bad input (command line)", &label, || {
            let o = w.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
            ensure(o.code.is_some_and(|c| codes.contains(&c)), || {
                format!(
                    "expected one of {codes:?}, got {}",
                    &o.text()[..o.text().len().min(600)]
                )
            })
        });
    }
    s.bad_inputs.fetch_add(1, Ordering::SeqCst);
    s.case("bad input (command line)", "an unwritable log file", || {
        let o = s.run(lifeboat(w.path()).args([
            "--log-file",
            "/proc/forbidden/log",
            "list",
            "--from",
            "b",
        ]));
        expect_code(&o, 78, "--log-file /proc/forbidden/log")
    });
    let configs: Vec<(&str, i32)> = vec![
        ("this is = = not toml", 78),
        ("[profiles.a]\nsource = 1\n", 78),
        ("colour = \"red\"\n", 78),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\nthreads = \"${LB_CANARY}\"\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\nmin_size = \"${LB_CANARY}\"\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\ncompression_level = \"${LB_CANARY}\"\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[retention]\nkeep_days = \"${LB_CANARY}\"\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"${UNSET_VARIABLE_XYZ}\"\n",
            78,
        ),
        ("source = \"sqlite:app.db\"\nsink = \"${\"\n", 78),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[retention]\nincomplete_grace = \"999999999999d\"\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[retries]\nattempts = 0\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[retries]\nbackoff = -1.0\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[health]\nmax_size_drop = 7.5\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[sink_options]\npart_size = 1\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[postgres]\njobs = 0\n",
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[notify]\nwebhook = 5\n",
            78,
        ),
        (
            "[profiles.a]\nsource = \"sqlite:app.db\"\nsink = \"b\"\n[profiles.b]\nsource = \"sqlite:app.db\"\nsink = \"b\"\n",
            78,
        ),
        ("profiles = 5\n", 78),
        (
            "source = \"sqlite:app.db\"\nsink = \"s3://b/p\"\n[sink_options]\nendpoint = \"http://127.0.0.1:1\"\nmax_retries = 0\nsecret_access_key = \"${LB_CANARY}\"\naccess_key_id = \"k\"\n",
            3,
        ),
    ];
    for (cfg, code) in configs {
        s.bad_inputs.fetch_add(1, Ordering::SeqCst);
        s.case("bad input (config)", &cfg.replace('\n', " "), || {
            std::fs::write(w.path().join("bad.toml"), cfg).unwrap();
            let o = w.run(&["--config", "bad.toml", "backup"]);
            expect_code(&o, code, cfg)
        });
    }
    // Damaged databases as sources.
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("empty file", Vec::new()),
        ("header only", b"SQLite format 3\0".to_vec()),
        (
            "random bytes",
            (0..65536u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (name, bytes) in damaged {
        s.bad_inputs.fetch_add(1, Ordering::SeqCst);
        s.case("bad input (damaged source)", name, || {
            std::fs::write(w.path().join("damaged.db"), &bytes).unwrap();
            let o = w.run(&["backup", "sqlite:damaged.db", "--to", "b"]);
            ensure(matches!(o.code, Some(2) | Some(4)), || o.text())
        });
    }
    s.case("bad input (damaged source)", "corrupt page", || {
        let db = w.path().join("corrupt.db");
        sample_db(&db, 5000);
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=delete;")
            .unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&db).unwrap();
        // Wreck the headers of a few b-tree pages.
        for page in 2..6 {
            for b in &mut bytes[4096 * page..4096 * page + 8] {
                *b = 0xff;
            }
        }
        std::fs::write(&db, bytes).unwrap();
        s.bad_inputs.fetch_add(1, Ordering::SeqCst);
        let o = w.run(&[
            "backup",
            "sqlite:corrupt.db",
            "--to",
            "b",
            "--name",
            "corrupt",
        ]);
        ensure(matches!(o.code, Some(2) | Some(4)), || o.text())?;
        let o = w.run(&["list", "--from", "b", "--json"]);
        expect_code(&o, 0, "list")?;
        let l: serde_json::Value = serde_json::from_str(&o.stdout).map_err(|e| e.to_string())?;
        ensure(
            !l["complete"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["source"]["name"] == "corrupt"),
            || "a corrupt database was listed as backed up".into(),
        )
    });
}

#[test]
fn reliability_suite() {
    if s3_endpoint().is_none() {
        return;
    }
    let suite = Suite::default();
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        sc.spawn(|| crash_points(&suite));
        sc.spawn(|| signals(&suite));
        sc.spawn(|| disks(&suite));
        sc.spawn(|| http_faults(&suite));
        sc.spawn(|| bad_inputs(&suite));
    });
    let cases = suite.cases.load(Ordering::SeqCst);
    let held = suite.held.load(Ordering::SeqCst);
    let summary = format!(
        "reliability: {} bad inputs tried, {} fault classes injected, {held}/{cases} cases held, {} bytes lost, {} secret canaries found, {} panics ({:.0}s)\n",
        suite.bad_inputs.load(Ordering::SeqCst),
        suite.classes.lock().unwrap().len(),
        suite.bytes_lost.load(Ordering::SeqCst),
        suite.canaries.load(Ordering::SeqCst),
        suite.panics.load(Ordering::SeqCst),
        t0.elapsed().as_secs_f64(),
    );
    // Past the test harness's capture, so `scripts/test` always shows it.
    let _ = std::io::stderr().write_all(summary.as_bytes());
    let summary_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reliability-summary.txt");
    let _ = std::fs::write(&summary_file, &summary);
    let failures = suite.failures.lock().unwrap();
    assert!(
        failures.is_empty() && held == cases,
        "{summary}{} failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert_eq!(suite.bytes_lost.load(Ordering::SeqCst), 0);
    assert_eq!(suite.canaries.load(Ordering::SeqCst), 0);
    assert_eq!(suite.panics.load(Ordering::SeqCst), 0);
}
