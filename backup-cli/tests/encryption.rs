//! age encryption end to end: backups (SQLite, logical and physical
//! PostgreSQL, their globals) and WAL encrypted to several recipients, read
//! back with an identity file, and opened by the real `age` and `zstd`
//! command-line tools.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{lifeboat, run};
use lifeboat_tests::pg::{PgCluster, chown_to_server_user, default_bin};
use lifeboat_tests::support::{age_keygen as keygen, all_files, sample_db};

/// `age -d -i identity FILE | zstd -d`, with the real tools.
fn age_zstd(identity: &Path, file: &Path) -> Vec<u8> {
    let mut age = Command::new("age")
        .args(["-d", "-i"])
        .arg(identity)
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("age runs");
    let out = Command::new("zstd")
        .args(["-d", "-c"])
        .stdin(age.stdout.take().unwrap())
        .output()
        .expect("zstd runs");
    assert!(age.wait().unwrap().success(), "age -d failed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Wait until the server has archived `n` files, none failing.
fn archived(c: &PgCluster, n: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.psql(
        "postgres",
        &format!("SELECT archived_count >= {n} FROM pg_stat_archiver"),
    ) != "t"
    {
        assert!(std::time::Instant::now() < deadline, "{}", c.log_tail(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        c.psql("postgres", "SELECT failed_count FROM pg_stat_archiver"),
        "0",
        "{}",
        c.log_tail(20)
    );
}

fn manifest_of(root: &Path) -> serde_json::Value {
    let m = all_files(root)
        .into_iter()
        .find(|p| p.file_name().unwrap() == "manifest.json")
        .expect("a manifest");
    serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap()
}

fn count(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sqlite_backups_encrypt_to_every_recipient_and_decrypt_with_age_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sample_db(&db, 2000);
    let (a_pub, a_key) = keygen(dir.path(), "a.key");
    let (b_pub, b_key) = keygen(dir.path(), "b.key");
    let (_, stranger) = keygen(dir.path(), "c.key");
    let list = dir.path().join("recipients.txt");
    std::fs::write(&list, format!("# the ops team\n{b_pub}\n")).unwrap();
    let root = dir.path().join("backups");
    let sink = format!("file://{}", root.display());
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &format!("sqlite://{}", db.display()),
        "--to",
        &sink,
        "--recipient",
        &a_pub,
        "--recipients-file",
        list.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    // No key, public or secret, in the log.
    assert!(
        !err.contains(&a_pub) && !err.contains("AGE-SECRET"),
        "{err}"
    );
    let m = manifest_of(&root);
    let enc = &m["artifact"]["encryption"];
    assert_eq!(enc["scheme"], "age", "{m}");
    assert_eq!(enc["recipients"].as_array().unwrap().len(), 2, "{m}");
    let data = root.join(m["artifact"]["key"].as_str().unwrap());
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Each recipient opens it with the real tools: age, then zstd.
    for key in [&a_key, &b_key] {
        let restored = dir.path().join(format!(
            "by-{}.db",
            key.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&restored, age_zstd(key, &data)).unwrap();
        assert_eq!(count(&restored), 2000);
    }
    // lifeboat restore: without an identity, a config error naming the
    // flag; with a stranger's, one naming both sides' fingerprints.
    let to = format!("sqlite://{}", dir.path().join("r.db").display());
    let restore = |extra: &[&str]| {
        run(lifeboat(dir.path())
            .args(["restore", "--from", &sink, "--to", &to])
            .args(extra))
    };
    let (code, _, err) = restore(&[]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("--identity"), "{err}");
    let (code, _, err) = restore(&["--identity", stranger.to_str().unwrap()]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("encrypted to sha256:"), "{err}");
    assert!(!dir.path().join("r.db").exists());
    let (code, _, err) = restore(&["--identity", b_key.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&dir.path().join("r.db")), 2000);
    // verify and drill read it with the identity from lifeboat.toml.
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        format!(
            "[encryption]\nrecipients = [\"{a_pub}\"]\nidentity_file = \"{}\"\n",
            a_key.display()
        ),
    )
    .unwrap();
    // Until a recipient's key has opened the newest backup, status says
    // so (a lost key is found before the restore that needs it).
    let status = || run(lifeboat(dir.path()).args(["status", "--from", &sink]));
    let (code, out, err) = status();
    assert_eq!(code, 6, "{out}{err}");
    assert!(err.contains("no identity has proven"), "{err}");
    for cmd in ["verify", "drill"] {
        let (code, out, err) = run(lifeboat(dir.path()).args([cmd, "--from", &sink, "--json"]));
        assert_eq!(code, 0, "{cmd}: {out}{err}");
    }
    let (code, out, err) = status();
    assert_eq!(code, 0, "{out}{err}");
    // A backup from the config's recipients alone.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &format!("sqlite://{}", db.display()),
        "--to",
        &format!("file://{}", dir.path().join("second").display()),
    ]));
    assert_eq!(code, 0, "{err}");
    let m = manifest_of(&dir.path().join("second"));
    assert_eq!(
        m["artifact"]["encryption"]["recipients"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{m}"
    );
    // A recipient that is not an age key: refused before anything runs.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &format!("sqlite://{}", db.display()),
        "--to",
        &format!("file://{}", dir.path().join("third").display()),
        "--recipient",
        "ssh-ed25519 AAAA",
    ]));
    assert_eq!(code, 78, "{err}");
    assert!(!dir.path().join("third").exists());
}

