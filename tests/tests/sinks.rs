//! Every sink passes the same conformance suite and a full SQLite
//! backup → list → verify → restore round trip: local directory and memory
//! here, S3 and the Spaces preset against moto over HTTP, and GCS against the
//! XML API test double (see docs/architecture.md for what the real
//! fake-gcs-server covers). What interrupted writes leave (pending uploads,
//! leftovers) is checked on each of them too.

use std::sync::Arc;
use std::time::Duration;

use backup_core::{
    BackupJob, Catalog, ErrorKind, LocalSink, ObjectStoreSink, RestoreJob, Sink, SinkOptions,
    SqliteSource, VerifyJob, conformance, leftovers, sink_from_url,
};
use bytes::Bytes;
use lifeboat_tests::gcs_double::GcsDouble;
use lifeboat_tests::http::{FaultProxy, HoldCompletion};
use lifeboat_tests::support::{
    create_s3_bucket, http, s3_endpoint, s3_keys, sample_db, unique_bucket,
};

fn s3_options(endpoint: &str) -> SinkOptions {
    let mut o = SinkOptions::default();
    o.endpoint = Some(endpoint.to_string());
    o.access_key_id = Some("testing".into());
    o.secret_access_key = Some("testing".into());
    o
}

/// Keys of the multipart uploads open in a moto bucket.
fn s3_open_uploads(endpoint: &str, bucket: &str) -> Vec<String> {
    let (status, body) = http("GET", &format!("{endpoint}/{bucket}?uploads"), b"");
    assert_eq!(status, 200, "list uploads of {bucket}: {body}");
    body.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
        .collect()
}

/// Resolve once `cond` holds (polled; panics after a minute).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Start an upload, send a part, and "kill" the writer: no cleanup runs.
async fn kill_writer_during(sink: &dyn Sink, key: &str, len: usize) {
    let mut upload = sink.upload(key).await.unwrap();
    upload.write(Bytes::from(vec![7u8; len])).await.unwrap();
    std::mem::forget(upload);
}

/// Backup, list, verify and restore through `sink`; returns nothing, panics
/// with the broken step.
async fn round_trip(sink: Arc<dyn Sink>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    sample_db(&db, 5_000);
    let report = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink.clone())
        .lock_dir(dir.path())
        .run()
        .await
        .expect("backup");
    let m = &report.manifest;
    assert!(m.verified(), "verdicts: {:?}", m.verdicts);
    let names: Vec<_> = m.verdicts.iter().map(|v| v.verifier.as_str()).collect();
    for v in ["sqlite-integrity", "min-size", "checksum"] {
        assert!(names.contains(&v), "missing verdict {v}: {names:?}");
    }
    assert_eq!(m.fingerprint.total_rows(), 5_500);

    let listing = Catalog::new(sink.clone()).list(None).await.expect("list");
    assert_eq!(listing.complete.len(), 1);
    assert!(listing.incomplete.is_empty(), "{:?}", listing.incomplete);
    assert_eq!(listing.complete[0].manifest, *m);

    let verified = VerifyJob::new(sink.clone()).run().await.expect("verify");
    assert_eq!(verified.verdicts.len(), 3);

    let restored = dir.path().join("restored.db");
    let r = RestoreJob::new(sink.clone(), Arc::new(SqliteSource::new(&restored)))
        .lock_dir(dir.path())
        .run()
        .await
        .expect("restore");
    assert_eq!(r.outcome.fingerprint.tables, m.fingerprint.tables);
    let conn = rusqlite::Connection::open(&restored).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5_000);
}

#[tokio::test]
async fn memory_sink_round_trip() {
    round_trip(Arc::new(ObjectStoreSink::memory())).await;
}

