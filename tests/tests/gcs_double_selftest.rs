//! Self-test of the GCS XML API double: `object_store`'s real GCS client
//! runs a full put/get/head/list/delete/multipart/conditional cycle against it
//! over HTTP on 127.0.0.1.

use bytes::Bytes;
use futures::TryStreamExt;
use lifeboat_tests::gcs_double::{GcsDouble, MIN_PART_SIZE};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ClientOptions, Error, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};

const BUCKET: &str = "lifeboat-test";

/// The client configured exactly as Lifeboat's GCS sink configures it.
fn client(double: &GcsDouble, bucket: &str) -> GoogleCloudStorage {
    GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_base_url(&double.base_url())
        .with_service_account_key(
            r#"{"disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}"#,
        )
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .build()
        .expect("build GCS client")
}

async fn setup() -> (GcsDouble, GoogleCloudStorage) {
    let double = GcsDouble::start().await;
    double.create_bucket(BUCKET);
    let store = client(&double, BUCKET);
    (double, store)
}

async fn list_keys(store: &GoogleCloudStorage, prefix: Option<&str>) -> Vec<String> {
    let prefix = prefix.map(Path::from);
    let mut keys: Vec<String> = store
        .list(prefix.as_ref())
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list");
    keys.sort();
    keys
}

