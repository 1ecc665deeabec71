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