#[test]
fn postgres_logical_backups_and_their_globals_are_encrypted_and_drilled_before_commit() {
    let Some(bin) = default_bin() else { return };
    let c = PgCluster::start(&bin);
    c.psql(
        "postgres",
        "CREATE ROLE app_reader LOGIN PASSWORD 'hunter2-canary'; CREATE DATABASE app; ",
    );
    c.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 5000) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let (a_pub, a_key) = keygen(dir.path(), "a.key");
    let root = dir.path().join("b");
    let sink = format!("file://{}", root.display());
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "backup",
        &c.url("app"),
        "--to",
        &sink,
        "--globals",
        "--recipient",
        &a_pub,
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The drill before the commit read the encrypted copy back (with the
    // run's own key) and restored it.
    assert!(
        out[0]["manifest"]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["verifier"].as_str().unwrap().contains("drill") && v["passed"] == true),
        "{out}"
    );
    let m = &out[0]["manifest"];
    assert_eq!(m["artifact"]["encryption"]["scheme"], "age", "{m}");
    let globals = m["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "globals")
        .unwrap();
    assert_eq!(globals["encryption"]["scheme"], "age", "{m}");
    // The globals hold password hashes: encrypted, so not readable as is,
    // and readable through age and zstd.
    let gpath = root.join(globals["key"].as_str().unwrap());
    let raw = std::fs::read(&gpath).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1"));
    let sql = String::from_utf8(age_zstd(&a_key, &gpath)).unwrap();
    assert!(sql.contains("app_reader"), "{sql}");
    // The dump itself: pg_restore lists what age and zstd give back.
    let dump = dir.path().join("app.dump");
    std::fs::write(
        &dump,
        age_zstd(&a_key, &root.join(m["artifact"]["key"].as_str().unwrap())),
    )
    .unwrap();
    let listed = Command::new(bin.join("pg_restore"))
        .arg("-l")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("TABLE DATA public t"));
    // Restore with the identity, globals included.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        &sink,
        "--to",
        &c.url("app_copy"),
        "--globals",
        "--identity",
        a_key.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(c.psql("app_copy", "SELECT count(*) FROM t"), "5000");
}

/// A physical base backup and the WAL archive, both encrypted; the restore
/// hands the identity file to the server's `wal fetch`, and recovery gets
/// to the end of the archive.
#[test]
fn encrypted_wal_and_base_backups_recover_with_the_identity() {
    let Some(bin) = default_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_to_server_user(dir.path());
    let (a_pub, a_key) = keygen(dir.path(), "a.key");
    // The server's restore_command reads it as the postgres user.
    chown_to_server_user(&a_key);
    let root = dir.path().join("archive");
    let sink = format!("file://{}", root.display());
    let c = PgCluster::start_with_conf(
        &bin,
        &format!(
            "archive_mode = on\narchive_command = '{} wal push %p --to {sink} --name app --recipient {a_pub}'\n",
            env!("CARGO_BIN_EXE_lifeboat")
        ),
    );
    c.psql(
        "postgres",
        "CREATE TABLE marker (id int); INSERT INTO marker VALUES (1); SELECT pg_switch_wal();",
    );
    // The server creates the archive's directories as its own user first.
    archived(&c, 1);
    let work = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(work.path()).args([
        "backup",
        &c.url("postgres"),
        "--physical",
        "--to",
        &sink,
        "--name",
        "app",
        "--recipient",
        &a_pub,
    ]));
    assert_eq!(code, 0, "{err}");
    c.psql(
        "postgres",
        "INSERT INTO marker VALUES (2); SELECT pg_logical_emit_message(false, 't', 'x'); SELECT pg_switch_wal();",
    );
    // The archive has the segment with row 2.
    archived(&c, 4);
    // Archived segments are encrypted after their metadata frame.
    let seg = all_files(&root)
        .into_iter()
        .find(|p| {
            p.to_string_lossy().contains("/wal/00000001/")
                && p.to_string_lossy().ends_with("0000000000000001.zst")
        })
        .expect("segment 1 archived");
    let stored = std::fs::read(&seg).unwrap();
    let frame = 8 + u32::from_le_bytes(stored[4..8].try_into().unwrap()) as usize;
    assert!(stored[frame..].starts_with(b"age-encryption.org/v1"));
    // Without the identity, wal fetch stops recovery (200), never "not found".
    let (code, _, _) = run(lifeboat(work.path()).args([
        "wal",
        "fetch",
        "000000010000000000000001",
        work.path().join("x").to_str().unwrap(),
        "--from",
        &sink,
        "--name",
        "app",
    ]));
    assert_eq!(code, 200);
    let mut restored = PgCluster::empty(&bin);
    let port = restored.pick_port().to_string();
    let (code, out, err) = run(lifeboat(work.path()).args([
        "restore",
        "--from",
        &sink,
        "--source",
        "app",
        "--to",
        &format!("pgdata://{}", restored.data_dir().display()),
        "--identity",
        a_key.to_str().unwrap(),
        "--target-action",
        "promote",
        "--start",
        "--port",
        &port,
        "--json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let auto = std::fs::read_to_string(restored.data_dir().join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("--identity"), "{auto}");
    assert_eq!(
        restored
            .try_psql_tcp(
                "postgres",
                None,
                "postgres",
                "SELECT string_agg(id::text, ',' ORDER BY id) FROM marker"
            )
            .unwrap(),
        "1,2"
    );
}
