//! The trust rules, through the `lifeboat` binary: a listed backup always
//! restores, nothing the sink says can make a good backup prunable, and
//! failure paths leave nothing half-done.

mod common;

use common::{error_line, lifeboat, run};

use std::path::Path;

use lifeboat_tests::faults::{Action, FaultyHttp, Rule};
use lifeboat_tests::support::{
    create_s3_bucket, http, s3_endpoint, s3_keys, sample_db, unique_bucket,
};

/// A config for `app.db` backed up to `s3://<bucket>/prod` through `endpoint`.
fn s3_config(dir: &Path, bucket: &str, endpoint: &str, extra: &str) {
    std::fs::write(
        dir.join("lifeboat.toml"),
        format!(
            "source = \"sqlite:app.db\"\nsink = \"s3://{bucket}/prod\"\n{extra}\n[sink_options]\nendpoint = \"{endpoint}\"\nmax_retries = 2\n"
        ),
    )
    .unwrap();
}

fn list_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["list", "--json"];
    a.extend_from_slice(args);
    let (code, out, err) = run(lifeboat(dir).args(&a));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The manifest PUT lands but its answer is lost (the connection drops, or
/// a 503 comes back): the retry or the read-back sees the manifest, the
/// backup is committed, and its data is never deleted from under it.
#[test]
fn a_lost_response_to_the_manifest_write_still_commits_the_backup() {
    let Some(ep) = s3_endpoint() else { return };
    for action in [Action::ForwardThenDrop, Action::ForwardThenStatus(503)] {
        let bucket = unique_bucket("commit");
        create_s3_bucket(&ep, &bucket);
        let proxy = FaultyHttp::start(
            &ep,
            vec![Rule::new("PUT", "/manifest.json", action.clone(), 1)],
        );
        let dir = tempfile::tempdir().unwrap();
        sample_db(&dir.path().join("app.db"), 2000);
        s3_config(dir.path(), &bucket, &proxy.url(), "");
        let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
        assert_eq!(proxy.injected(), 1, "{action:?}: the fault was injected");
        assert_eq!(code, 0, "{action:?}: {err}");
        let keys = s3_keys(&ep, &bucket);
        assert_eq!(
            keys.len(),
            3,
            "{action:?}: data, manifest, restore guide: {keys:?}"
        );
        assert!(keys.iter().any(|k| k.ends_with("/data.sqlite.zst")));
        let listing = list_json(dir.path(), &[]);
        assert_eq!(listing["complete"].as_array().unwrap().len(), 1);
        let (code, _, err) =
            run(lifeboat(dir.path()).args(["restore", "--latest", "--to", "sqlite:restored.db"]));
        assert_eq!(code, 0, "{action:?}: the committed backup restores: {err}");
    }
}

/// A manifest PUT answered 503 every time may still land later (a 5xx does
/// not prove it did not): the commit fails (exit 3) but the data stays, with
/// no manifest, as an incomplete backup: never listed as restorable, and
/// removed by `prune` after the grace period. Deleting it could leave a
/// manifest that lands later pointing at nothing.
#[test]
fn a_manifest_write_that_never_succeeds_leaves_an_incomplete_backup() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("nocommit");
    create_s3_bucket(&ep, &bucket);
    let proxy = FaultyHttp::start(
        &ep,
        vec![Rule::new("PUT", "/manifest.json", Action::Status(503), 50)],
    );
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 500);
    s3_config(
        dir.path(),
        &bucket,
        &proxy.url(),
        "[retention]\nkeep_last = 1\nincomplete_grace = \"0s\"\n",
    );
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 3, "{err}");
    assert!(proxy.injected() >= 1);
    assert!(error_line(&err).contains("5xx"), "{err}");
    let keys = s3_keys(&ep, &bucket);
    assert!(
        !keys.iter().any(|k| k.ends_with("manifest.json")),
        "{keys:?}"
    );
    let (status, uploads) = http("GET", &format!("{ep}/{bucket}?uploads"), b"");
    assert_eq!(status, 200);
    assert!(!uploads.contains("<UploadId>"), "{uploads}");
    proxy.clear();
    let listing = list_json(dir.path(), &[]);
    assert!(
        listing["complete"].as_array().unwrap().is_empty(),
        "{listing}"
    );
    assert_eq!(
        listing["incomplete"].as_array().unwrap().len(),
        1,
        "{listing}"
    );
    let (code, _, err) = run(lifeboat(dir.path()).args(["prune"]));
    assert_eq!(code, 0, "{err}");
    assert!(s3_keys(&ep, &bucket).is_empty(), "prune removed it");
}