/// Deterministic, position-dependent content, so misordered parts are caught.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn put_get_head_list_delete() {
    let (double, store) = setup().await;
    let path = Path::from("dir/hello world+1.txt");

    let put = store
        .put(&path, PutPayload::from_static(b"hello, gcs"))
        .await
        .expect("put");
    let e_tag = put.e_tag.clone().expect("put returns an ETag");
    let version = put.version.clone().expect("put returns x-goog-generation");

    let got = store.get(&path).await.expect("get");
    assert_eq!(got.meta.size, 10);
    assert_eq!(got.meta.e_tag.as_deref(), Some(e_tag.as_str()));
    assert_eq!(
        got.bytes().await.unwrap(),
        Bytes::from_static(b"hello, gcs")
    );

    let head = store.head(&path).await.expect("head");
    assert_eq!(head.location, path);
    assert_eq!(head.size, 10);
    assert_eq!(head.e_tag.as_deref(), Some(e_tag.as_str()));
    assert_eq!(head.version.as_deref(), Some(version.as_str()));

    // Ranges: bounded, offset and suffix.
    assert_eq!(store.get_range(&path, 7..10).await.unwrap(), "gcs");
    let tail = store
        .get_opts(
            &path,
            GetOptions {
                range: Some(GetRange::Offset(7)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.range, 7..10);
    assert_eq!(tail.meta.size, 10);
    assert_eq!(tail.bytes().await.unwrap(), "gcs");
    let suffix = store
        .get_opts(
            &path,
            GetOptions {
                range: Some(GetRange::Suffix(5)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(suffix.bytes().await.unwrap(), ", gcs");

    // Reads pinned to a generation.
    let pinned = GetOptions {
        version: Some(version.clone()),
        ..Default::default()
    };
    assert!(store.get_opts(&path, pinned).await.is_ok());
    let stale = GetOptions {
        version: Some("1".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.get_opts(&path, stale).await,
        Err(Error::NotFound { .. })
    ));

    // Conditional reads.
    let unchanged = GetOptions {
        if_none_match: Some(e_tag.clone()),
        ..Default::default()
    };
    assert!(matches!(
        store.get_opts(&path, unchanged).await,
        Err(Error::NotModified { .. })
    ));
    let mismatch = GetOptions {
        if_match: Some("\"0000\"".into()),
        ..Default::default()
    };
    assert!(matches!(
        store.get_opts(&path, mismatch).await,
        Err(Error::Precondition { .. })
    ));

    // Attributes round-trip.
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, "application/zstd".into());
    attributes.insert(Attribute::Metadata("lifeboat-format".into()), "v1".into());
    let with_attrs = Path::from("dir/sub/chunk.zst");
    store
        .put_opts(
            &with_attrs,
            PutPayload::from(vec![7u8; 100]),
            PutOptions {
                attributes,
                ..Default::default()
            },
        )
        .await
        .expect("put with attributes");
    let got = store.get(&with_attrs).await.unwrap();
    assert_eq!(
        got.attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref()),
        Some("application/zstd")
    );
    assert_eq!(
        got.attributes
            .get(&Attribute::Metadata("lifeboat-format".into()))
            .map(|v| v.as_ref()),
        Some("v1")
    );
    store
        .put(&Path::from("other.txt"), PutPayload::from_static(b"x"))
        .await
        .unwrap();

    // Listings.
    assert_eq!(
        list_keys(&store, Some("dir")).await,
        ["dir/hello world+1.txt", "dir/sub/chunk.zst"]
    );
    assert_eq!(
        list_keys(&store, None).await,
        ["dir/hello world+1.txt", "dir/sub/chunk.zst", "other.txt"]
    );
    assert!(list_keys(&store, Some("nothing")).await.is_empty());
    let listing = store
        .list_with_delimiter(Some(&Path::from("dir")))
        .await
        .unwrap();
    assert_eq!(
        listing
            .objects
            .iter()
            .map(|m| m.location.to_string())
            .collect::<Vec<_>>(),
        ["dir/hello world+1.txt"]
    );
    assert_eq!(listing.objects[0].size, 10);
    assert_eq!(listing.objects[0].e_tag.as_deref(), Some(e_tag.as_str()));
    assert_eq!(listing.common_prefixes, [Path::from("dir/sub")]);
    let root = store.list_with_delimiter(None).await.unwrap();
    assert_eq!(root.common_prefixes, [Path::from("dir")]);
    assert_eq!(root.objects.len(), 1);

    // Delete.
    store.delete(&path).await.expect("delete");
    assert!(matches!(
        store.head(&path).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get(&path).await,
        Err(Error::NotFound { .. })
    ));
    // Real GCS answers 404 to deleting a missing object; so does the double.
    assert!(matches!(
        store.delete(&path).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        double.object_keys(BUCKET),
        ["dir/sub/chunk.zst", "other.txt"]
    );
}

#[tokio::test]
async fn create_only_put_and_conditional_update() {
    let (double, store) = setup().await;
    let path = Path::from("manifests/0001.json");

    let first = store
        .put_opts(
            &path,
            PutPayload::from_static(b"first"),
            PutMode::Create.into(),
        )
        .await
        .expect("create-only put of a new key");
    let err = store
        .put_opts(
            &path,
            PutPayload::from_static(b"second"),
            PutMode::Create.into(),
        )
        .await
        .expect_err("create-only put of an existing key must fail");
    // object_store turns GCS's 412 on `x-goog-if-generation-match: 0` into AlreadyExists.
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "unexpected error: {err:?}"
    );
    assert_eq!(double.object(BUCKET, path.as_ref()).unwrap(), "first");

    // PutMode::Update sends x-goog-if-generation-match: <version>.
    let update = |version: Option<String>| {
        PutOptions::from(PutMode::Update(UpdateVersion {
            e_tag: None,
            version,
        }))
    };
    let second = store
        .put_opts(
            &path,
            PutPayload::from_static(b"second"),
            update(first.version.clone()),
        )
        .await
        .expect("update with the current generation");
    assert_ne!(second.version, first.version);
    let err = store
        .put_opts(
            &path,
            PutPayload::from_static(b"third"),
            update(first.version.clone()),
        )
        .await
        .expect_err("update with a stale generation must fail");
    assert!(
        matches!(err, Error::Precondition { .. }),
        "unexpected error: {err:?}"
    );
    assert_eq!(
        store.get(&path).await.unwrap().bytes().await.unwrap(),
        "second"
    );

    // Copies: x-goog-copy-source, and create-only copies.
    let copy = Path::from("manifests/copy.json");
    store.copy(&path, &copy).await.expect("copy");
    assert_eq!(
        store.get(&copy).await.unwrap().bytes().await.unwrap(),
        "second"
    );
    let err = store
        .copy_if_not_exists(&path, &copy)
        .await
        .expect_err("copy onto an existing key must fail");
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "unexpected error: {err:?}"
    );
    let renamed = Path::from("manifests/renamed.json");
    store.rename(&copy, &renamed).await.expect("rename");
    assert_eq!(
        double.object_keys(BUCKET),
        ["manifests/0001.json", "manifests/renamed.json"]
    );
    assert!(matches!(
        store.copy(&Path::from("missing"), &copy).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn multipart_upload_is_invisible_until_complete() {
    let (double, store) = setup().await;
    let path = Path::from("backups/db.sqlite.zst");
    let data = pattern(3 * MIN_PART_SIZE);

    let upload = store.put_multipart(&path).await.expect("initiate");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, MIN_PART_SIZE);
    writer.write(&data);
    // All three parts are uploaded, but the upload is not completed yet.
    writer.wait_for_capacity(0).await.expect("upload parts");
    let part_puts = double
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("partNumber="))
        .count();
    assert_eq!(part_puts, 3);
    assert_eq!(double.pending_uploads(BUCKET), 1);
    assert!(double.object_keys(BUCKET).is_empty());
    assert!(matches!(
        store.head(&path).await,
        Err(Error::NotFound { .. })
    ));
    assert!(list_keys(&store, None).await.is_empty());

    let result = writer.finish().await.expect("complete");
    let e_tag = result.e_tag.expect("complete returns an ETag");
    assert!(e_tag.ends_with("-3\""), "multipart ETag: {e_tag}");
    assert!(result.version.is_some());
    assert_eq!(double.pending_uploads(BUCKET), 0);

    let head = store.head(&path).await.unwrap();
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(head.e_tag.as_deref(), Some(e_tag.as_str()));
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(got == data, "multipart object content differs");
    // A range spanning the boundary between parts 1 and 2.
    let boundary = MIN_PART_SIZE as u64;
    let range = store
        .get_range(&path, boundary - 3..boundary + 3)
        .await
        .unwrap();
    assert_eq!(range, data[MIN_PART_SIZE - 3..MIN_PART_SIZE + 3]);
    assert_eq!(list_keys(&store, Some("backups")).await, [path.to_string()]);
}

#[tokio::test]
async fn multipart_rejects_small_non_final_parts() {
    let (double, store) = setup().await;
    let path = Path::from("small-parts");

    let id = store.create_multipart(&path).await.unwrap();
    let part1 = store
        .put_part(&path, &id, 0, PutPayload::from(vec![1u8; 1024]))
        .await
        .unwrap();
    let part2 = store
        .put_part(&path, &id, 1, PutPayload::from(vec![2u8; 1024]))
        .await
        .unwrap();
    let err = store
        .complete_multipart(&path, &id, vec![part1, part2])
        .await
        .expect_err("a non-final part below 5 MiB must be rejected");
    assert!(err.to_string().contains("EntityTooSmall"), "{err}");
    assert!(double.object_keys(BUCKET).is_empty());

    // A single small part is fine: it is also the last one.
    let id = store.create_multipart(&path).await.unwrap();
    let part = store
        .put_part(&path, &id, 0, PutPayload::from_static(b"tiny"))
        .await
        .unwrap();
    store
        .complete_multipart(&path, &id, vec![part])
        .await
        .unwrap();
    assert_eq!(double.object(BUCKET, "small-parts").unwrap(), "tiny");
}

#[tokio::test]
async fn aborted_multipart_leaves_nothing() {
    let (double, store) = setup().await;
    let path = Path::from("backups/aborted.zst");

    let mut upload = store.put_multipart(&path).await.expect("initiate");
    upload
        .put_part(PutPayload::from(pattern(MIN_PART_SIZE)))
        .await
        .expect("part 1");
    upload
        .put_part(PutPayload::from_static(b"tail"))
        .await
        .expect("part 2");
    assert_eq!(double.pending_uploads(BUCKET), 1);
    upload.abort().await.expect("abort");
    assert_eq!(double.pending_uploads(BUCKET), 0);
    assert!(double.object_keys(BUCKET).is_empty());
    assert!(matches!(
        store.head(&path).await,
        Err(Error::NotFound { .. })
    ));
    assert!(list_keys(&store, None).await.is_empty());

    // Same through WriteMultipart.
    let upload = store.put_multipart(&path).await.expect("initiate");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, MIN_PART_SIZE);
    writer.write(&pattern(MIN_PART_SIZE + 10));
    writer.abort().await.expect("abort");
    assert_eq!(double.pending_uploads(BUCKET), 0);
    assert!(double.object_keys(BUCKET).is_empty());

    // Aborting twice: the upload is gone.
    let id = store.create_multipart(&path).await.unwrap();
    store.abort_multipart(&path, &id).await.unwrap();
    assert!(matches!(
        store.abort_multipart(&path, &id).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn paginated_listing() {
    let (double, store) = setup().await;
    for key in ["p/a", "p/b", "p/c", "p/d/1", "p/d/2", "p/e", "q/z"] {
        double.insert_object(BUCKET, key, Bytes::from(key.to_string()));
    }

    let mut names = Vec::new();
    let mut prefixes = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_paginated(
                Some("p/"),
                PaginatedListOptions {
                    delimiter: Some("/".into()),
                    max_keys: Some(2),
                    page_token: token.take(),
                    ..Default::default()
                },
            )
            .await
            .expect("list page");
        pages += 1;
        assert!(page.result.objects.len() + page.result.common_prefixes.len() <= 2);
        names.extend(page.result.objects.iter().map(|m| m.location.to_string()));
        prefixes.extend(page.result.common_prefixes.iter().map(|p| p.to_string()));
        match page.page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["p/a", "p/b", "p/c", "p/e"]);
    assert_eq!(prefixes, ["p/d"]);

    // list_with_offset sends start-after.
    let after: Vec<String> = store
        .list_with_offset(Some(&Path::from("p")), &Path::from("p/c"))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(after, ["p/d/1", "p/d/2", "p/e"]);
}

#[tokio::test]
async fn missing_bucket_is_not_found() {
    let double = GcsDouble::start().await;
    let store = client(&double, "no-such-bucket");
    let path = Path::from("x");

    assert!(matches!(
        store.get(&path).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.put(&path, PutPayload::from_static(b"x")).await,
        Err(Error::NotFound { .. })
    ));
    assert!(store.list_with_delimiter(None).await.is_err());
    assert!(store.put_multipart(&path).await.is_err());

    // The body is the XML API error document.
    let response = reqwest::Client::new()
        .get(format!("{}/no-such-bucket/x", double.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body = response.text().await.unwrap();
    assert!(body.contains("<Code>NoSuchBucket</Code>"), "{body}");
}

#[tokio::test]
async fn double_stops_on_drop() {
    let double = GcsDouble::start().await;
    let addr = double.addr();
    drop(double);
    // The abort takes effect when the runtime next gets to the server task.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("listener still accepting connections after drop");
}

/// `GET {bucket}?uploads` as a raw request; returns status and body.
async fn list_uploads(double: &GcsDouble, bucket: &str, query: &str) -> (u16, String) {
    let url = format!("{}/{bucket}?uploads{query}", double.base_url());
    let response = reqwest::get(&url).await.expect("list uploads");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The values of every `<tag>` in `xml`, in order.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// The XML API's multipart upload listing: ordered by name then initiation,
/// scoped by prefix, paged with key-marker / upload-id-marker, rolled up by
/// delimiter, and emptied by completion and abort.
#[tokio::test]
async fn multipart_uploads_are_listed_like_the_xml_api() {
    let (double, store) = setup().await;
    let mut ids = Vec::new();
    for key in ["p/b", "p/a", "p/a", "p/d/1", "p/d/2", "q/z"] {
        let id = store.create_multipart(&Path::from(key)).await.unwrap();
        ids.push((key, id));
    }
    let (status, xml) = list_uploads(&double, BUCKET, "").await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<ListMultipartUploadsResult"), "{xml}");
    assert_eq!(
        elements(&xml, "Key"),
        ["p/a", "p/a", "p/b", "p/d/1", "p/d/2", "q/z"]
    );
    // Two uploads of one name: in the order they were started.
    let a_ids: Vec<_> = ids
        .iter()
        .filter(|(k, _)| *k == "p/a")
        .map(|(_, i)| i.clone())
        .collect();
    assert_eq!(elements(&xml, "UploadId")[..2], a_ids[..]);
    assert_eq!(elements(&xml, "IsTruncated"), ["false"]);
    let initiated = elements(&xml, "Initiated");
    assert!(
        initiated
            .iter()
            .all(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "{initiated:?}"
    );

    let (_, xml) = list_uploads(&double, BUCKET, "&prefix=p/&delimiter=/").await;
    assert_eq!(elements(&xml, "Key"), ["p/a", "p/a", "p/b"]);
    assert_eq!(elements(&xml, "Prefix"), ["p/", "p/d/"]);

    // Paging: two per page, resumed after (key, upload id).
    let (_, page1) = list_uploads(&double, BUCKET, "&prefix=p/&max-uploads=2").await;
    assert_eq!(elements(&page1, "Key"), ["p/a", "p/a"]);
    assert_eq!(elements(&page1, "IsTruncated"), ["true"]);
    let next_key = &elements(&page1, "NextKeyMarker")[0];
    let next_id = &elements(&page1, "NextUploadIdMarker")[0];
    assert_eq!((next_key.as_str(), next_id), ("p/a", &a_ids[1]));
    let (_, page2) = list_uploads(
        &double,
        BUCKET,
        &format!("&prefix=p/&max-uploads=2&key-marker={next_key}&upload-id-marker={next_id}"),
    )
    .await;
    assert_eq!(elements(&page2, "Key"), ["p/b", "p/d/1"]);
    // key-marker alone: names strictly after it.
    let (_, after) = list_uploads(&double, BUCKET, "&key-marker=p/a").await;
    assert_eq!(elements(&after, "Key"), ["p/b", "p/d/1", "p/d/2", "q/z"]);
    // upload-id-marker without key-marker is ignored.
    let (_, ignored) =
        list_uploads(&double, BUCKET, &format!("&upload-id-marker={}", a_ids[0])).await;
    assert_eq!(elements(&ignored, "Key").len(), 6);

    // Completed and aborted uploads are no longer listed.
    let (key, id) = &ids[0];
    store.abort_multipart(&Path::from(*key), id).await.unwrap();
    let (_, xml) = list_uploads(&double, BUCKET, "&prefix=p/b").await;
    assert!(elements(&xml, "Key").is_empty(), "{xml}");

    let (status, xml) = list_uploads(&double, "no-such-bucket", "").await;
    assert_eq!(status, 404);
    assert_eq!(elements(&xml, "Code"), ["NoSuchBucket"]);
}
