//! The shared [`Sink`] conformance suite: every sink runs the same checks.
//! Each function panics with a message naming the broken contract.
//!
//! Enabled by the `testing` feature (and in this crate's own tests).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::error::ErrorKind;
use crate::sink::{PendingUpload, PutMode, PutOptions, Sink, SinkExt, wait_for_cleanup};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// What a sink can do, for the checks that depend on it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Capabilities {
    /// An upload whose writer dies without cleanup leaves state in the store
    /// (every real store: an open multipart upload, a partial file). Not so
    /// for memory, whose unfinished parts live in the upload object itself.
    pub interrupted_writes_persist: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            interrupted_writes_persist: true,
        }
    }
}

impl Capabilities {
    /// A store that keeps nothing of an unfinished upload (memory).
    pub fn no_persistent_uploads() -> Self {
        Self {
            interrupted_writes_persist: false,
        }
    }
}

/// Run every check under a fresh random prefix, for a store whose
/// interrupted writes persist (every real store).
pub async fn run_all(sink: &dyn Sink) {
    run_with(sink, Capabilities::default()).await;
}

/// Run every check under a fresh random prefix.
pub async fn run_with(sink: &dyn Sink, caps: Capabilities) {
    sink.check().await.expect("check() on a healthy sink");
    put_get_head_list_delete(sink).await;
    missing_key_is_not_found(sink).await;
    create_only_put_refuses_existing(sink).await;
    upload_is_invisible_until_complete(sink).await;
    aborted_upload_leaves_nothing(sink).await;
    dropped_upload_leaves_nothing(sink).await;
    list_is_scoped_to_prefix(sink).await;
    list_stream_is_complete_across_pages(sink).await;
    list_with_delimiter_lists_one_level(sink).await;
    put_modes_create_overwrite_update(sink).await;
    killed_writer_is_pending_until_aborted(sink, caps).await;
    dropped_complete_leaves_nothing(sink, std::future::ready(()), std::future::ready(())).await;
}