#[tokio::test]
async fn local_sink_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(Arc::new(
        LocalSink::new(dir.path().join("backups")).unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn s3_sink_conforms_on_moto() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("conform");
    create_s3_bucket(&ep, &bucket);
    // Small listing pages, so the suite's listings cross pages.
    let mut opts = s3_options(&ep);
    opts.list_page_size = Some(5);
    let sink = sink_from_url(&format!("s3://{bucket}/some/prefix"), &opts).unwrap();
    assert_eq!(sink.location(), format!("s3://{bucket}/some/prefix"));
    conformance::run_all(&*sink).await;
    // Everything the suite wrote stayed below the prefix, and was cleaned up.
    assert!(
        s3_keys(&ep, &bucket).is_empty(),
        "{:?}",
        s3_keys(&ep, &bucket)
    );
    assert_eq!(
        s3_open_uploads(&ep, &bucket),
        Vec::<String>::new(),
        "multipart uploads left open"
    );
}

/// Ctrl-C while `CompleteMultipartUpload` is in flight: whether the request
/// already completed the upload (its answer is held) or reaches S3 only
/// later (the request is held), the cancelled backup leaves no object and
/// no open upload.
#[tokio::test]
async fn s3_cancelled_completion_leaves_nothing_on_moto() {
    let Some(ep) = s3_endpoint() else { return };
    for hold in [
        HoldCompletion::Answer(Duration::from_secs(2)),
        HoldCompletion::BeforeForwarding(Duration::from_secs(2)),
    ] {
        let bucket = unique_bucket("cancel");
        create_s3_bucket(&ep, &bucket);
        let proxy = FaultProxy::hold_completions(&ep, hold);
        let sink = sink_from_url(&format!("s3://{bucket}/p"), &s3_options(&proxy.url())).unwrap();
        conformance::dropped_complete_leaves_nothing(
            &*sink,
            until("the held completion", || proxy.injected() >= 1),
            until("the released completion", || proxy.released() >= 1),
        )
        .await;
        assert_eq!(proxy.injected(), 1, "{hold:?}: one completion was held");
        assert_eq!(s3_keys(&ep, &bucket), Vec::<String>::new(), "{hold:?}");
        assert_eq!(
            s3_open_uploads(&ep, &bucket),
            Vec::<String>::new(),
            "{hold:?}"
        );
    }
}

/// The same on GCS, through the XML API double.
#[tokio::test]
async fn gcs_cancelled_completion_leaves_nothing_on_the_xml_double() {
    for hold in [
        HoldCompletion::Answer(Duration::from_secs(2)),
        HoldCompletion::BeforeForwarding(Duration::from_secs(2)),
    ] {
        let double = GcsDouble::start().await;
        double.create_bucket("lifeboat-gcs");
        let proxy = FaultProxy::hold_completions(&double.base_url(), hold);
        let mut opts = SinkOptions::default();
        opts.endpoint = Some(proxy.url());
        let sink = sink_from_url("gs://lifeboat-gcs/p", &opts).unwrap();
        conformance::dropped_complete_leaves_nothing(
            &*sink,
            until("the held completion", || proxy.injected() >= 1),
            until("the released completion", || proxy.released() >= 1),
        )
        .await;
        assert_eq!(proxy.injected(), 1, "{hold:?}");
        assert_eq!(
            double.object_keys("lifeboat-gcs"),
            Vec::<String>::new(),
            "{hold:?}"
        );
        assert_eq!(double.pending_uploads("lifeboat-gcs"), 0, "{hold:?}");
    }
}

/// A killed backup's open upload is a leftover of its source, found and
/// removed; another source's is not touched.
#[tokio::test]
async fn s3_leftovers_of_a_killed_backup_are_found_and_removed_on_moto() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("leftovers");
    create_s3_bucket(&ep, &bucket);
    let sink = sink_from_url(&format!("s3://{bucket}/prod"), &s3_options(&ep)).unwrap();
    let key = "app/backups/2026/01/02/20260102T030000Z-3f9a/data.db.zst";
    kill_writer_during(&*sink, key, 9 << 20).await;
    kill_writer_during(&*sink, "application/backups/x/data.db.zst", 1).await;

    let found = leftovers::find(&*sink, "app", Duration::from_secs(3600), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].upload.key, key);
    // moto reports every upload as initiated on 2010-11-10, so it is stale
    // here; the grace period is checked on the GCS double and the local
    // sink, which report real times.
    assert!(found[0].stale);
    assert_eq!(leftovers::remove(&*sink, &found).await.unwrap(), 1);
    assert_eq!(
        s3_open_uploads(&ep, &bucket),
        vec!["prod/application/backups/x/data.db.zst".to_string()]
    );
    assert!(s3_keys(&ep, &bucket).is_empty());
}

