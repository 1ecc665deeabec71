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
        assert_eq!(keys.len(), 2, "{action:?}: data and manifest: {keys:?}");
        assert!(keys.iter().any(|k| k.ends_with("/data.sqlite.zst")));
        let listing = list_json(dir.path(), &[]);
        assert_eq!(listing["complete"].as_array().unwrap().len(), 1);
        let (code, _, err) =
            run(lifeboat(dir.path()).args(["restore", "--latest", "--to", "sqlite:restored.db"]));
        assert_eq!(code, 0, "{action:?}: the committed backup restores: {err}");
    }
}

/// A manifest PUT that never reached the store (answered 503 every time)
/// is a failed commit: the data goes and nothing is listed.
#[test]
fn a_manifest_write_that_never_lands_removes_the_data() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("nocommit");
    create_s3_bucket(&ep, &bucket);
    let proxy = FaultyHttp::start(
        &ep,
        vec![Rule::new("PUT", "/manifest.json", Action::Status(503), 50)],
    );
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 500);
    s3_config(dir.path(), &bucket, &proxy.url(), "");
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 3, "{err}");
    assert!(proxy.injected() >= 1);
    let keys = s3_keys(&ep, &bucket);
    assert!(keys.is_empty(), "left behind: {keys:?}");
    let (status, uploads) = http("GET", &format!("{ep}/{bucket}?uploads"), b"");
    assert_eq!(status, 200);
    assert!(!uploads.contains("<UploadId>"), "{uploads}");
    assert!(error_line(&err).contains("5xx"), "{err}");
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
    assert_eq!(s3_keys(&ep, &bucket).len(), 2, "nothing deleted");
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
