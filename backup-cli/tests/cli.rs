//! The `lifeboat` binary as a user runs it: exit codes, one-line errors,
//! nothing half-done left visible, logs, locks, config files.

mod common;

use common::{error_line, lifeboat, run};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_tests::support::{
    all_files, create_s3_bucket, s3_endpoint, s3_keys, sample_db, unique_bucket,
};

#[test]
fn backup_list_verify_restore_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sample_db(&db, 2_000);
    let sink = format!("file://{}/backups", dir.path().display());
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "backup",
        &format!("sqlite://{}", db.display()),
        "--to",
        &sink,
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verified"), "{out}");
    // Piped stderr: log lines only, no progress bar redraws.
    assert!(
        !err.contains('\r') && !err.contains("[="),
        "progress bar drawn when piped: {err}"
    );
    assert!(
        err.lines().all(|l| l.starts_with("20") && l.contains("Z ")),
        "every log line has a UTC timestamp: {err}"
    );
    let (code, out, _) = run(lifeboat(dir.path()).args(["list", "--from", &sink]));
    assert_eq!(code, 0);
    assert!(out.contains("app") && out.contains("checked"), "{out}");
    let (code, out, err) = run(lifeboat(dir.path()).args(["verify", "--from", &sink, "--latest"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sqlite-integrity"), "{out}");
    let target = dir.path().join("restored.db");
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        &sink,
        "--latest",
        "--to",
        &format!("sqlite://{}", target.display()),
    ]));
    assert_eq!(code, 0, "{err}");
    let c = rusqlite::Connection::open(&target).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2_000);
}

#[test]
fn missing_database_exits_2_creates_nothing_and_leaves_no_backup() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        "sqlite:///nonexistent/dir/app.db",
        "--to",
        "out",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("does not exist"), "{err}");
    assert!(!Path::new("/nonexistent/dir/app.db").exists());
    assert!(all_files(&dir.path().join("out")).is_empty());
}

#[test]
fn a_file_that_is_not_sqlite_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("notes.db"),
        "just some text, certainly no database header here",
    )
    .unwrap();
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["backup", "sqlite:notes.db", "--to", "out"]));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("not a SQLite database"), "{err}");
    assert!(all_files(&dir.path().join("out")).is_empty());
}

#[test]
fn unwritable_destination_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 100);
    // A regular file where a directory must be: not writable as a sink, even for root.
    std::fs::write(dir.path().join("blocker"), "x").unwrap();
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["backup", "sqlite:app.db", "--to", "blocker/backups"]));
    assert_eq!(code, 3, "{err}");
    assert!(error_line(&err).contains("blocker"), "{err}");
}

#[test]
fn unknown_schemes_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 100);
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["backup", "mysql://db/app", "--to", "out"]));
    assert_eq!(code, 64, "{err}");
    assert!(error_line(&err).contains("unknown source scheme"), "{err}");
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["backup", "sqlite:app.db", "--to", "ftp://host/x"]));
    assert_eq!(code, 64, "{err}");
    assert!(error_line(&err).contains("unknown sink scheme"), "{err}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn config_with_unknown_key_or_wrong_type_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[profiles.prod]\nsource = \"sqlite:app.db\"\nretain = 7\n",
    )
    .unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["--config", "bad.toml", "backup"]));
    assert_eq!(code, 78, "{err}");
    assert!(error_line(&err).contains("retain"), "{err}");
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        "compression_level = \"max\"\n",
    )
    .unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 78, "{err}");
    assert!(
        error_line(&err).contains("compression_level") || error_line(&err).contains("integer"),
        "{err}"
    );
}

