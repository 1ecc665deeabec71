//! Reads and listings through `object_store`'s GCS client against the real
//! `fake-gcs-server` emulator.
//!
//! The emulator lacks the XML API write path that `object_store` uses
//! (`PUT /bucket/object` answers `400 invalid uploadType`), so objects are
//! seeded through its JSON API (`POST /upload/storage/v1/b/{bucket}/o`) and only
//! reads go through `object_store`. Writes are covered by the in-process double
//! (`gcs_double_selftest.rs`).
//!
//! Needs `LIFEBOAT_TEST_FAKE_GCS` = the emulator's base URL, e.g.
//! `http://127.0.0.1:4443`, for a server started with
//! `-scheme http -host 127.0.0.1 -port P -backend memory -public-host 127.0.0.1:P`.
//! Without it the test reports that it was skipped and passes.
//!
//! `same_reads_against_the_gcs_double` runs the same checks against the
//! in-process double (always), so the two servers are known to agree on them.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use lifeboat_tests::gcs_double::GcsDouble;
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};
use object_store::path::Path;
use object_store::{ClientOptions, Error, ObjectStore, ObjectStoreExt};

const ENV: &str = "LIFEBOAT_TEST_FAKE_GCS";

fn client(base_url: &str, bucket: &str) -> GoogleCloudStorage {
    GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_base_url(base_url)
        .with_service_account_key(
            r#"{"disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}"#,
        )
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .build()
        .expect("build GCS client")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn create_bucket(http: &reqwest::Client, base: &str, bucket: &str) {
    let body = serde_json::json!({ "name": bucket }).to_string();
    let response = http
        .post(format!("{base}/storage/v1/b"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("create bucket request");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "create bucket: {status}: {text}");
}

async fn upload(http: &reqwest::Client, base: &str, bucket: &str, name: &str, data: Bytes) {
    let url = format!(
        "{base}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
        encode(bucket),
        encode(name)
    );
    let response = http
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .expect("media upload request");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "upload {name}: {status}: {text}");
}

async fn keys(store: &GoogleCloudStorage, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list(Some(&Path::from(prefix)))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list");
    keys.sort();
    keys
}

#[tokio::test]
async fn reads_and_listings_against_fake_gcs_server() {
    let Some(base) = lifeboat_tests::support::fake_gcs() else {
        println!("skipped: {ENV} is not set (base URL of a running fake-gcs-server)");
        return;
    };
    let base = base.trim_end_matches('/').to_string();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = format!("lifeboat-fake-{}-{nanos}", std::process::id());

    let http = reqwest::Client::new();
    create_bucket(&http, &base, &bucket).await;
    for (name, data) in seed_objects() {
        upload(&http, &base, &bucket, name, data).await;
    }

    check_reads(&client(&base, &bucket)).await;
}

/// The same reads against the in-process XML API double, seeded directly:
/// both servers must agree on this scenario.
#[tokio::test]
async fn same_reads_against_the_gcs_double() {
    let double = GcsDouble::start().await;
    double.create_bucket("lifeboat-double");
    for (name, data) in seed_objects() {
        double.insert_object("lifeboat-double", name, data);
    }
    check_reads(&client(&double.base_url(), "lifeboat-double")).await;
}

fn big_object() -> Bytes {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

fn seed_objects() -> [(&'static str, Bytes); 5] {
    [
        (
            "backups/db-1/manifest.json",
            Bytes::from_static(b"{\"v\":1}"),
        ),
        ("backups/db-1/chunks/0001", big_object()),
        (
            "backups/db-1/chunks/0002",
            Bytes::from_static(b"second chunk"),
        ),
        (
            "backups/db-2/manifest.json",
            Bytes::from_static(b"{\"v\":2}"),
        ),
        ("other/readme with spaces.txt", Bytes::from_static(b"hi")),
    ]
}

async fn check_reads(store: &GoogleCloudStorage) {
    let big = big_object();

    // Listings with a prefix (object_store adds the trailing delimiter).
    assert_eq!(
        keys(store, "backups/db-1").await,
        [
            "backups/db-1/chunks/0001",
            "backups/db-1/chunks/0002",
            "backups/db-1/manifest.json",
        ]
    );
    assert_eq!(keys(store, "backups").await.len(), 4);
    assert!(keys(store, "backups/db-3").await.is_empty());
    // Prefixes match whole path segments only.
    assert!(keys(store, "backups/db").await.is_empty());

    let listing = store
        .list_with_delimiter(Some(&Path::from("backups/db-1")))
        .await
        .expect("list with delimiter");
    assert_eq!(
        listing
            .objects
            .iter()
            .map(|m| m.location.to_string())
            .collect::<Vec<_>>(),
        ["backups/db-1/manifest.json"]
    );
    assert_eq!(listing.objects[0].size, 7);
    assert_eq!(listing.common_prefixes, [Path::from("backups/db-1/chunks")]);
    let top = store
        .list_with_delimiter(None)
        .await
        .expect("list bucket root");
    assert_eq!(
        top.common_prefixes,
        [Path::from("backups"), Path::from("other")]
    );
    assert!(top.objects.is_empty());

    // Get and head.
    let chunk = Path::from("backups/db-1/chunks/0001");
    let got = store.get(&chunk).await.expect("get");
    assert_eq!(got.meta.size, big.len() as u64);
    assert_eq!(got.bytes().await.unwrap(), big);
    let head = store.head(&chunk).await.expect("head");
    assert_eq!(head.size, big.len() as u64);
    assert!(head.e_tag.is_some());
    assert_eq!(
        store.get_range(&chunk, 1000..1010).await.unwrap(),
        big.slice(1000..1010)
    );
    let spaced = Path::from("other/readme with spaces.txt");
    assert_eq!(
        store.get(&spaced).await.unwrap().bytes().await.unwrap(),
        "hi"
    );

    // Missing keys.
    let missing = Path::from("backups/db-1/chunks/9999");
    let err = store.get(&missing).await.expect_err("get of a missing key");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store
        .head(&missing)
        .await
        .expect_err("head of a missing key");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
