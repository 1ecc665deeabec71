//! Running unattended: status and its exit 6, metrics, notifications,
//! retries through a fault-injecting proxy, schedules, init, log files.

mod common;

use common::{lifeboat, run};

use std::path::Path;
use std::sync::Arc;

use lifeboat_tests::http::{FaultProxy, Faults, Recorder};
use lifeboat_tests::support::{
    all_files, create_s3_bucket, http, s3_endpoint, s3_keys, sample_db, unique_bucket,
};

/// A backup of `db` into `sink_dir` recorded as taken `hours_ago`.
fn backup_at(db: &Path, sink_dir: &Path, lock_dir: &Path, hours_ago: i64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
    rt.block_on(
        backup_core::BackupJob::new(
            Arc::new(backup_core::SqliteSource::new(db)),
            Arc::new(backup_core::LocalSink::new(sink_dir).unwrap()),
        )
        .lock_dir(lock_dir)
        .clock(Arc::new(move || t))
        .run(),
    )
    .unwrap();
}

#[test]
fn a_stale_newest_backup_is_unhealthy_exits_6_and_sends_one_slack_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sample_db(&db, 200);
    let slack = Recorder::start(200);
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        format!(
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[health]\nmax_age = \"26h\"\n[notify]\nslack_webhook = \"{}/services/T000/B000/XXXX\"\n",
            slack.url()
        ),
    )
    .unwrap();
    backup_at(&db, &dir.path().join("b"), dir.path(), 30);
    let (code, out, err) = run(lifeboat(dir.path()).args(["status"]));
    assert_eq!(code, 6, "{out}{err}");
    assert!(
        out.contains("UNHEALTHY") && out.contains("1d 6h old"),
        "{out}"
    );
    let msgs = slack.requests();
    assert_eq!(msgs.len(), 1, "exactly one Slack message: {msgs:?}");
    let body: serde_json::Value = serde_json::from_str(&msgs[0].body).unwrap();
    assert_eq!(body["attachments"][0]["color"], "danger");
    assert!(
        body["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("old"),
        "{body}"
    );
    assert!(
        !err.contains("XXXX"),
        "the webhook URL (a secret) was logged"
    );

    // A fresh backup makes it healthy again, silently.
    backup_at(&db, &dir.path().join("b"), dir.path(), 1);
    let (code, out, _) = run(lifeboat(dir.path()).args(["status"]));
    assert_eq!(code, 0, "{out}");
    assert_eq!(slack.requests().len(), 1, "no message when healthy");
    let (code, prom, _) = run(lifeboat(dir.path()).args(["status", "--format", "prometheus"]));
    assert_eq!(code, 0);
    assert!(
        prom.contains("lifeboat_healthy{source=\"app\"} 1"),
        "{prom}"
    );
    let (code, json, _) = run(lifeboat(dir.path()).args(["status", "--format", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["backups"], 2);
}

#[test]
fn a_size_drop_beyond_the_limit_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sample_db(&db, 20_000);
    backup_at(&db, &dir.path().join("b"), dir.path(), 2);
    // A mass delete.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("DELETE FROM items WHERE id > 100; VACUUM;")
        .unwrap();
    drop(c);
    backup_at(&db, &dir.path().join("b"), dir.path(), 1);
    let (code, out, _) =
        run(lifeboat(dir.path()).args(["status", "--from", "b", "--max-size-drop", "0.5"]));
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("shrank"), "{out}");
}

