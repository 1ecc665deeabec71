//! The shared [`Sink`] conformance suite: every sink runs the same checks.
//! Each function panics with a message naming the broken contract.
//!
//! Enabled by the `testing` feature (and in this crate's own tests).

use bytes::Bytes;
use futures::StreamExt;

use crate::error::ErrorKind;
use crate::sink::{PutOptions, Sink, SinkExt};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Run every check under a fresh random prefix.
pub async fn run_all(sink: &dyn Sink) {
    sink.check().await.expect("check() on a healthy sink");
    put_get_head_list_delete(sink).await;
    missing_key_is_not_found(sink).await;
    create_only_put_refuses_existing(sink).await;
    upload_is_invisible_until_complete(sink).await;
    aborted_upload_leaves_nothing(sink).await;
    dropped_upload_leaves_nothing(sink).await;
    list_is_scoped_to_prefix(sink).await;
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

/// A missing key is `NotFound`, for get and head.
pub async fn missing_key_is_not_found(sink: &dyn Sink) {
    let key = format!("{}/nothing-here", unique("missing"));
    let err = sink.head(&key).await.expect_err("head of missing key");
    assert!(
        matches!(err, crate::Error::NotFound { .. }),
        "head: {err:?}"
    );
    let err = match sink.get(&key).await {
        Ok(mut s) => s
            .next()
            .await
            .expect("an error item")
            .expect_err("get of missing key"),
        Err(e) => e,
    };
    assert!(matches!(err, crate::Error::NotFound { .. }), "get: {err:?}");
    assert_eq!(err.kind(), ErrorKind::Sink);
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

/// An upload dropped without complete (a cancelled run) leaves nothing visible.
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

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_sink_conforms() {
        super::run_all(&crate::ObjectStoreSink::memory()).await;
    }

    #[tokio::test]
    async fn local_sink_conforms() {
        let dir = tempfile::tempdir().unwrap();
        super::run_all(&crate::LocalSink::new(dir.path()).unwrap()).await;
    }
}