/// Take a backup of `app.db` (created with `rows` rows if missing) into the
/// local sink `b`; its manifest as JSON.
fn local_backup(dir: &Path, rows: usize) -> serde_json::Value {
    if !dir.join("app.db").exists() {
        sample_db(&dir.join("app.db"), rows);
    }
    let (code, out, err) =
        run(lifeboat(dir).args(["backup", "sqlite:app.db", "--to", "b", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["manifest"].clone()
}

/// The local file of a key in sink `b`.
fn local_object(dir: &Path, key: &str) -> std::path::PathBuf {
    dir.join("b").join(key)
}

fn manifest_path(dir: &Path, m: &serde_json::Value) -> std::path::PathBuf {
    let key = m["artifact"]["key"].as_str().unwrap();
    local_object(dir, key).with_file_name("manifest.json")
}

/// A manifest that exists but cannot be read (a newer format version, an
/// HTML page) is never "incomplete": listed as unreadable, kept by prune
/// even with no grace period, skipped by `restore --latest` with a reason,
/// and `status` is unhealthy.
#[test]
fn an_unreadable_manifest_is_kept_reported_and_never_restored_from() {
    for (what, body) in [
        ("newer format", None),
        (
            "html page",
            Some("<html><body>502 Bad Gateway</body></html>"),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = local_backup(d, 1000);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = local_backup(d, 0);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let c = local_backup(d, 0);
        let c_manifest = manifest_path(d, &c);
        let text = match body {
            Some(b) => b.to_string(),
            None => {
                let mut v = c.clone();
                v["format_version"] = 99.into();
                v.to_string()
            }
        };
        std::fs::write(&c_manifest, text).unwrap();
        std::fs::write(
            d.join("lifeboat.toml"),
            "[retention]\nincomplete_grace = \"0s\"\n",
        )
        .unwrap();

        let listing = list_json(d, &["--from", "b"]);
        let unreadable = listing["unreadable"].as_array().unwrap();
        assert_eq!(unreadable.len(), 1, "{what}: {listing}");
        assert_eq!(unreadable[0]["backup_id"], c["backup_id"], "{what}");
        assert!(
            listing["incomplete"].as_array().unwrap().is_empty(),
            "{what}"
        );
        if body.is_none() {
            assert!(
                unreadable[0]["reason"].as_str().unwrap().contains("newer"),
                "{listing}"
            );
        }

        let (code, _, err) = run(lifeboat(d).args(["prune", "--from", "b", "--keep-last", "1"]));
        assert_eq!(code, 0, "{what}: {err}");
        assert!(
            c_manifest.exists(),
            "{what}: the unreadable backup's manifest was deleted"
        );
        let c_data = local_object(d, c["artifact"]["key"].as_str().unwrap());
        assert!(
            c_data.exists(),
            "{what}: the unreadable backup's data was deleted"
        );
        assert!(
            !manifest_path(d, &a).exists(),
            "{what}: the rule still applies to others"
        );
        assert!(manifest_path(d, &b).exists(), "{what}");

        let (code, out, err) = run(lifeboat(d).args(["status", "--from", "b"]));
        assert_eq!(code, 6, "{what}: {out}{err}");
        assert!(out.contains("cannot read"), "{what}: {out}");

        let (code, _, err) =
            run(lifeboat(d).args(["restore", "--from", "b", "--latest", "--to", "sqlite:r.db"]));
        assert_eq!(code, 0, "{what}: {err}");
        assert!(
            err.contains("skipped a newer backup")
                && err.contains(c["backup_id"].as_str().unwrap()),
            "{what}: {err}"
        );
    }
}

/// The same through S3: a manifest GET answered with an HTML page and 200.
#[test]
fn a_garbled_manifest_from_s3_is_unreadable_not_incomplete() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("garbled");
    create_s3_bucket(&ep, &bucket);
    let proxy = FaultyHttp::start(&ep, vec![]);
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 500);
    s3_config(
        dir.path(),
        &bucket,
        &proxy.url(),
        "[retention]\nincomplete_grace = \"0s\"\nkeep_last = 1\n",
    );
    let (code, out, err) = run(lifeboat(dir.path()).args(["backup", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v[0]["manifest"]["backup_id"].as_str().unwrap().to_string();
    proxy.add(Rule::new(
        "GET",
        &format!("{id}/manifest.json"),
        Action::ReplaceBody(b"<html>Service Unavailable</html>".to_vec()),
        100,
    ));
    let listing = list_json(dir.path(), &[]);
    assert_eq!(
        listing["unreadable"].as_array().unwrap().len(),
        1,
        "{listing}"
    );
    assert!(listing["complete"].as_array().unwrap().is_empty());
    let (code, _, err) = run(lifeboat(dir.path()).args(["prune"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(s3_keys(&ep, &bucket).len(), 3, "nothing deleted");
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["restore", "--latest", "--to", "sqlite:r.db"]));
    assert_eq!(code, 3, "{err}");
    assert!(error_line(&err).contains("unreadable"), "{err}");
}

/// A backup whose data object is gone fails verification (exit 4), the
/// failure is recorded, and `status` notices it, even without a verify.
#[test]
fn missing_data_fails_verification_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = local_backup(d, 1000);
    std::fs::remove_file(local_object(d, m["artifact"]["key"].as_str().unwrap())).unwrap();

    let (code, out, _) = run(lifeboat(d).args(["status", "--from", "b"]));
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("missing from the sink"), "{out}");

    let (code, _, err) = run(lifeboat(d).args(["verify", "--from", "b", "--latest"]));
    assert_eq!(code, 4, "{err}");
    assert!(error_line(&err).contains("missing"), "{err}");
    let records: Vec<_> = lifeboat_tests::support::all_files(&d.join("b"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/verifications/"))
        .collect();
    assert_eq!(records.len(), 1, "a verification record was stored");
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    assert_eq!(rec["passed"], false);

    let (code, out, _) = run(lifeboat(d).args(["status", "--from", "b"]));
    assert_eq!(code, 6);
    assert!(out.contains("last verification"), "{out}");
}

/// A temp dir that fills up during `verify` is the run's error (exit 78),
/// never a failed verdict recorded against a good backup.
#[test]
fn a_full_temp_disk_is_not_a_corrupt_backup() {
    let Some(disk) = lifeboat_tests::support::SmallDisk::mount(256 * 1024) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = local_backup(d, 20_000);
    assert!(m["artifact"]["raw_size"].as_u64().unwrap() > 1024 * 1024);
    let (code, _, err) = run(lifeboat(d).args([
        "verify",
        "--from",
        "b",
        "--latest",
        "--temp-dir",
        disk.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 78, "{err}");
    assert!(error_line(&err).contains("temp-dir"), "{err}");
    let records: Vec<_> = lifeboat_tests::support::all_files(&d.join("b"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/verifications/"))
        .collect();
    assert!(records.is_empty(), "a verdict was recorded: {records:?}");
    assert!(
        std::fs::read_dir(disk.path()).unwrap().next().is_none(),
        "the partial copy was left in the temp dir"
    );
    let (code, out, _) = run(lifeboat(d).args(["status", "--from", "b"]));
    assert_eq!(code, 0, "{out}");
}

fn rows(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap()
}

/// A database with `n` rows in `items`, WAL mode, whose last row sits in
/// the WAL (not checkpointed), as a live app's database does: written by a
/// process that exits without closing.
fn live_db(path: &Path, n: usize) {
    sample_db(path, n);
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, os, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             c.execute('PRAGMA journal_mode=wal')\n\
             c.execute('PRAGMA wal_autocheckpoint=0')\n\
             c.execute(\"INSERT INTO items (name) VALUES ('in the wal')\")\n\
             c.commit()\n\
             os._exit(0)\n",
        )
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
    let wal = std::fs::metadata(format!("{}-wal", path.display())).unwrap();
    assert!(wal.len() > 0, "the last commit sits in the WAL");
}

/// `restore --force` replaces only a regular file (or one a symlink points
/// at): directories, FIFOs, sockets, devices and dangling links are refused
/// with exit 5 and left alone.
#[test]
fn restore_force_refuses_anything_but_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_backup(d, 500);
    let fifo = d.join("fifo.db");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let sock = d.join("sock.db");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::create_dir(d.join("dir.db")).unwrap();
    std::os::unix::fs::symlink("/dev/null", d.join("null.db")).unwrap();
    std::os::unix::fs::symlink(&fifo, d.join("to-fifo.db")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere.db"), d.join("dangling.db")).unwrap();
    for (target, says) in [
        ("fifo.db", "FIFO"),
        ("sock.db", "socket"),
        ("dir.db", "directory"),
        ("null.db", "character device"),
        ("to-fifo.db", "FIFO"),
        ("dangling.db", "dangling"),
    ] {
        let (code, _, err) = run(lifeboat(d).args([
            "restore",
            "--from",
            "b",
            "--latest",
            "--force",
            "--to",
            &format!("sqlite:{target}"),
        ]));
        assert_eq!(code, 5, "{target}: {err}");
        assert!(error_line(&err).contains(says), "{target}: {err}");
    }
    assert!(
        std::fs::symlink_metadata(d.join("null.db"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!d.join("nowhere.db").exists());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // A symlink to a regular database: the file it points at is replaced,
    // the link stays a link.
    live_db(&d.join("real.db"), 10);
    std::os::unix::fs::symlink(d.join("real.db"), d.join("link.db")).unwrap();
    let (code, _, err) = run(lifeboat(d).args([
        "restore",
        "--from",
        "b",
        "--latest",
        "--force",
        "--to",
        "sqlite:link.db",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::symlink_metadata(d.join("link.db"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(rows(&d.join("real.db")), 500);
}

/// A database another process has open, idle or in a transaction, is not
/// replaced: that process's next commit would go to the replaced file.
#[test]
fn restore_force_refuses_a_database_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_backup(d, 500);
    for (journal, txn) in [
        ("wal", false),
        ("wal", true),
        ("delete", false),
        ("delete", true),
    ] {
        let target = d.join(format!("app-{journal}-{txn}.db"));
        sample_db(&target, 20);
        let app = rusqlite::Connection::open(&target).unwrap();
        app.pragma_update(None, "journal_mode", journal).unwrap();
        app.query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))
            .unwrap();
        if txn {
            app.execute_batch("BEGIN IMMEDIATE; INSERT INTO items (name) VALUES ('pending');")
                .unwrap();
        }
        let (code, _, err) = run(lifeboat(d).args([
            "restore",
            "--from",
            "b",
            "--latest",
            "--force",
            "--to",
            &format!("sqlite:{}", target.display()),
        ]));
        assert_eq!(code, 5, "{journal} {txn}: {err}");
        assert!(
            error_line(&err).contains("another process"),
            "{journal} {txn}: {err}"
        );
        // The app's next commit lands in the file at the path.
        if txn {
            app.execute_batch("COMMIT").unwrap();
        } else {
            app.execute_batch("INSERT INTO items (name) VALUES ('pending');")
                .unwrap();
        }
        drop(app);
        assert_eq!(rows(&target), 21, "{journal} {txn}");
    }
}

/// `kill -9` at every step of a forced restore: the target path always
/// holds the old database or the new one, whole, and the next restore
/// cleans up what the killed one left.
#[test]
fn a_killed_forced_restore_leaves_the_old_or_the_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_backup(d, 500);
    for (point, expect_new) in [
        ("sqlite-restore:staged", false),
        ("sqlite-restore:quiesced", false),
        ("sqlite-restore:renamed", true),
    ] {
        let target = d.join("live.db");
        for f in ["live.db", "live.db-wal", "live.db-shm"] {
            let _ = std::fs::remove_file(d.join(f));
        }
        live_db(&target, 40);
        let old_rows = 41;
        let (code, _, err) = run(lifeboat(d).env("LIFEBOAT_FAILPOINTS", point).args([
            "restore",
            "--from",
            "b",
            "--latest",
            "--force",
            "--to",
            "sqlite:live.db",
        ]));
        assert_eq!(code, -1, "{point}: killed by a signal: {err}");
        assert!(target.exists(), "{point}: the target path is empty");
        let n = rows(&target);
        assert_eq!(n, if expect_new { 500 } else { old_rows }, "{point}");
        let c = rusqlite::Connection::open(&target).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "{point}");
        drop(c);
        let (code, _, err) = run(lifeboat(d).args([
            "restore",
            "--from",
            "b",
            "--latest",
            "--force",
            "--to",
            "sqlite:live.db",
        ]));
        assert_eq!(code, 0, "{point}: {err}");
        assert_eq!(rows(&target), 500, "{point}");
        let staging: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("lifeboat-restore"))
            .collect();
        assert!(staging.is_empty(), "{point}: left {staging:?}");
    }
}

/// A long-running reader on a WAL database must not turn the backup's
/// checkpoint into a stall of the application's writers (TRUNCATE waits for
/// readers while holding the writer lock): a writer with a 5 s busy
/// timeout never fails while backups run.
#[test]
fn a_backup_never_stalls_the_applications_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    sample_db(&d.join("app.db"), 20_000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (d, stop) = (d.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(d.join("app.db")).unwrap();
            c.execute_batch("BEGIN").unwrap();
            c.query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))
                .unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            c.execute_batch("COMMIT").unwrap();
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let writer = {
        let (d, stop) = (d.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(d.join("app.db")).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match c.execute("INSERT INTO items (name) VALUES ('app write')", []) {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..2 {
        let (code, _, err) = run(lifeboat(&d).args(["backup", "sqlite:app.db", "--to", "b"]));
        assert_eq!(code, 0, "{err}");
    }
    // Longer than the writer's busy timeout, with the reader still open.
    std::thread::sleep(std::time::Duration::from_secs(6));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let (ok, failed) = writer.join().unwrap();
    assert!(ok > 50, "the writer made progress: {ok}");
    assert!(
        failed.is_empty(),
        "the application's writes failed: {failed:?}"
    );
}

/// The lock is keyed on the database, however its path is spelled.
#[test]
fn one_lock_per_database_however_spelled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample_db(&d.join("app.db"), 100);
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(d.join("app.db"), d.join("alias.db")).unwrap();
    let canonical = std::fs::canonicalize(d.join("app.db")).unwrap();
    let lock = backup_core::lock::lock_path(d, &format!("sqlite://{}", canonical.display()));
    std::fs::write(&lock, "").unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for spelling in [
        format!("sqlite://{}/./app.db", d.display()),
        format!("sqlite://{}/sub/../app.db", d.display()),
        "sqlite:alias.db".to_string(),
        "sqlite:./app.db".to_string(),
    ] {
        let (code, _, err) = run(lifeboat(d).args(["backup", &spelling, "--to", "b"]));
        assert_eq!(code, 1, "{spelling}: {err}");
    }
    let _ = holder.kill();
    let _ = holder.wait();
    let (code, _, err) = run(lifeboat(d).args(["backup", "sqlite:./app.db", "--to", "b"]));
    assert_eq!(code, 0, "{err}");
}

/// Send `signal` to `child` after `after`; its exit code, stdout, stderr.
fn signal_after(
    mut cmd: std::process::Command,
    signal: &str,
    after: std::time::Duration,
) -> (Option<i32>, String, String) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let st = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// SIGTERM (systemd, `docker stop`, `timeout`) is handled like SIGINT: the
/// upload is aborted, temporary files go, one summary record, exit 143.
#[test]
fn sigterm_during_an_upload_aborts_cleanly_with_exit_143() {
    let Some(ep) = s3_endpoint() else { return };
    for (signal, expect) in [("TERM", 143), ("INT", 130)] {
        let bucket = unique_bucket("sigterm");
        create_s3_bucket(&ep, &bucket);
        let proxy = FaultyHttp::start(
            &ep,
            vec![Rule::new(
                "PUT",
                "partNumber=",
                Action::Delay(std::time::Duration::from_millis(1500)),
                100,
            )],
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        sample_db(&d.join("app.db"), 400_000);
        std::fs::create_dir(d.join("tmp")).unwrap();
        // One part in flight at a time, each held up: the stream is
        // mid-way when the signal comes.
        std::fs::write(
            d.join("lifeboat.toml"),
            format!(
                "source = \"sqlite:app.db\"\nsink = \"s3://{bucket}/prod\"\n[sink_options]\nendpoint = \"{}\"\nupload_concurrency = 1\npart_size = 5242880\n",
                proxy.url()
            ),
        )
        .unwrap();
        let mut cmd = lifeboat(d);
        cmd.args([
            "--log-format",
            "json",
            "backup",
            "--level",
            "1",
            "--temp-dir",
            "tmp",
        ]);
        let (code, _, err) = signal_after(cmd, signal, std::time::Duration::from_millis(1200));
        assert_eq!(code, Some(expect), "SIG{signal}: {err}");
        let summaries: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("\"summary\":true"))
            .collect();
        assert_eq!(summaries.len(), 1, "SIG{signal}: one summary record: {err}");
        assert!(
            summaries[0].contains(&format!("\"exit_code\":{expect}")),
            "{}",
            summaries[0]
        );
        assert!(
            s3_keys(&ep, &bucket).is_empty(),
            "SIG{signal}: objects left"
        );
        let (_, uploads) = http("GET", &format!("{ep}/{bucket}?uploads"), b"");
        assert!(
            !uploads.contains("<UploadId>"),
            "SIG{signal}: an open upload is left: {uploads} {err}"
        );
        let left: Vec<_> = std::fs::read_dir(d.join("tmp"))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "SIG{signal}: temp files left: {left:?}");
    }
}

/// Every canary that must never appear in any output.
const CANARIES: [&str; 9] = [
    "CanaryPgUrl1x",
    "CanaryQuery2x",
    "CanaryClap3x",
    "CanaryThreads4x",
    "CanarySecretKey5x",
    "CanaryKeepDays6x",
    "CanaryMinSize7x",
    "CanaryPgVar8x",
    "CanaryWebhook9x",
];

/// Secrets never echoed: a URL's password, a query-string secret, an
/// interpolated `${VAR}`, on stderr, in JSON logs, in the log file and in
/// webhooks, whatever goes wrong.
#[test]
fn secrets_are_never_echoed_on_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample_db(&d.join("app.db"), 100);
    let hook = lifeboat_tests::http::Recorder::start(200);
    let mut outputs: Vec<String> = Vec::new();
    let run_case =
        |outputs: &mut Vec<String>, args: &[&str], config: Option<String>, expect: i32| {
            match &config {
                Some(c) => std::fs::write(d.join("lifeboat.toml"), c).unwrap(),
                None => {
                    let _ = std::fs::remove_file(d.join("lifeboat.toml"));
                }
            }
            for format in ["text", "json"] {
                let mut cmd = lifeboat(d);
                for (i, c) in CANARIES.iter().enumerate() {
                    cmd.env(format!("LB_CANARY{}", i + 1), c);
                }
                let (code, out, err) = run(cmd
                    .args(["--log-format", format, "-vv", "--log-file", "log.txt"])
                    .args(args));
                assert_eq!(code, expect, "{args:?} {config:?}: {err}");
                assert!(!err.contains("panicked"), "{err}");
                outputs.push(format!("{out}\n{err}"));
            }
        };
    // A password in a URL on the command line: refused connection, and a
    // warning that `ps` shows it.
    run_case(
        &mut outputs,
        &[
            "backup",
            &format!("postgres://app:{}@127.0.0.1:1/shop", CANARIES[0]),
            "--to",
            "b",
        ],
        None,
        2,
    );
    assert!(
        outputs.last().unwrap().contains("PGPASSFILE"),
        "no warning about the password on the command line"
    );
    run_case(
        &mut outputs,
        &[
            "backup",
            "sqlite:app.db",
            "--to",
            &format!("s3://bucket/x?secret_access_key={}", CANARIES[1]),
        ],
        None,
        64,
    );
    run_case(
        &mut outputs,
        &[
            "backup",
            "--level",
            &format!("postgres://u:{}@h/db", CANARIES[2]),
            "sqlite:app.db",
            "--to",
            "b",
        ],
        None,
        64,
    );
    let webhook = format!("webhook = \"{}/hook/${{LB_CANARY9}}\"\n", hook.url());
    for (config, expect) in [
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\nthreads = \"${LB_CANARY4}\"\n".to_string(),
            78,
        ),
        (
            format!(
                "source = \"sqlite:app.db\"\nsink = \"s3://bucket/x\"\n[sink_options]\nendpoint = \"http://127.0.0.1:1\"\nmax_retries = 0\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"${{LB_CANARY5}}\"\n[notify]\n{webhook}"
            ),
            3,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[retention]\nkeep_days = \"${LB_CANARY6}\"\n"
                .to_string(),
            78,
        ),
        (
            "source = \"sqlite:app.db\"\nsink = \"b\"\nmin_size = \"${LB_CANARY7}\"\n".to_string(),
            78,
        ),
        (
            format!(
                "source = \"postgres://app:${{LB_CANARY8}}@127.0.0.1:1/db\"\nsink = \"b\"\n[notify]\n{webhook}"
            ),
            2,
        ),
    ] {
        run_case(&mut outputs, &["backup"], Some(config), expect);
    }
    let log = std::fs::read_to_string(d.join("log.txt")).unwrap();
    assert!(log.contains("summary"), "the log file was written");
    outputs.push(log);
    let requests = hook.requests();
    assert!(requests.len() >= 2, "the webhook was called: {requests:?}");
    for r in &requests {
        outputs.push(r.body.clone());
    }
    let mut found = Vec::new();
    for o in &outputs {
        for c in CANARIES {
            if o.contains(c) {
                found.push(format!("{c} in: {}", &o[..o.len().min(2000)]));
            }
        }
    }
    assert!(found.is_empty(), "secrets echoed: {found:#?}");
}

/// Numbers that overflow are usage (64) or config (78) errors, never a
/// panic or a wrap-around.
#[test]
fn huge_numbers_are_refused_not_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_backup(d, 100);
    let flag_cases: Vec<Vec<&str>> = vec![
        vec!["prune", "--from", "b", "--keep-days", "4000000000"],
        vec!["prune", "--from", "b", "--keep-last", "0"],
        vec!["status", "--from", "b", "--max-age", "18446744073709551615"],
        vec![
            "status",
            "--from",
            "b",
            "--max-age",
            "99999999999999999999999d",
        ],
        vec!["status", "--from", "b", "--max-age", "9999999999999999d"],
        vec!["status", "--from", "b", "--max-size-drop", "NaN"],
        vec!["status", "--from", "b", "--max-size-drop", "-3"],
        vec![
            "backup",
            "sqlite:app.db",
            "--to",
            "b",
            "--threads",
            "4000000000",
        ],
        vec![
            "backup",
            "sqlite:app.db",
            "--to",
            "b",
            "--min-size",
            "99999999999999999999999 GiB",
        ],
        vec![
            "backup",
            "sqlite:app.db",
            "--to",
            "b",
            "--level",
            "2147483647",
        ],
        vec![
            "backup",
            "postgres://h/db",
            "--to",
            "b",
            "--jobs",
            "4000000000",
        ],
        vec![
            "backup",
            "postgres://h/db",
            "--to",
            "b",
            "--max-replica-lag",
            "18446744073709551615s",
        ],
    ];
    for args in &flag_cases {
        let (code, _, err) = run(lifeboat(d).args(args));
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let config_cases = [
        "[retention]\nkeep_last = 1\nincomplete_grace = \"999999999999d\"\n",
        "[retention]\nkeep_last = 1\nincomplete_grace = 18446744073709551615\n",
        "[retention]\nkeep_days = 4000000000\n",
        "[retries]\nattempts = 4294967295\n",
        "[retries]\nbackoff = nan\n",
        "[retries]\ninterval = \"99999999999999d\"\n",
        "[health]\nmax_age = \"18446744073709551615\"\n",
        "[sink_options]\npart_size = 18446744073709551615\n",
        "[sink_options]\nupload_concurrency = 1000000\n",
        "threads = 4000000000\n",
        "min_size = \"1e400 GiB\"\n",
        "[postgres]\njobs = 100000\n",
    ];
    for c in config_cases {
        std::fs::write(
            d.join("lifeboat.toml"),
            format!("source = \"sqlite:app.db\"\nsink = \"b\"\n{c}"),
        )
        .unwrap();
        for verb in [vec!["prune"], vec!["status"], vec!["backup"]] {
            let (code, _, err) = run(lifeboat(d).args(&verb));
            assert_eq!(code, 78, "{c} {verb:?}: {err}");
            assert!(!err.contains("panicked"), "{c}: {err}");
        }
    }
}

/// The bucket explains itself: with nothing but the manifest, `aws`,
/// `sha256sum`, `zstd` and `sqlite3`, a backup restores.
#[test]
fn a_backup_restores_by_hand_from_its_manifest() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("byhand");
    create_s3_bucket(&ep, &bucket);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample_db(&d.join("app.db"), 3000);
    s3_config(d, &bucket, &ep, "");
    let (code, out, err) = run(lifeboat(d).args(["backup", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &v[0]["manifest"];
    assert_eq!(m["artifact"]["format"], "sqlite3 database file");
    let st = &m["storage"];
    assert_eq!(st["prefix"], "prod");
    let key = st["artifact_bucket_key"].as_str().unwrap();
    assert!(key.starts_with("prod/app/backups/"), "{key}");
    let steps: Vec<&str> = st["manual_restore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        steps[0].contains(&format!("aws s3 cp s3://{bucket}/{key}")),
        "{steps:?}"
    );
    assert!(steps.iter().any(|s| s.contains("zstd -d")), "{steps:?}");
    // Follow them.
    let sh = |cmd: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .current_dir(d)
            .env("AWS_ENDPOINT_URL", &ep)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    sh(&format!(
        "aws s3 cp s3://{bucket}/{key} data.sqlite.zst --only-show-errors"
    ));
    let sum = sh("sha256sum data.sqlite.zst");
    assert!(
        sum.starts_with(m["artifact"]["sha256"].as_str().unwrap()),
        "{sum}"
    );
    sh("zstd -q -d data.sqlite.zst -o by-hand.db");
    assert_eq!(
        sh("sqlite3 by-hand.db 'PRAGMA integrity_check'").trim(),
        "ok"
    );
    for t in m["fingerprint"]["tables"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let n = sh(&format!(
            "sqlite3 by-hand.db 'SELECT count(*) FROM \"{name}\"'"
        ));
        assert_eq!(n.trim(), t["rows"].to_string(), "{name}");
    }
    let guide = sh(&format!(
        "aws s3 cp s3://{bucket}/prod/app/restore.md - --only-show-errors"
    ));
    assert!(
        guide.contains("manual_restore") && guide.contains("manifest.json"),
        "{guide}"
    );
}

/// `kill -9` in the middle of a backup leaves an open multipart upload (S3)
/// or a hidden partial file (local) and, for a copied snapshot, a temp dir:
/// `list --json` reports them, `prune` (and the next backup) remove them
/// after the grace period.
#[test]
fn what_a_kill_9_leaves_is_reported_and_removed() {
    let Some(ep) = s3_endpoint() else { return };
    for sink_kind in ["s3", "file"] {
        let bucket = unique_bucket("killed");
        create_s3_bucket(&ep, &bucket);
        let proxy = FaultyHttp::start(
            &ep,
            vec![Rule::new(
                "PUT",
                "partNumber=",
                Action::Delay(std::time::Duration::from_millis(1500)),
                1000,
            )],
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        sample_db(&d.join("app.db"), 400_000);
        std::fs::create_dir(d.join("tmp")).unwrap();
        let sink = match sink_kind {
            "s3" => format!("s3://{bucket}/prod"),
            _ => "file:backups".to_string(),
        };
        std::fs::write(
            d.join("lifeboat.toml"),
            format!(
                "source = \"sqlite:app.db\"\nsink = \"{sink}\"\ntemp_dir = \"tmp\"\n[retention]\nkeep_last = 3\nincomplete_grace = \"0s\"\n[sink_options]\nendpoint = \"{}\"\nupload_concurrency = 1\npart_size = 5242880\n",
                proxy.url()
            ),
        )
        .unwrap();
        // A reader on an old snapshot makes the backup copy the database
        // into the temp dir (the WAL cannot be emptied).
        let reader = rusqlite::Connection::open(d.join("app.db")).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        reader
            .query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))
            .unwrap();
        let w = rusqlite::Connection::open(d.join("app.db")).unwrap();
        w.execute("INSERT INTO items (name) VALUES ('after the reader')", [])
            .unwrap();
        drop(w);
        let mut child = lifeboat(&d)
            .args(["backup", "--level", "1"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once its upload is under way.
        let t0 = std::time::Instant::now();
        loop {
            let uploading = match sink_kind {
                "s3" => proxy.injected() >= 1,
                _ => lifeboat_tests::support::all_files(&d.join("backups"))
                    .iter()
                    .any(|p| p.to_string_lossy().ends_with(".partial")),
            };
            if uploading {
                break;
            }
            assert!(
                t0.elapsed().as_secs() < 60,
                "{sink_kind}: the upload never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), None, "{sink_kind}: killed");
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);

        let listing = list_json(&d, &[]);
        let uploads = listing["leftovers"]["uploads"].as_array().unwrap();
        let local = listing["leftovers"]["local"].as_array().unwrap();
        assert_eq!(uploads.len(), 1, "{sink_kind}: {listing}");
        assert_eq!(uploads[0]["stale"], true, "{sink_kind}");
        assert!(
            uploads[0]["key"]
                .as_str()
                .unwrap()
                .ends_with("data.sqlite.zst")
        );
        assert_eq!(local.len(), 1, "{sink_kind}: the snapshot copy: {listing}");
        assert!(listing["complete"].as_array().unwrap().is_empty());

        let (code, out, err) = run(lifeboat(&d).args(["prune"]));
        assert_eq!(code, 0, "{sink_kind}: {err}");
        assert!(out.contains("removed"), "{sink_kind}: {out}");
        let listing = list_json(&d, &[]);
        assert!(
            listing["leftovers"]["uploads"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{listing}"
        );
        assert!(
            listing["leftovers"]["local"].as_array().unwrap().is_empty(),
            "{listing}"
        );
        assert!(std::fs::read_dir(d.join("tmp")).unwrap().next().is_none());
        match sink_kind {
            "s3" => {
                let (_, uploads) = http("GET", &format!("{ep}/{bucket}?uploads"), b"");
                assert!(!uploads.contains("<UploadId>"), "{uploads}");
            }
            _ => {
                let left = lifeboat_tests::support::all_files(&d.join("backups"));
                assert!(left.is_empty(), "{left:?}");
                let dirs: Vec<_> = std::fs::read_dir(d.join("backups"))
                    .map(|r| r.flatten().collect())
                    .unwrap_or_default();
                assert!(dirs.is_empty(), "empty directories left: {dirs:?}");
            }
        }
    }
}

/// `rm app.db; lifeboat restore --to sqlite:app.db`: the deleted database's
/// `-wal` is still there, and SQLite would replay it onto the restored file.
/// It is moved aside first, so the restored database is exactly the backup.
#[test]
fn a_deleted_databases_leftover_wal_never_meets_the_restored_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_backup(d, 500);
    // Another database's WAL, full of committed frames, left at the path.
    live_db(&d.join("other.db"), 50);
    std::fs::copy(d.join("other.db-wal"), d.join("target.db-wal")).unwrap();
    assert!(!d.join("target.db").exists());
    let (code, _, err) = run(lifeboat(d).args([
        "restore",
        "--from",
        "b",
        "--latest",
        "--to",
        "sqlite:target.db",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        !d.join("target.db-wal").exists()
            || std::fs::metadata(d.join("target.db-wal")).unwrap().len() == 0
    );
    assert!(
        d.join("target.db-wal.lifeboat-old").exists(),
        "set aside, not deleted"
    );
    let c = rusqlite::Connection::open(d.join("target.db")).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(rows(&d.join("target.db")), 500);
}