#[test]
fn metrics_land_atomically_and_the_last_success_survives_a_failed_run() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 200);
    std::fs::create_dir(dir.path().join("textfile")).unwrap();
    let gateway = Recorder::start(200);
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        format!(
            "source = \"sqlite:app.db\"\nsink = \"b\"\n[metrics]\ntextfile_dir = \"textfile\"\npushgateway = \"{}\"\n",
            gateway.url()
        ),
    )
    .unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 0, "{err}");
    let prom = std::fs::read_to_string(dir.path().join("textfile/lifeboat_app.prom")).unwrap();
    assert!(
        prom.contains("lifeboat_last_run_success{source=\"app\"} 1"),
        "{prom}"
    );
    let success_line = prom
        .lines()
        .find(|l| l.starts_with("lifeboat_last_success_timestamp_seconds"))
        .unwrap()
        .to_string();
    assert!(prom.contains("lifeboat_last_backup_size_bytes"), "{prom}");
    let pushed = gateway.requests();
    assert_eq!(pushed.len(), 1);
    assert_eq!(
        (pushed[0].method.as_str(), pushed[0].path.as_str()),
        ("PUT", "/metrics/job/lifeboat/source/app")
    );
    // Now the database is gone: the run fails, the last success stays.
    std::fs::remove_file(dir.path().join("app.db")).unwrap();
    let (code, _, _) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 2);
    let prom = std::fs::read_to_string(dir.path().join("textfile/lifeboat_app.prom")).unwrap();
    assert!(
        prom.contains("lifeboat_last_run_success{source=\"app\"} 0"),
        "{prom}"
    );
    assert!(prom.contains(&success_line), "last success lost: {prom}");
    let stray: Vec<_> = std::fs::read_dir(dir.path().join("textfile"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(stray.len(), 1, "temp files left: {stray:?}");
}

#[test]
fn failures_always_notify_successes_only_when_asked_and_a_broken_webhook_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 200);
    let hook = Recorder::start(200);
    let write_cfg = |on_success: bool, url: &str| {
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            format!("source = \"sqlite:app.db\"\nsink = \"b\"\n[notify]\nwebhook = \"{url}\"\non_success = {on_success}\n"),
        )
        .unwrap();
    };
    write_cfg(false, &hook.url());
    assert_eq!(run(lifeboat(dir.path()).args(["backup"])).0, 0);
    assert!(
        hook.requests().is_empty(),
        "success notified without on_success"
    );
    write_cfg(true, &hook.url());
    assert_eq!(run(lifeboat(dir.path()).args(["backup"])).0, 0);
    let ev: serde_json::Value = serde_json::from_str(&hook.requests()[0].body).unwrap();
    assert_eq!(
        (
            ev["command"].as_str(),
            ev["result"].as_str(),
            ev["source"].as_str()
        ),
        (Some("backup"), Some("ok"), Some("app"))
    );
    assert!(ev["details"]["backup_id"].is_string());
    let (code, _, _) = run(lifeboat(dir.path()).args(["backup", "sqlite:gone.db"]));
    assert_eq!(code, 2);
    let ev: serde_json::Value = serde_json::from_str(&hook.requests()[1].body).unwrap();
    assert_eq!(ev["result"], "failed");
    assert_eq!(ev["details"]["exit_code"], 2);
    // A webhook that answers 500 is logged; the backup still succeeds.
    let broken = Recorder::start(500);
    write_cfg(true, &broken.url());
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("notification was refused"), "{err}");
    assert_eq!(broken.requests().len(), 1);
}

#[test]
fn a_503_storm_and_a_dropped_connection_during_upload_are_survived_without_duplicates() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("storm");
    create_s3_bucket(&ep, &bucket);
    let proxy = FaultProxy::start(
        &ep,
        Faults {
            status_503: 4,
            drop_mid_upload: 1,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    // ~30 MB of rows, compressing to several 5 MiB parts.
    sample_db(&dir.path().join("app.db"), 400_000);
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        format!(
            "source = \"sqlite:app.db\"\nsink = \"s3://{bucket}/prod\"\n[sink_options]\nendpoint = \"{}\"\npart_size = 5242880\nmax_retries = 3\n[retries]\nattempts = 3\ninterval = 1\n",
            proxy.url()
        ),
    )
    .unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", "--level", "1"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(proxy.injected(), 5, "every planned fault was injected");
    let keys = s3_keys(&ep, &bucket);
    assert_eq!(
        keys.len(),
        3,
        "one data object, one manifest and the restore guide, nothing else: {keys:?}"
    );
    assert!(keys.iter().any(|k| k == "prod/app/restore.md"), "{keys:?}");
    let (status, uploads) = http("GET", &format!("{ep}/{bucket}?uploads"), b"");
    assert_eq!(status, 200);
    assert!(
        !uploads.contains("<UploadId>"),
        "an abandoned multipart upload is left: {uploads}"
    );
    let (code, _, err) = run(lifeboat(dir.path())
        .args([
            "verify",
            "--latest",
            "--from",
            &format!("s3://{bucket}/prod"),
        ])
        .env("AWS_ENDPOINT_URL", &ep));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn permanent_errors_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        "source = \"sqlite:missing.db\"\nsink = \"b\"\n[retries]\nattempts = 5\ninterval = 30\n",
    )
    .unwrap();
    let t = std::time::Instant::now();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 2);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "a missing database was retried"
    );
    assert!(!err.contains("retrying"), "{err}");
}

