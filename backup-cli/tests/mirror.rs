//! `lifeboat mirror`: a local sink copied to an S3 server over HTTP
//! (moto), checked, resumable, with a corrupt backup refused.

mod common;

use std::path::Path;

use common::{lifeboat, run};
use lifeboat_tests::support::{
    all_files, create_s3_bucket, fake_segment, s3_endpoint, sample_db, unique_bucket,
};

fn list(dir: &Path, ep: &str, sink: &str) -> serde_json::Value {
    let (code, out, err) = run(lifeboat(dir)
        .env("AWS_ENDPOINT_URL", ep)
        .args(["list", "--from", sink, "--json"]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn mirror_copies_what_the_other_sink_lacks_checked_and_resumable() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("mirror");
    create_s3_bucket(&ep, &bucket);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("local");
    let a = format!("file://{}", root.display());
    let b = format!("s3://{bucket}/copy");
    let lb = || {
        let mut c = lifeboat(dir.path());
        c.env("AWS_ENDPOINT_URL", &ep);
        c
    };
    // Two backups and three WAL files in A.
    sample_db(&dir.path().join("app.db"), 3000);
    for _ in 0..2 {
        let (code, _, err) =
            run(lb().args(["backup", "sqlite:app.db", "--to", &a, "--name", "app"]));
        assert_eq!(code, 0, "{err}");
    }
    let pg_wal = dir.path().join("pg_wal");
    std::fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
    for n in 1..=3 {
        let seg = format!("0000000100000000000000{n:02X}");
        std::fs::write(pg_wal.join(&seg), fake_segment(&seg, 99)).unwrap();
        let (code, _, err) = run(lb().args([
            "wal",
            "push",
            pg_wal.join(&seg).to_str().unwrap(),
            "--to",
            &a,
            "--name",
            "app",
        ]));
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = run(lb().args(["verify", "--from", &a, "--source", "app"]));
    assert_eq!(code, 0, "{err}");

    // Dry run: says what, writes nothing.
    let (code, out, err) =
        run(lb().args(["mirror", "--from", &a, "--to", &b, "--dry-run", "--json"]));
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["backups"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["wal_files"], 3, "{r}");
    assert_eq!(
        list(dir.path(), &ep, &b)["complete"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Killed after the first backup's objects, before its manifest: B holds
    // no complete backup, and the next run finishes the job.
    let (code, _, _) = run(lb()
        .env("LIFEBOAT_FAILPOINTS", "mirror:objects-copied")
        .args(["mirror", "--from", &a, "--to", &b]));
    assert_eq!(code, -1, "killed by SIGKILL");
    let half = list(dir.path(), &ep, &b);
    assert_eq!(half["complete"].as_array().unwrap().len(), 0, "{half}");
    let (code, out, err) = run(lb().args(["mirror", "--from", &a, "--to", &b, "--json"]));
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["backups"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["wal_files"], 3, "{r}");
    assert!(
        r["records"].as_u64().unwrap() >= 1,
        "the verification record: {r}"
    );
    let full = list(dir.path(), &ep, &b);
    assert_eq!(full["complete"].as_array().unwrap().len(), 2, "{full}");
    // B restores on its own, and its WAL fetches byte for byte.
    let (code, _, err) = run(lb().args([
        "restore",
        "--from",
        &b,
        "--to",
        &format!("sqlite://{}", dir.path().join("r.db").display()),
    ]));
    assert_eq!(code, 0, "{err}");
    let out = dir.path().join("seg");
    let (code, _, err) = run(lb().args([
        "wal",
        "fetch",
        "000000010000000000000002",
        out.to_str().unwrap(),
        "--from",
        &b,
        "--name",
        "app",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        fake_segment("000000010000000000000002", 99)
    );
    // status on the mirror: not behind yet (within the allowed lag), then
    // behind once A has a backup B lacks and the lag is 0.
    let (code, _, err) = run(lb().args(["status", "--from", &b, "--mirror-of", &a]));
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, _, err) = run(lb().args(["backup", "sqlite:app.db", "--to", &a, "--name", "app"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(lb().args([
        "status",
        "--from",
        &b,
        "--mirror-of",
        &a,
        "--max-mirror-lag",
        "0s",
    ]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("the mirror is behind"), "{err}");
    let (code, _, err) = run(lb().args(["mirror", "--from", &a, "--to", &b]));
    assert_eq!(code, 0, "{err}");
    // Again: nothing left to copy.
    let (code, out, err) = run(lb().args(["mirror", "--from", &a, "--to", &b, "--json"]));
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["backups"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["backups_present"], 3, "{r}");
    assert_eq!(r["wal_files"], 0, "{r}");

    // A third backup whose data rotted in A: not copied (exit 4, named);
    // a fourth, fine, is copied in the same run.
    let data_files = || -> std::collections::BTreeSet<_> {
        all_files(&root)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with("data.sqlite.zst"))
            .collect()
    };
    let before = data_files();
    let (code, _, err) = run(lb().args(["backup", "sqlite:app.db", "--to", &a, "--name", "app"]));
    assert_eq!(code, 0, "{err}");
    // The new one (by name it may sort before the second backup, taken
    // in the same second).
    let third = data_files()
        .difference(&before)
        .next()
        .cloned()
        .expect("the third backup's data");
    let mut bytes = std::fs::read(&third).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&third, bytes).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, _, err) = run(lb().args(["backup", "sqlite:app.db", "--to", &a, "--name", "app"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(lb().args(["mirror", "--from", &a, "--to", &b]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("does not match its manifest"), "{err}");
    assert_eq!(
        list(dir.path(), &ep, &b)["complete"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

/// `[[sinks]]`: one run, the database read once, each sink its own
/// manifest and retention; a sink that cannot be reached fails the run
/// (exit 3) without undoing the others' backups.
#[test]
fn one_run_stores_in_several_sinks_each_with_its_own_retention() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("fanout");
    create_s3_bucket(&ep, &bucket);
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 2000);
    let local = dir.path().join("local");
    let a = format!("file://{}", local.display());
    let b = format!("s3://{bucket}/long");
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        format!(
            "source = \"sqlite:app.db\"\nname = \"app\"\n\
             [[sinks]]\nurl = \"{a}\"\nretention = {{ keep_last = 1, after_backup = true }}\n\
             [[sinks]]\nurl = \"{b}\"\nretention = {{ keep_last = 3, after_backup = true }}\n"
        ),
    )
    .unwrap();
    let lb = || {
        let mut c = lifeboat(dir.path());
        c.env("AWS_ENDPOINT_URL", &ep);
        c
    };
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let (code, out, err) = run(lb().args(["backup", "--json"]));
        assert_eq!(code, 0, "{err}");
        let out: serde_json::Value = serde_json::from_str(&out).unwrap();
        let copies = out[0]["copies"].as_array().unwrap();
        assert_eq!(copies.len(), 1, "{out}");
        assert_eq!(copies[0]["committed"], true, "{out}");
    }
    // Each sink's own retention, and its own manifest describing it.
    assert_eq!(
        list(dir.path(), &ep, &a)["complete"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let long = list(dir.path(), &ep, &b);
    assert_eq!(long["complete"].as_array().unwrap().len(), 3, "{long}");
    let m = &long["complete"][0];
    assert!(
        m["storage"]["sink"].as_str().unwrap().starts_with("s3://"),
        "{m}"
    );
    // The copy restores on its own.
    let (code, _, err) = run(lb().args([
        "restore",
        "--from",
        &b,
        "--to",
        &format!("sqlite://{}", dir.path().join("r.db").display()),
    ]));
    assert_eq!(code, 0, "{err}");
    // A third sink that does not exist: exit 3, the other two still get it.
    let (code, out, err) = run(lb().args([
        "backup",
        "--also-to",
        &format!("s3://{}/x", unique_bucket("missing")),
        "--json",
    ]));
    assert_eq!(code, 3, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out[0]["copies"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(
        list(dir.path(), &ep, &b)["complete"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(err.contains("bucket"), "{err}");
}

/// Hosts sharing a bucket: of four prunes started together exactly one
/// holds the lease (a conditional put on the S3 server) and the others exit
/// 1 naming it; a holder killed with -9 blocks others only until its lease
/// expires, then it is taken over; a backup a reader has marked is kept.
#[test]
fn hosts_sharing_a_bucket_take_turns_by_lease() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("lease");
    create_s3_bucket(&ep, &bucket);
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 500);
    let b = format!("s3://{bucket}/shared");
    let lb = || {
        let mut c = lifeboat(dir.path());
        c.env("AWS_ENDPOINT_URL", &ep);
        c
    };
    for i in 0..4 {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let (code, _, err) =
            run(lb().args(["backup", "sqlite:app.db", "--to", &b, "--name", "app"]));
        assert_eq!(code, 0, "{err}");
    }
    let prune = |keep: &str| {
        let mut c = lb();
        c.args([
            "prune",
            "--from",
            &b,
            "--source",
            "app",
            "--keep-last",
            keep,
        ]);
        c
    };
    // Four at once, each holding the lease for 10 s once it has it.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            prune("3")
                .env("LIFEBOAT_FAILPOINTS", "lease:acquired=pause")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners = outs.iter().filter(|o| o.status.code() == Some(0)).count();
    assert_eq!(winners, 1, "exactly one prune holds the lease");
    for o in outs.iter().filter(|o| o.status.code() != Some(0)) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("holds the lease on app for prune"), "{err}");
    }
    assert_eq!(
        list(dir.path(), &ep, &b)["complete"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A holder killed right after taking the lease (time to live 2 s).
    // On this host its pid is gone: the lease is taken over at once.
    let killed = |ttl: &str| {
        let (code, _, _) = run(prune("3")
            .env("LIFEBOAT_LEASE_TTL", ttl)
            .env("LIFEBOAT_FAILPOINTS", "lease:acquired"));
        assert_eq!(code, -1, "killed");
    };
    killed("2");
    let (code, _, err) = run(&mut prune("3"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("took over a lease"), "{err}");
    // Another host's holder that died: its lease is waited out until it
    // expires (2 s here), then taken over.
    let held = serde_json::json!({
        "id": "h1", "host": "other-host", "pid": 1, "operation": "prune",
        "acquired_at": chrono_now(0), "expires_at": chrono_now(2), "ttl_secs": 2
    });
    let (status, body) = lifeboat_tests::support::http(
        "PUT",
        &format!("{ep}/{bucket}/shared/app/lease.json"),
        held.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let (code, _, err) = run(&mut prune("2"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("other-host"), "{err}");
    std::thread::sleep(std::time::Duration::from_secs(5));
    let (code, _, err) = run(&mut prune("2"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("took over a lease"), "{err}");
    assert_eq!(
        list(dir.path(), &ep, &b)["complete"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A reader (another host's restore) marks the older backup: kept.
    let listing = list(dir.path(), &ep, &b);
    let oldest = listing["complete"][0]["backup_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mark = serde_json::json!({
        "id": "r1", "host": "other-host", "pid": 7, "operation": "restore",
        "backup_id": oldest,
        "acquired_at": chrono_now(0), "expires_at": chrono_now(600), "ttl_secs": 300
    });
    let (status, body) = lifeboat_tests::support::http(
        "PUT",
        &format!("{ep}/{bucket}/shared/app/readers/r1.json"),
        mark.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let (code, out, err) = run(prune("1").arg("--json"));
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kept = r["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["backup_id"] == oldest.as_str())
        .unwrap();
    assert_eq!(kept["keep"], true, "{r}");
    assert!(
        kept["reasons"][0]
            .as_str()
            .unwrap()
            .contains("being read by restore on other-host"),
        "{r}"
    );
}

/// RFC 3339 time `secs` from now.
fn chrono_now(secs: i64) -> String {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(secs as u64);
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let (days, rem) = (d / 86_400, d % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
