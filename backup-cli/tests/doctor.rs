//! `lifeboat doctor`: the checks that find silent breakage.

mod common;

use std::path::Path;
use std::process::Command;

use common::{lifeboat, run};
use lifeboat_tests::support::{s3_endpoint, sample_db, unique_bucket};

fn keygen(dir: &Path) -> (String, std::path::PathBuf) {
    let path = dir.join("ops.key");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen runs (scripts/test installs age)");
    let public = String::from_utf8_lossy(&out.stderr)
        .trim()
        .trim_start_matches("Public key: ")
        .to_string();
    (public, path)
}

#[test]
fn doctor_proves_the_key_and_the_sink_and_names_what_fails() {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 1000);
    let (public, key) = keygen(dir.path());
    let sink = format!("file://{}", dir.path().join("b").display());
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        format!(
            "source = \"sqlite:app.db\"\nsink = \"{sink}\"\nname = \"app\"\n[encryption]\nrecipients = [\"{public}\"]\n"
        ),
    )
    .unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 0, "{err}");
    // No identity anywhere: nobody has shown the backup can be decrypted.
    let (code, out, err) = run(lifeboat(dir.path()).args(["doctor", "--json"]));
    assert_eq!(code, 6, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let checks = r[0]["checks"].as_array().unwrap();
    let by = |n: &str| {
        checks
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {r}"))
    };
    for n in ["credentials", "clock", "source", "temp-space"] {
        assert_eq!(by(n)["ok"], true, "{r}");
    }
    assert_eq!(by("decrypt")["ok"], false, "{r}");
    assert!(err.contains("decrypt:"), "{err}");
    // With the key: every check passes, and status counts it as proof.
    let (code, _, err) = run(lifeboat(dir.path()).args(["status"]));
    assert_eq!(code, 6, "{err}");
    let (code, out, err) =
        run(lifeboat(dir.path()).args(["doctor", "--identity", key.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok   decrypt"), "{out}");
    let (code, _, err) = run(lifeboat(dir.path()).args(["status"]));
    assert_eq!(code, 0, "{err}");
    // No test object is left behind.
    assert!(
        !dir.path()
            .join("b/_lifeboat")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

#[test]
fn doctor_names_a_sink_it_cannot_write() {
    let Some(ep) = s3_endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).env("AWS_ENDPOINT_URL", &ep).args([
        "doctor",
        "--from",
        &format!("s3://{}/x", unique_bucket("absent")),
    ]));
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("credentials: cannot write a test object"),
        "{err}"
    );
}

/// A bucket lifecycle rule (set with the real aws CLI on the S3 server)
/// that would delete backups retention keeps is named; one that does not,
/// passes.
#[test]
fn doctor_reports_a_lifecycle_rule_that_deletes_what_retention_keeps() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("lifecycle");
    lifeboat_tests::support::create_s3_bucket(&ep, &bucket);
    let rules = r#"{"Rules":[{"ID":"expire-30d","Filter":{"Prefix":""},"Status":"Enabled","Expiration":{"Days":30}}]}"#;
    let out = Command::new("aws")
        .args([
            "s3api",
            "put-bucket-lifecycle-configuration",
            "--bucket",
            &bucket,
        ])
        .args(["--lifecycle-configuration", rules, "--endpoint-url", &ep])
        .output()
        .expect("aws (awscli from .venv; scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 500);
    let config = |retention: &str| {
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            format!(
                "source = \"sqlite:app.db\"\nsink = \"s3://{bucket}/prod\"\nname = \"app\"\n[retention]\n{retention}\n"
            ),
        )
        .unwrap();
    };
    config("keep_monthly = 6");
    let lb = || {
        let mut c = lifeboat(dir.path());
        c.env("AWS_ENDPOINT_URL", &ep);
        c
    };
    let (code, _, err) = run(lb().args(["backup"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(lb().args(["doctor"]));
    assert_eq!(code, 6, "{out}{err}");
    assert!(
        err.contains("lifecycle rule \"expire-30d\"") && err.contains("keep_monthly 6"),
        "{err}"
    );
    config("keep_days = 14");
    let (code, out, err) = run(lb().args(["doctor"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok   lifecycle"), "{out}");
}

/// A GCS bucket's lifecycle rule (GCS's own XML dialect, served by the XML
/// API double) that would delete backups retention keeps is named, as on S3.
#[test]
fn doctor_reports_a_gcs_lifecycle_rule_that_deletes_what_retention_keeps() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let double = rt.block_on(lifeboat_tests::gcs_double::GcsDouble::start());
    double.create_bucket("lc");
    double.set_lifecycle(
        "lc",
        "<LifecycleConfiguration><Rule><Action><Delete/></Action>\
         <Condition><Age>30</Age><MatchesPrefix>prod/</MatchesPrefix></Condition>\
         </Rule></LifecycleConfiguration>",
    );
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 500);
    let config = |retention: &str| {
        std::fs::write(
            dir.path().join("lifeboat.toml"),
            format!(
                "source = \"sqlite:app.db\"\nsink = \"gs://lc/prod\"\nname = \"app\"\n[retention]\n{retention}\n"
            ),
        )
        .unwrap();
    };
    config("keep_monthly = 6");
    let lb = || {
        let mut c = lifeboat(dir.path());
        c.env("STORAGE_EMULATOR_HOST", double.base_url());
        c
    };
    let (code, _, err) = run(lb().args(["backup"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(lb().args(["doctor"]));
    assert_eq!(code, 6, "{out}{err}");
    assert!(
        err.contains("lifecycle rule \"rule 1\"") && err.contains("after 30 days"),
        "{err}"
    );
    config("keep_days = 14");
    let (code, out, err) = run(lb().args(["doctor"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok   lifecycle"), "{out}");
    assert!(
        double.requests().iter().any(|r| r == "GET /lc?lifecycle"),
        "{:?}",
        double.requests()
    );
}