#[test]
fn config_profiles_with_env_interpolation_drive_every_command() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("prod.db"), 500);
    sample_db(&dir.path().join("staging.db"), 50);
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        "sink = \"file://${BACKUP_ROOT}/all\"\n\
         [profiles.prod]\nsource = \"sqlite:prod.db\"\nmin_size = \"1 KiB\"\n\
         [profiles.staging]\nsource = \"sqlite:staging.db\"\nname = \"stage\"\n",
    )
    .unwrap();
    let with_env = |args: &[&str]| {
        run(lifeboat(dir.path())
            .env("BACKUP_ROOT", dir.path())
            .args(args))
    };
    let (code, _, err) = with_env(&["backup"]);
    assert_eq!(code, 78, "several profiles and none chosen: {err}");
    for p in ["prod", "staging"] {
        let (code, _, err) = with_env(&["--profile", p, "backup"]);
        assert_eq!(code, 0, "{p}: {err}");
    }
    let (code, out, _) = with_env(&["--profile", "staging", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("stage") && !out.contains("prod "), "{out}");
    let (code, _, err) = with_env(&["--profile", "prod", "verify"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        run(lifeboat(dir.path())
            .env_remove("BACKUP_ROOT")
            .args(["--profile", "prod", "list"]));
    assert_eq!(code, 78, "{err}");
    assert!(error_line(&err).contains("BACKUP_ROOT"), "{err}");
}

#[test]
fn restore_onto_an_existing_database_exits_5_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 300);
    sample_db(&dir.path().join("live.db"), 3);
    let before = std::fs::read(dir.path().join("live.db")).unwrap();
    assert_eq!(
        run(lifeboat(dir.path()).args(["backup", "sqlite:app.db", "--to", "b"])).0,
        0
    );
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["restore", "--from", "b", "--to", "sqlite:live.db"]));
    assert_eq!(code, 5, "{err}");
    assert!(error_line(&err).contains("--force"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("live.db")).unwrap(), before);
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        "sqlite:live.db",
        "--force",
    ]));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_second_run_on_a_locked_source_exits_1_at_once_or_waits() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 100);
    // Hold the same lock the CLI takes, from this process.
    let source =
        backup_core::source_from_url(&format!("sqlite://{}/app.db", dir.path().display())).unwrap();
    let lock_path = backup_core::lock::lock_path(dir.path(), &source.location());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let guard = rt
        .block_on(backup_core::lock::acquire(
            &lock_path,
            backup_core::LockMode::FailFast,
        ))
        .unwrap();
    let t = Instant::now();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", "sqlite:app.db", "--to", "b"]));
    assert_eq!(code, 1, "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "did not fail at once");
    assert!(error_line(&err).contains("lock"), "{err}");
    let mut waiting = lifeboat(dir.path())
        .args(["backup", "sqlite:app.db", "--to", "b", "--wait"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(waiting.try_wait().unwrap().is_none(), "--wait did not wait");
    drop(guard);
    assert_eq!(waiting.wait().unwrap().code(), Some(0));
}

#[test]
fn json_logs_end_with_one_summary_record() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 300);
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "--log-format",
        "json",
        "backup",
        "sqlite:app.db",
        "--to",
        "b",
    ]));
    assert_eq!(code, 0, "{err}");
    let records: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let summaries: Vec<_> = records.iter().filter(|r| r["summary"] == true).collect();
    assert_eq!(summaries.len(), 1, "{err}");
    let s = summaries[0];
    for field in [
        "backup_id",
        "file",
        "size",
        "location",
        "duration_ms",
        "verdicts",
    ] {
        assert!(!s[field].is_null(), "summary lacks {field}: {s}");
    }
    assert!(s["verdicts"].as_str().unwrap().contains("checksum:pass"));
    assert!(
        s["timestamp"].as_str().unwrap().ends_with('Z'),
        "timestamps are UTC: {s}"
    );

    let (code, _, err) = run(lifeboat(dir.path()).args([
        "--log-format",
        "json",
        "backup",
        "sqlite:missing.db",
        "--to",
        "b",
    ]));
    assert_eq!(code, 2);
    let last: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(last["summary"], true);
    assert_eq!(last["exit_code"], 2);
    assert_eq!(last["error_kind"], "source");
}

#[test]
fn help_explains_each_verb_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for verb in [
        "backup", "list", "verify", "drill", "restore", "prune", "status",
    ] {
        let (code, out, _) = run(lifeboat(dir.path()).args([verb, "--help"]));
        assert_eq!(code, 0);
        assert!(
            out.contains("Examples:") && out.contains(&format!("lifeboat {verb}")),
            "{verb}: {out}"
        );
    }
    let (code, out, _) = run(lifeboat(dir.path()).arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes"), "{out}");
}