#[test]
fn prune_dry_run_lists_then_prune_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sample_db(&db, 100);
    for h in [72, 48, 24, 1] {
        backup_at(&db, &dir.path().join("b"), dir.path(), h);
    }
    let (code, out, err) =
        run(lifeboat(dir.path()).args(["prune", "--from", "b", "--keep-last", "2", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("would delete"))
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("no rule keeps it") && out.contains("keep_last 2"),
        "{out}"
    );
    let manifests = |d: &Path| {
        all_files(d)
            .iter()
            .filter(|p| p.ends_with("manifest.json"))
            .count()
    };
    assert_eq!(manifests(&dir.path().join("b")), 4);
    let (code, out, _) =
        run(lifeboat(dir.path()).args(["prune", "--from", "b", "--keep-last", "2"]));
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("deleted")).count(),
        2,
        "{out}"
    );
    assert_eq!(manifests(&dir.path().join("b")), 2);
    assert_eq!(
        all_files(&dir.path().join("b"))
            .iter()
            .filter(|p| p.to_string_lossy().contains("/backups/"))
            .count(),
        4,
        "data objects of pruned backups left"
    );
    let (code, _, err) = run(lifeboat(dir.path()).args(["prune", "--from", "b"]));
    assert_eq!(code, 64, "no rule: refuse: {err}");
}

#[test]
fn retention_after_backup_keeps_the_configured_number() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 100);
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        "source = \"sqlite:app.db\"\nsink = \"b\"\n[retention]\nafter_backup = true\nkeep_last = 2\n",
    )
    .unwrap();
    for _ in 0..4 {
        assert_eq!(run(lifeboat(dir.path()).args(["backup"])).0, 0);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let manifests = all_files(&dir.path().join("b"))
        .iter()
        .filter(|p| p.ends_with("manifest.json"))
        .count();
    assert_eq!(manifests, 2);
}

#[test]
fn schedule_prints_cron_lines_and_systemd_units_per_profile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        "[profiles.prod]\nsource = \"sqlite:prod.db\"\nsink = \"b\"\nschedule = \"daily 03:00\"\n\
         [profiles.staging]\nsource = \"sqlite:staging.db\"\nsink = \"b\"\nschedule = \"weekly sun 04:30\"\n",
    )
    .unwrap();
    let (code, out, err) = run(lifeboat(dir.path()).args(["schedule", "--cron"]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("0 3 * * * ")
            && lines[0].contains("--profile prod backup &&")
            && lines[0].contains("--profile prod status"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("30 4 * * 0 ") && lines[1].contains("--profile staging"),
        "{out}"
    );
    let (code, out, _) = run(lifeboat(dir.path()).args(["schedule", "--systemd"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("OnCalendar=*-*-* 03:00:00") && out.contains("OnCalendar=Sun *-*-* 04:30:00"),
        "{out}"
    );
    assert!(
        out.contains("lifeboat-prod.timer") && out.contains("Persistent=true"),
        "{out}"
    );
}

#[test]
fn init_writes_a_starter_config_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["init"]));
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(dir.path().join("lifeboat.toml")).unwrap();
    assert!(text.contains("[profiles.prod]") && text.contains("keep_last = 7"));
    let (code, _, _) = run(lifeboat(dir.path()).args(["init"]));
    assert_eq!(code, 64, "overwrote an existing config");
    // The starter parses: schedule works on it.
    let (code, _, err) = run(lifeboat(dir.path()).args(["schedule", "--cron"]));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_unwritable_log_file_fails_at_start_and_a_writable_one_gets_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 100);
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "--log-file",
        "no/such/dir/lifeboat.log",
        "backup",
        "sqlite:app.db",
        "--to",
        "b",
    ]));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("log file is not writable"), "{err}");
    assert!(
        all_files(&dir.path().join("b")).is_empty(),
        "the backup ran anyway"
    );
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "--log-file",
        "lifeboat.log",
        "--log-format",
        "json",
        "backup",
        "sqlite:app.db",
        "--to",
        "b",
    ]));
    assert_eq!(code, 0, "{err}");
    let log = std::fs::read_to_string(dir.path().join("lifeboat.log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["summary"], true);
    assert_eq!(last["result"], "ok");
}