/// Round trip of a small object.
pub async fn put_get_head_list_delete(sink: &dyn Sink) {
    let base = unique("basic");
    let key = format!("{base}/a/b.txt");
    sink.put(
        &key,
        Bytes::from_static(b"hello lifeboat"),
        PutOptions::default(),
    )
    .await
    .expect("put");
    assert_eq!(
        &sink.get_bytes(&key).await.expect("get")[..],
        b"hello lifeboat"
    );
    let head = sink.head(&key).await.expect("head");
    assert_eq!(head.size, 14, "head size");
    assert_eq!(head.key, key, "head key is sink-relative");
    let listed = sink.list(&base).await.expect("list");
    assert_eq!(listed.len(), 1, "list finds the object: {listed:?}");
    assert_eq!(listed[0].key, key, "listed keys are sink-relative");
    assert_eq!(listed[0].size, 14);
    sink.put(&key, Bytes::from_static(b"v2"), PutOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(&sink.get_bytes(&key).await.unwrap()[..], b"v2");
    sink.delete(&key).await.expect("delete");
    assert!(
        sink.list(&base).await.unwrap().is_empty(),
        "deleted object still listed"
    );
    sink.delete(&key)
        .await
        .expect("deleting a missing key is not an error");
}

/// A missing key is `NotFound`, of kind [`ErrorKind::NotFound`] (exit 3),
/// for get and head: never the kind of an unreachable sink.
pub async fn missing_key_is_not_found(sink: &dyn Sink) {
    let key = format!("{}/nothing-here", unique("missing"));
    let err = sink.head(&key).await.expect_err("head of missing key");
    assert!(
        matches!(err, crate::Error::NotFound { .. }),
        "head: {err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound, "head: {err:?}");
    let err = match sink.get(&key).await {
        Ok(mut s) => s
            .next()
            .await
            .expect("an error item")
            .expect_err("get of missing key"),
        Err(e) => e,
    };
    assert!(matches!(err, crate::Error::NotFound { .. }), "get: {err:?}");
    assert_eq!(err.kind(), ErrorKind::NotFound, "get: {err:?}");
    assert_eq!(err.exit_code(), 3);
    assert!(!err.is_retryable());
}

/// `create_only` never overwrites.
pub async fn create_only_put_refuses_existing(sink: &dyn Sink) {
    let key = format!("{}/manifest.json", unique("create"));
    sink.put(
        &key,
        Bytes::from_static(b"first"),
        PutOptions::create_only(),
    )
    .await
    .expect("create-only put of a new key");
    let err = sink
        .put(
            &key,
            Bytes::from_static(b"second"),
            PutOptions::create_only(),
        )
        .await
        .expect_err("create-only put of an existing key");
    assert_eq!(err.kind(), ErrorKind::Sink, "{err:?}");
    assert!(
        matches!(err, crate::Error::AlreadyExists { .. }),
        "a taken key is AlreadyExists, not a generic sink error: {err:?}"
    );
    assert_eq!(
        &sink.get_bytes(&key).await.unwrap()[..],
        b"first",
        "overwritten"
    );
    sink.delete(&key).await.unwrap();
}

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
}

/// A multipart upload (12 MiB in uneven writes: several parts) is invisible
/// until complete, and exact after.
pub async fn upload_is_invisible_until_complete(sink: &dyn Sink) {
    let base = unique("multi");
    let key = format!("{base}/data.bin");
    let mut upload = sink.upload(&key).await.expect("start upload");
    let mut expected = Vec::new();
    for (i, len) in [3 << 20, 5 << 20, 1, (4 << 20) - 1].into_iter().enumerate() {
        let chunk = pattern(len, i as u8);
        expected.extend_from_slice(&chunk);
        upload.write(chunk).await.expect("write");
    }
    assert!(
        sink.list(&base).await.unwrap().is_empty(),
        "visible before complete"
    );
    assert!(matches!(
        sink.head(&key).await,
        Err(crate::Error::NotFound { .. })
    ));
    upload.complete().await.expect("complete");
    let got = sink.get_bytes(&key).await.unwrap();
    assert_eq!(got.len(), expected.len(), "size after complete");
    assert!(got[..] == expected[..], "content after complete");
    sink.delete(&key).await.unwrap();
}

/// An aborted upload leaves nothing visible.
pub async fn aborted_upload_leaves_nothing(sink: &dyn Sink) {
    let base = unique("abort");
    let key = format!("{base}/data.bin");
    let mut upload = sink.upload(&key).await.expect("start upload");
    upload.write(pattern(6 << 20, 1)).await.expect("write");
    upload.abort().await.expect("abort");
    assert!(
        sink.list(&base).await.unwrap().is_empty(),
        "aborted upload visible"
    );
}

/// An upload dropped without complete (a cancelled run) leaves nothing
/// visible, and once its background cleanup ran, nothing pending.
pub async fn dropped_upload_leaves_nothing(sink: &dyn Sink) {
    let base = unique("drop");
    let key = format!("{base}/data.bin");
    let mut upload = sink.upload(&key).await.expect("start upload");
    upload.write(pattern(1 << 20, 2)).await.expect("write");
    drop(upload);
    assert!(
        sink.list(&base).await.unwrap().is_empty(),
        "dropped upload visible"
    );
    wait_for_cleanup(Duration::from_secs(30)).await;
    assert_eq!(
        sink.list_pending(&base).await.expect("list_pending"),
        vec![],
        "a dropped upload stays pending"
    );
}

/// A writer killed mid-upload (no `Drop` runs: `kill -9`, OOM, power loss)
/// leaves a pending upload that `list_pending` reports under its key, that is
/// never visible, and that `abort_pending` removes for good.
pub async fn killed_writer_is_pending_until_aborted(sink: &dyn Sink, caps: Capabilities) {
    let base = unique("killed");
    let key = format!("{base}/data.bin");
    let mut upload = sink.upload(&key).await.expect("start upload");
    // More than two 8 MiB parts, so parts were sent before the "kill".
    for i in 0..17 {
        upload.write(pattern(1 << 20, i)).await.expect("write");
    }
    std::mem::forget(upload);

    assert!(
        sink.list(&base).await.unwrap().is_empty(),
        "a killed writer's data is visible"
    );
    assert!(
        matches!(sink.head(&key).await, Err(crate::Error::NotFound { .. })),
        "a killed writer's key exists"
    );
    let pending = sink.list_pending(&base).await.expect("list_pending");
    if !caps.interrupted_writes_persist {
        assert_eq!(pending, vec![], "nothing can be pending on this store");
        let made_up = PendingUpload {
            key: key.clone(),
            id: "no-such-upload".into(),
            started: chrono::Utc::now(),
        };
        sink.abort_pending(&made_up)
            .await
            .expect("aborting what is not there is not an error");
        return;
    }
    assert_eq!(pending.len(), 1, "the killed writer's upload: {pending:?}");
    let p = &pending[0];
    assert_eq!(
        p.key, key,
        "pending uploads are keyed by their sink-relative target"
    );
    assert!(!p.id.is_empty());
    let age = chrono::Utc::now().signed_duration_since(p.started);
    assert!(
        age > -chrono::Duration::minutes(5),
        "started in the future: {p:?}"
    );
    assert_eq!(
        sink.list_pending("")
            .await
            .expect("list_pending of everything")
            .iter()
            .filter(|q| q.key == key)
            .count(),
        1,
        "the root listing has it too"
    );
    assert_eq!(
        sink.list_pending(&format!("{base}/data")).await.unwrap(),
        vec![],
        "the prefix is a directory, not a string prefix"
    );
    assert_eq!(
        sink.list_pending(&unique("elsewhere")).await.unwrap(),
        vec![],
        "listed outside its prefix"
    );

    sink.abort_pending(p).await.expect("abort_pending");
    assert_eq!(
        sink.list_pending(&base)
            .await
            .expect("list_pending after abort"),
        vec![],
        "still pending after abort_pending"
    );
    sink.abort_pending(p)
        .await
        .expect("aborting an upload that is gone is not an error");
    assert!(sink.list(&base).await.unwrap().is_empty());
}

/// A `complete()` whose future is dropped (Ctrl-C, a timeout) leaves nothing
/// behind: no object under the key, no pending upload.
///
/// The future is polled once, then until `drop_when` resolves (a test can
/// make that the moment a proxy holds the completion request); it must not
/// finish before. Then the background cleanup is awaited, then `settle` (a
/// test can wait there for a held request to reach the service late), and
/// only then is the sink checked.
pub async fn dropped_complete_leaves_nothing(
    sink: &dyn Sink,
    drop_when: impl Future<Output = ()>,
    settle: impl Future<Output = ()>,
) {
    let base = unique("dropcomplete");
    let key = format!("{base}/data.bin");
    let mut upload = sink.upload(&key).await.expect("start upload");
    for (i, len) in [5 << 20, 4 << 20, 3 << 20].into_iter().enumerate() {
        upload.write(pattern(len, i as u8)).await.expect("write");
    }
    {
        let complete = upload.complete();
        tokio::pin!(complete);
        tokio::select! {
            biased;
            r = &mut complete => panic!(
                "complete() finished ({r:?}) before it could be dropped: the case proves nothing"
            ),
            () = drop_when => {}
        }
    } // the complete() future is dropped here, mid-flight
    wait_for_cleanup(Duration::from_secs(60)).await;
    settle.await;
    assert!(
        matches!(sink.head(&key).await, Err(crate::Error::NotFound { .. })),
        "a cancelled completion left the object visible"
    );
    assert!(
        sink.list(&base).await.unwrap().is_empty(),
        "a cancelled completion left objects"
    );
    assert_eq!(
        sink.list_pending(&base).await.expect("list_pending"),
        vec![],
        "a cancelled completion left the upload open"
    );
}

/// Listing a prefix returns exactly the keys under it.
pub async fn list_is_scoped_to_prefix(sink: &dyn Sink) {
    let base = unique("scope");
    for k in ["a/1", "a/2", "ab/3", "b/4"] {
        sink.put(
            &format!("{base}/{k}"),
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let mut a: Vec<String> = sink
        .list(&format!("{base}/a"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    a.sort();
    assert_eq!(
        a,
        vec![format!("{base}/a/1"), format!("{base}/a/2")],
        "prefix is a directory, not a string prefix"
    );
    assert_eq!(sink.list(&base).await.unwrap().len(), 4);
    for k in ["a/1", "a/2", "ab/3", "b/4"] {
        sink.delete(&format!("{base}/{k}")).await.unwrap();
    }
}

async fn put_all(sink: &dyn Sink, keys: &[String]) {
    futures::stream::iter(keys)
        .map(|k| sink.put(k, Bytes::from(k.clone()), PutOptions::default()))
        .buffer_unordered(8)
        .for_each(|r| async { r.expect("put") })
        .await;
}

async fn delete_all(sink: &dyn Sink, keys: &[String]) {
    futures::stream::iter(keys)
        .map(|k| sink.delete(k))
        .buffer_unordered(8)
        .for_each(|r| async { r.expect("delete") })
        .await;
}

/// `list_stream` yields every object below the prefix exactly once, across
/// as many pages as it takes (run it with a small
/// [`list_page_size`](crate::SinkOptions::list_page_size) to cross pages:
/// 23 objects), can be stopped early, and is empty for a missing prefix.
/// `list` is the same listing collected.
pub async fn list_stream_is_complete_across_pages(sink: &dyn Sink) {
    let base = unique("pages");
    let mut keys: Vec<String> = (0..23).map(|i| format!("{base}/p/{i:02}")).collect();
    keys.push(format!("{base}/q/deep/x"));
    put_all(sink, &keys).await;
    keys.sort();

    let listed: Vec<_> = sink
        .list_stream(&base)
        .map(|r| r.expect("list_stream item"))
        .collect()
        .await;
    let mut got: Vec<String> = listed.iter().map(|o| o.key.clone()).collect();
    got.sort();
    assert_eq!(got, keys, "list_stream misses or repeats objects");
    for o in &listed {
        assert_eq!(o.size, o.key.len() as u64, "listed size of {}", o.key);
    }
    let mut collected: Vec<String> = sink
        .list(&base)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    collected.sort();
    assert_eq!(collected, keys, "list is not list_stream collected");
    assert_eq!(
        sink.list(&format!("{base}/p")).await.unwrap().len(),
        23,
        "a sub-prefix across pages"
    );

    // A listed version, where the listing carries one, is head's.
    let head = sink.head(&listed[0].key).await.expect("head");
    if let Some(v) = &listed[0].version {
        assert_eq!(
            head.version.as_ref(),
            Some(v),
            "listed version is not head's"
        );
    }

    // A consumer can stop early.
    let first: Vec<_> = sink.list_stream(&base).take(3).collect().await;
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|r| r.is_ok()), "{first:?}");

    let missing = unique("nothing-here");
    let none: Vec<_> = sink.list_stream(&missing).collect().await;
    assert!(
        none.is_empty(),
        "a missing prefix is an empty listing, never an error: {none:?}"
    );
    assert!(
        sink.list(&missing)
            .await
            .expect("list of a missing prefix")
            .is_empty()
    );
    delete_all(sink, &keys).await;
}

/// `list_with_delimiter` gives one level: the objects directly under the
/// prefix and the common prefixes of the deeper ones, sorted; a
/// "directory" with no object below it (only an unfinished upload) is not
/// one; a missing prefix is empty.
pub async fn list_with_delimiter_lists_one_level(sink: &dyn Sink) {
    let base = unique("delim");
    let keys: Vec<String> = ["b.txt", "a.txt", "d2/w", "d1/y/z", "d1/x", "d10/v", "dx"]
        .iter()
        .map(|k| format!("{base}/{k}"))
        .collect();
    put_all(sink, &keys).await;
    let mut upload = sink
        .upload(&format!("{base}/pending/data.bin"))
        .await
        .expect("start upload");
    upload.write(pattern(1024, 9)).await.expect("write");

    let top = sink
        .list_with_delimiter(&base)
        .await
        .expect("list_with_delimiter");
    let objects: Vec<&str> = top.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        objects,
        [
            format!("{base}/a.txt"),
            format!("{base}/b.txt"),
            format!("{base}/dx")
        ],
        "objects directly under the prefix, sorted"
    );
    assert_eq!(top.objects[0].size, keys[1].len() as u64);
    assert_eq!(
        top.common_prefixes,
        [
            format!("{base}/d1"),
            format!("{base}/d10"),
            format!("{base}/d2")
        ],
        "common prefixes, sorted, without trailing slash, none for an unfinished upload"
    );

    let d1 = sink
        .list_with_delimiter(&format!("{base}/d1"))
        .await
        .unwrap();
    assert_eq!(
        d1.objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        [format!("{base}/d1/x")]
    );
    assert_eq!(d1.common_prefixes, [format!("{base}/d1/y")]);
    assert_eq!(
        sink.list_with_delimiter(&format!("{base}/d"))
            .await
            .unwrap(),
        crate::sink::ListResult::default(),
        "the prefix is a directory, not a string prefix"
    );
    assert_eq!(
        sink.list_with_delimiter(&unique("nothing-here"))
            .await
            .expect("a missing prefix is not an error"),
        crate::sink::ListResult::default()
    );
    let root = sink.list_with_delimiter("").await.expect("the root");
    assert!(
        root.common_prefixes.contains(&base),
        "the root's common prefixes are sink-relative: {:?}",
        root.common_prefixes
    );
    upload.abort().await.expect("abort");
    delete_all(sink, &keys).await;
}

/// [`PutMode`]: `Create` refuses a taken key, `Overwrite` replaces, and
/// `Update` replaces only the version it names: a stale version, or a
/// missing key, is [`Error::Precondition`](crate::Error::Precondition)
/// (kind `sink`, exit 3, not retryable) and changes nothing. Every write
/// makes a new version, even of the same size in quick succession.
pub async fn put_modes_create_overwrite_update(sink: &dyn Sink) {
    let key = format!("{}/lease.json", unique("modes"));
    let put = |data: &'static str, mode: PutMode| {
        let key = key.clone();
        async move {
            sink.put_versioned(&key, Bytes::from_static(data.as_bytes()), mode.into())
                .await
        }
    };
    let head_version = || async {
        sink.head(&key)
            .await
            .expect("head")
            .version
            .expect("head gives the version of a sink that supports Update")
    };
    let body = || async { sink.get_bytes(&key).await.expect("get") };
    let refused = |r: crate::Result<Option<String>>, what: &str| {
        let err = r.expect_err(what);
        assert!(
            matches!(err, crate::Error::Precondition { .. }),
            "{what}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Sink, "{what}");
        assert_eq!(err.exit_code(), 3, "{what}");
        assert!(!err.is_retryable(), "{what}");
    };

    refused(
        put(
            "x",
            PutMode::Update {
                version: "1".into(),
            },
        )
        .await,
        "an update of a missing key",
    );
    assert!(
        matches!(sink.head(&key).await, Err(crate::Error::NotFound { .. })),
        "a refused update created the key"
    );

    let returned = put("first", PutMode::Create).await.expect("create");
    let v1 = head_version().await;
    if let Some(r) = returned {
        assert_eq!(r, v1, "put_versioned returns the version head reads");
    }
    let err = put("again", PutMode::Create)
        .await
        .expect_err("create of a taken key");
    assert!(matches!(err, crate::Error::AlreadyExists { .. }), "{err:?}");

    let returned = put(
        "secnd",
        PutMode::Update {
            version: v1.clone(),
        },
    )
    .await
    .expect("update from the current version");
    let v2 = head_version().await;
    if let Some(r) = returned {
        assert_eq!(r, v2);
    }
    assert_ne!(v1, v2, "an update makes a new version");
    assert_eq!(&body().await[..], b"secnd");

    refused(
        put(
            "third",
            PutMode::Update {
                version: v1.clone(),
            },
        )
        .await,
        "an update from a stale version",
    );
    assert_eq!(&body().await[..], b"secnd", "a refused update wrote");

    put("forth", PutMode::Overwrite).await.expect("overwrite");
    let v3 = head_version().await;
    assert_eq!(&body().await[..], b"forth");
    refused(
        put(
            "fifth",
            PutMode::Update {
                version: v2.clone(),
            },
        )
        .await,
        "an update from the version before an overwrite",
    );
    put(
        "fifth",
        PutMode::Update {
            version: v3.clone(),
        },
    )
    .await
    .expect("update after an overwrite");
    let v4 = head_version().await;
    let mut all = vec![v1, v2, v3, v4];
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "a version repeated: {all:?}");
    assert_eq!(&body().await[..], b"fifth");
    sink.delete(&key).await.unwrap();
}

/// Of writers updating from the same version at once, exactly one wins.
/// (Not in [`run_all`]: moto's `If-Match` check and write are not one locked
/// step.)
pub async fn concurrent_updates_one_wins(sink: &dyn Sink) {
    let key = format!("{}/lease.json", unique("race"));
    sink.put(&key, Bytes::from_static(b"0"), PutOptions::default())
        .await
        .unwrap();
    let v = sink.head(&key).await.unwrap().version.expect("version");
    let results: Vec<_> = futures::future::join_all((0..8).map(|i| {
        let (key, v) = (key.clone(), v.clone());
        async move {
            sink.put(&key, Bytes::from(format!("{i}")), PutOptions::update(v))
                .await
        }
    }))
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, crate::Error::Precondition { .. })),
        "{results:?}"
    );
    sink.delete(&key).await.unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_sink_conforms() {
        run_with(
            &crate::ObjectStoreSink::memory(),
            Capabilities::no_persistent_uploads(),
        )
        .await;
        concurrent_updates_one_wins(&crate::ObjectStoreSink::memory()).await;
    }

    #[tokio::test]
    async fn local_sink_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let sink = crate::LocalSink::new(dir.path()).unwrap();
        run_all(&sink).await;
        concurrent_updates_one_wins(&sink).await;
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            left,
            Vec::<std::path::PathBuf>::new(),
            "files or empty directories left"
        );
    }
}