/// Each verb offers only the flags it uses, and refuses the others (64)
/// instead of ignoring them.
#[test]
fn each_verb_offers_only_its_own_flags() {
    let dir = tempfile::tempdir().unwrap();
    let help = |verb: &str| run(lifeboat(dir.path()).args([verb, "--help"])).1;
    let cases: [(&str, &[&str], &[&str]); 5] = [
        (
            "backup",
            &[
                "--to",
                "--schema",
                "--exclude-table",
                "--globals",
                "--lock-wait",
                "--no-drill",
                "--drill-cluster",
            ],
            &["--no-owner", "--force", "--partial", "--latest", "--from"],
        ),
        (
            "restore",
            &[
                "--from",
                "--to",
                "--latest",
                "--force",
                "--globals",
                "--no-owner",
                "--jobs",
                "--partial",
                "--no-analyze",
            ],
            &[
                "--schema",
                "--exclude-table",
                "--max-replica-lag",
                "--lock-wait",
                "--min-tables",
                "--drill",
            ],
        ),
        (
            "verify",
            &[
                "--from",
                "--latest",
                "--min-size",
                "--drill",
                "--drill-server",
                "--min-tables",
            ],
            &[
                "--schema",
                "--exclude-table",
                "--globals",
                "--max-replica-lag",
                "--lock-wait",
                "--no-owner",
                "--force",
            ],
        ),
        (
            "drill",
            &[
                "--from",
                "--latest",
                "--drill-server",
                "--drill-cluster",
                "--jobs",
                "--pg-bin-dir",
            ],
            &[
                "--schema",
                "--globals",
                "--force",
                "--min-size",
                "--no-drill",
            ],
        ),
        (
            "list",
            &["--from", "--source", "--json"],
            &["--latest", "--schema", "--to"],
        ),
    ];
    for (verb, offered, absent) in cases {
        let text = help(verb);
        for f in offered {
            assert!(
                text.contains(&format!("{f} "))
                    || text.contains(&format!("{f}\n"))
                    || text.contains(&format!("{f} <")),
                "{verb} lacks {f}: {text}"
            );
        }
        for f in absent {
            assert!(
                !text.contains(&format!("  {f} "))
                    && !text.contains(&format!("{f} <"))
                    && !text.contains(&format!("{f}\n")),
                "{verb} offers {f}: {text}"
            );
        }
    }
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "file:///x",
        "--to",
        "sqlite:a.db",
        "--schema",
        "public",
    ]));
    assert_eq!(code, 64, "{err}");
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["backup", "sqlite:a.db", "--to", "b", "--no-owner"]));
    assert_eq!(code, 64, "{err}");
}

#[test]
fn interrupted_backup_exits_130_and_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("big.db"), 400_000);
    let mut child = lifeboat(dir.path())
        .args([
            "backup",
            "sqlite:big.db",
            "--to",
            "b",
            "--level",
            "19",
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "backup finished before the interrupt; make it bigger"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = all_files(&dir.path().join("b"));
    assert!(left.is_empty(), "left behind: {left:?}");
    let (_, listing, _) = run(lifeboat(dir.path()).args(["list", "--from", "b"]));
    assert!(listing.contains("no complete backups"), "{listing}");
}

#[test]
fn s3_missing_bucket_exits_3_and_no_object_is_left() {
    let Some(ep) = s3_endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 100);
    let (code, _, err) = run(lifeboat(dir.path()).env("AWS_ENDPOINT_URL", &ep).args([
        "backup",
        "sqlite:app.db",
        "--to",
        "s3://lifeboat-no-such-bucket/x",
    ]));
    assert_eq!(code, 3, "{err}");
    assert!(error_line(&err).contains("bucket does not exist"), "{err}");
}

#[test]
fn s3_backup_through_the_cli_lands_data_and_manifest_only() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("cli");
    create_s3_bucket(&ep, &bucket);
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 1000);
    let sink = format!("s3://{bucket}/prod");
    let (code, _, err) = run(lifeboat(dir.path()).env("AWS_ENDPOINT_URL", &ep).args([
        "backup",
        "sqlite:app.db",
        "--to",
        &sink,
    ]));
    assert_eq!(code, 0, "{err}");
    let keys = s3_keys(&ep, &bucket);
    assert_eq!(keys.len(), 3, "data, manifest, restore guide: {keys:?}");
    assert!(keys.iter().any(|k| k == "prod/app/restore.md"), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.ends_with("/manifest.json"))
            && keys.iter().any(|k| k.ends_with("/data.sqlite.zst"))
    );
    let (code, _, err) = run(lifeboat(dir.path())
        .env("AWS_ENDPOINT_URL", &ep)
        .args(["verify", "--from", &sink, "--latest"]));
    assert_eq!(code, 0, "{err}");
}

/// A moto server that enforces authentication (IAM keys must exist).
struct AuthMoto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for AuthMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_auth_moto() -> Option<AuthMoto> {
    s3_endpoint()?; // only where the test servers are available
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server on PATH (scripts/test puts .venv/bin there)");
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto with auth did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(AuthMoto { child, endpoint })
}

#[test]
fn wrong_credentials_exit_3_and_the_secret_never_appears() {
    let Some(moto) = start_auth_moto() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 100);
    let secret = "wJalrXUtnFEMI-very-secret-value";
    let (code, out, err) = run(lifeboat(dir.path())
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .args([
            "-v",
            "backup",
            "sqlite:app.db",
            "--to",
            "s3://some-bucket/x",
        ]));
    assert_eq!(code, 3, "{err}");
    assert!(error_line(&err).contains("credentials"), "{err}");
    assert!(
        !err.contains(secret) && !out.contains(secret),
        "secret leaked"
    );
    let _ = s3_keys; // listing needs credentials here; the run failed before any upload
}