/// A listing of pending uploads that fails is an error, not "none".
#[tokio::test]
async fn listing_pending_uploads_of_a_missing_bucket_is_an_error() {
    let double = GcsDouble::start().await;
    let mut opts = SinkOptions::default();
    opts.endpoint = Some(double.base_url());
    let mut sinks = vec![sink_from_url("gs://absent-bucket/x", &opts).unwrap()];
    if let Some(ep) = s3_endpoint() {
        sinks.push(sink_from_url("s3://no-such-bucket-lifeboat/x", &s3_options(&ep)).unwrap());
    }
    for sink in sinks {
        let err = sink.list_pending("app").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Sink, "{err}");
        assert!(err.to_string().contains("bucket does not exist"), "{err}");
        assert!(!err.is_retryable());
        let err = leftovers::find(&*sink, "app", Duration::ZERO, chrono::Utc::now())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Sink, "{err}");
    }
}

#[tokio::test]
async fn s3_sink_round_trip_on_moto() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("roundtrip");
    create_s3_bucket(&ep, &bucket);
    round_trip(sink_from_url(&format!("s3://{bucket}/prod"), &s3_options(&ep)).unwrap()).await;
    let keys = s3_keys(&ep, &bucket);
    let backup_keys: Vec<_> = keys
        .iter()
        .filter(|k| k.starts_with("prod/shop/backups/"))
        .collect();
    assert_eq!(backup_keys.len(), 2, "data and manifest: {keys:?}");
    // The rest is the verification record `VerifyJob` keeps for `status`,
    // and the source's restore guide.
    assert!(
        keys.iter().all(|k| k.starts_with("prod/shop/backups/")
            || k.starts_with("prod/shop/verifications/")
            || k == "prod/shop/restore.md"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn spaces_preset_conforms_and_round_trips_on_moto() {
    let Some(ep) = s3_endpoint() else { return };
    let bucket = unique_bucket("spaces");
    create_s3_bucket(&ep, &bucket);
    // The preset's endpoint (https://nyc3.digitaloceanspaces.com) is replaced
    // by the test server; everything else is the Spaces code path.
    let url = format!("spaces://{bucket}/p?region=nyc3&endpoint={ep}");
    let mut opts = SinkOptions::default();
    opts.access_key_id = Some("testing".into());
    opts.secret_access_key = Some("testing".into());
    opts.list_page_size = Some(5);
    let sink = sink_from_url(&url, &opts).unwrap();
    assert_eq!(sink.location(), format!("spaces://{bucket}/p"));
    conformance::run_all(&*sink).await;
    round_trip(sink).await;
}

#[tokio::test]
async fn s3_missing_bucket_is_a_sink_error_before_any_upload() {
    let Some(ep) = s3_endpoint() else { return };
    let sink = sink_from_url("s3://no-such-bucket-lifeboat/x", &s3_options(&ep)).unwrap();
    let err = sink.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink);
    assert!(err.to_string().contains("bucket does not exist"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn gcs_sink_conforms_on_the_xml_double() {
    let double = GcsDouble::start().await;
    double.create_bucket("lifeboat-gcs");
    let mut opts = SinkOptions::default();
    opts.endpoint = Some(double.base_url());
    opts.list_page_size = Some(5);
    let sink = sink_from_url("gs://lifeboat-gcs/backups", &opts).unwrap();
    assert_eq!(sink.location(), "gs://lifeboat-gcs/backups");
    conformance::run_all(&*sink).await;
    conformance::concurrent_updates_one_wins(&*sink).await;
    round_trip(sink).await;
    assert_eq!(
        double.pending_uploads("lifeboat-gcs"),
        0,
        "no multipart upload left open"
    );
}

/// Pending uploads are listed across pages (the double answers two per
/// page here), and only the stale ones of the source are removed.
#[tokio::test]
async fn gcs_pending_uploads_are_paged_and_only_stale_leftovers_removed() {
    let double = GcsDouble::start().await;
    double.create_bucket("lifeboat-gcs");
    double.limit_upload_pages(2);
    let mut opts = SinkOptions::default();
    opts.endpoint = Some(double.base_url());
    let sink = sink_from_url("gs://lifeboat-gcs/backups", &opts).unwrap();
    for i in 0..5 {
        kill_writer_during(&*sink, &format!("app/backups/{i}/data.db.zst"), 1).await;
    }
    kill_writer_during(&*sink, "app/backups/0/data.db.zst", 1).await; // a retry
    kill_writer_during(&*sink, "application/x", 1).await;
    kill_writer_during(&*sink, "app", 1).await; // a key, not below app/

    let mut keys: Vec<_> = sink
        .list_pending("app")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    keys.sort();
    let mut want: Vec<_> = (0..5)
        .map(|i| format!("app/backups/{i}/data.db.zst"))
        .collect();
    want.insert(0, "app/backups/0/data.db.zst".into());
    assert_eq!(keys, want);
    let pages = double
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /lifeboat-gcs?uploads"))
        .count();
    assert_eq!(pages, 3, "six uploads, two per page");

    let now = chrono::Utc::now();
    let grace = Duration::from_secs(3600);
    let fresh = leftovers::find(&*sink, "app", grace, now).await.unwrap();
    assert_eq!(fresh.len(), 6);
    assert!(fresh.iter().all(|l| !l.stale), "a run may still own them");
    assert_eq!(leftovers::remove(&*sink, &fresh).await.unwrap(), 0);
    assert_eq!(double.pending_uploads("lifeboat-gcs"), 8);

    let later = now + chrono::Duration::hours(2);
    let stale = leftovers::find(&*sink, "app", grace, later).await.unwrap();
    assert!(stale.iter().all(|l| l.stale));
    assert_eq!(leftovers::remove(&*sink, &stale).await.unwrap(), 6);
    assert_eq!(
        double.pending_uploads("lifeboat-gcs"),
        2,
        "application/ and the key app itself are not app's leftovers"
    );
    assert!(double.object_keys("lifeboat-gcs").is_empty());
}

/// Object listings go out page by page, `list_page_size` keys each, with
/// and without a delimiter; a consumer that stops early fetches no more.
#[tokio::test]
async fn gcs_object_listings_are_paged() {
    let double = GcsDouble::start().await;
    double.create_bucket("lifeboat-gcs");
    let mut opts = SinkOptions::default();
    opts.endpoint = Some(double.base_url());
    opts.list_page_size = Some(4);
    let sink = sink_from_url("gs://lifeboat-gcs/root", &opts).unwrap();
    for i in 0..9 {
        sink.put(
            &format!("app/backups/{i}/data"),
            Bytes::from_static(b"x"),
            Default::default(),
        )
        .await
        .unwrap();
    }
    for i in 0..2 {
        sink.put(
            &format!("app/{i}.json"),
            Bytes::from_static(b"x"),
            Default::default(),
        )
        .await
        .unwrap();
    }
    let list_requests = || {
        double
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains("list-type=2"))
            .count()
    };

    let before = list_requests();
    assert_eq!(sink.list("app/backups").await.unwrap().len(), 9);
    assert_eq!(list_requests() - before, 3, "nine keys, four per page");

    let before = list_requests();
    let level = sink.list_with_delimiter("app/backups").await.unwrap();
    assert_eq!(level.common_prefixes.len(), 9);
    assert!(level.objects.is_empty());
    assert_eq!(list_requests() - before, 3, "nine prefixes, four per page");
    let level = sink.list_with_delimiter("app").await.unwrap();
    assert_eq!(level.common_prefixes, ["app/backups"]);
    assert_eq!(
        level
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["app/0.json", "app/1.json"]
    );

    let before = list_requests();
    use futures::StreamExt;
    let first: Vec<_> = sink.list_stream("app").take(2).collect().await;
    assert_eq!(first.len(), 2);
    assert_eq!(
        list_requests() - before,
        1,
        "stopping early fetches no more pages"
    );
}

/// A GCS bucket's lifecycle rules are read in GCS's own XML dialect
/// (set over HTTP as a client would), with prefixes made relative to the
/// sink; rules for other prefixes and for noncurrent versions are left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_lifecycle_rules_are_read_relative_to_the_sink() {
    let double = GcsDouble::start().await;
    double.create_bucket("lc");
    let mut opts = SinkOptions::default();
    opts.endpoint = Some(double.base_url());
    let sink = sink_from_url("gs://lc/prod", &opts).unwrap();
    assert_eq!(sink.lifecycle_rules().await.unwrap(), Some(vec![]));
    let xml = "<LifecycleConfiguration>\
        <Rule><Action><Delete/></Action><Condition><Age>30</Age>\
        <MatchesPrefix>prod/app/</MatchesPrefix><MatchesPrefix>other/</MatchesPrefix></Condition></Rule>\
        <Rule><Action><Delete/></Action><Condition><Age>1</Age><IsLive>false</IsLive></Condition></Rule>\
        </LifecycleConfiguration>";
    let url = format!("{}/lc?lifecycle", double.base_url());
    let (status, body) = tokio::task::spawn_blocking(move || http("PUT", &url, xml.as_bytes()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let rules = sink.lifecycle_rules().await.unwrap().unwrap();
    assert_eq!(
        rules,
        vec![backup_core::sink::LifecycleRule {
            id: "rule 1".into(),
            prefix: "app/".into(),
            enabled: true,
            expire_days: Some(30),
            expire_date: None,
            created_before: None,
        }]
    );
    let missing = sink_from_url("gs://no-such-bucket/prod", &opts).unwrap();
    let err = missing.lifecycle_rules().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink, "{err}");
}

#[tokio::test]
async fn gcs_missing_bucket_is_a_sink_error() {
    let double = GcsDouble::start().await;
    let mut opts = SinkOptions::default();
    opts.endpoint = Some(double.base_url());
    let sink = sink_from_url("gs://absent-bucket/x", &opts).unwrap();
    let err = sink.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink, "{err}");
}

#[tokio::test]
async fn gcs_sink_reads_and_lists_on_the_real_fake_gcs_server() {
    use lifeboat_tests::support::{fake_gcs, http};
    let Some(base) = fake_gcs() else { return };
    let bucket = unique_bucket("lifeboat-read");
    let (status, body) = http(
        "POST",
        &format!("{base}/storage/v1/b"),
        format!(r#"{{"name":"{bucket}"}}"#).as_bytes(),
    );
    assert!(status == 200, "create bucket: {status} {body}");
    // fake-gcs-server has no XML write path: seed through its JSON API.
    for (name, data) in [
        ("p/src/backups/a", "alpha"),
        ("p/src/backups/b", "bravo!"),
        ("other/x", "x"),
    ] {
        let url = format!(
            "{base}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            name.replace('/', "%2F")
        );
        let (status, body) = http("POST", &url, data.as_bytes());
        assert!(status == 200, "upload {name}: {status} {body}");
    }
    let mut opts = SinkOptions::default();
    opts.endpoint = Some(base.clone());
    let sink = sink_from_url(&format!("gs://{bucket}/p"), &opts).unwrap();
    use backup_core::SinkExt;
    sink.check().await.expect("check");
    let mut keys: Vec<_> = sink
        .list("src")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            ("src/backups/a".to_string(), 5),
            ("src/backups/b".to_string(), 6)
        ]
    );
    assert_eq!(
        &sink.get_bytes("src/backups/b").await.unwrap()[..],
        b"bravo!"
    );
    assert_eq!(sink.head("src/backups/a").await.unwrap().size, 5);
    let root = sink
        .list_with_delimiter("")
        .await
        .expect("delimited listing");
    assert_eq!(root.common_prefixes, ["src"]);
    assert!(root.objects.is_empty());
    let err = sink.head("src/backups/zzz").await.unwrap_err();
    assert!(
        matches!(err, backup_core::Error::NotFound { .. }),
        "{err:?}"
    );
}

/// A moto of its own that verifies signatures (moto recomputes each SigV4
/// signature with botocore) once it is set up; killed on drop.
struct VerifyingMoto {
    child: std::process::Child,
    endpoint: String,
    key_id: String,
    secret: String,
}

impl Drop for VerifyingMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xml_value(xml: &str, tag: &str) -> String {
    xml.split(&format!("<{tag}>"))
        .nth(1)
        .and_then(|s| s.split_once(&format!("</{tag}>")))
        .map(|(v, _)| v.to_string())
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
}

/// Start moto, create an IAM user allowed everything with an access key,
/// `bucket`, and an open multipart upload of each of `uploads` (full keys),
/// all before authentication is switched on.
async fn verifying_moto(bucket: &str, uploads: &[&str]) -> Option<VerifyingMoto> {
    s3_endpoint()?; // only where the test servers (and moto_server) are
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server on PATH (scripts/test puts .venv/bin there)");
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut moto = VerifyingMoto {
        child,
        endpoint: endpoint.clone(),
        key_id: String::new(),
        secret: String::new(),
    };
    until("moto to start", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let client = reqwest::Client::new();
    // moto routes a request by the service in its credential scope; it does
    // not check signatures yet.
    let iam = |params: &[(&str, &str)]| {
        let mut form = reqwest::Url::parse("http://x/").unwrap();
        form.query_pairs_mut()
            .append_pair("Version", "2010-05-08")
            .extend_pairs(params);
        client
            .post(format!("{endpoint}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(form.query().unwrap().to_string())
            .send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
        body
    };
    answer(
        iam(&[("Action", "CreateUser"), ("UserName", "lifeboat")])
            .await
            .unwrap(),
    )
    .await;
    answer(
        iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "lifeboat"),
            ("PolicyName", "all"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            ),
        ])
        .await
        .unwrap(),
    )
    .await;
    let key = answer(
        iam(&[("Action", "CreateAccessKey"), ("UserName", "lifeboat")])
            .await
            .unwrap(),
    )
    .await;
    moto.key_id = xml_value(&key, "AccessKeyId");
    moto.secret = xml_value(&key, "SecretAccessKey");
    answer(
        client
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for key in uploads {
        let mut url = reqwest::Url::parse(&format!("{endpoint}/{bucket}/")).unwrap();
        url.path_segments_mut()
            .unwrap()
            .pop_if_empty()
            .extend(key.split('/'));
        url.set_query(Some("uploads"));
        answer(client.post(url).send().await.unwrap()).await;
    }
    // From now on every request must carry a valid signature.
    answer(
        client
            .post(format!("{endpoint}/moto-api/reset-auth"))
            .body("0")
            .send()
            .await
            .unwrap(),
    )
    .await;
    Some(moto)
}

/// Our own SigV4 signing of ListMultipartUploads and AbortMultipartUpload
/// is accepted by a server that verifies signatures (also for a key that
/// needs encoding), and a wrong secret is refused as access denied without
/// the secret showing anywhere in the error.
#[tokio::test]
async fn pending_upload_requests_are_signed_as_s3_verifies_them() {
    let bucket = unique_bucket("signed");
    let key = "app/backups/2026/01/02/20260102T030000Z-3f9a/data.db.zst";
    let Some(moto) = verifying_moto(&bucket, &[key]).await else {
        return;
    };
    let mut opts = SinkOptions::default();
    opts.endpoint = Some(moto.endpoint.clone());
    opts.access_key_id = Some(moto.key_id.clone());
    opts.secret_access_key = Some(moto.secret.clone());
    // No prefix and a plain key, so that neither the listing's query nor
    // the abort's path needs escapes: moto's verifier does not see escaped
    // requests as sent (it rejects object_store's escaped listings too).
    // Escaping is covered by AWS's own examples in sink/sigv4.rs.
    let sink = sink_from_url(&format!("s3://{bucket}"), &opts).unwrap();

    let pending = sink.list_pending("").await.expect("signed listing");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].key, key);
    sink.abort_pending(&pending[0]).await.expect("signed abort");
    assert_eq!(sink.list_pending("").await.unwrap(), vec![]);

    let wrong_secret = "wJalrXUtnFEMI-not-the-secret";
    opts.secret_access_key = Some(wrong_secret.into());
    let wrong = sink_from_url(&format!("s3://{bucket}"), &opts).unwrap();
    let err = wrong.list_pending("").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink, "{err}");
    assert!(!err.is_retryable());
    let text = err.display_chain();
    assert!(text.contains("access denied"), "{text}");
    assert!(
        !text.contains(wrong_secret) && !text.contains(&moto.secret),
        "{text}"
    );
    let forged = backup_core::PendingUpload {
        key: key.into(),
        id: "x".into(),
        started: chrono::Utc::now(),
    };
    let err = wrong.abort_pending(&forged).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink, "{err}");
    assert!(err.display_chain().contains("access denied"), "{err}");
}
