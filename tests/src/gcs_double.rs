//! An in-memory test double of the Google Cloud Storage **XML API**.
//!
//! The `fake-gcs-server` emulator does not implement the XML API write path
//! (`PUT /bucket/object` answers `400 invalid uploadType`), yet that is exactly
//! what `object_store`'s GCS client (v0.14) uses for uploads. [`GcsDouble`]
//! serves the subset of the XML API that the client needs, over real HTTP/1.1
//! on `127.0.0.1`, so the whole write path can be tested without a cloud.
//!
//! Point the client at it with
//! `GoogleCloudStorageBuilder::with_base_url(double.base_url())`, a service
//! account key with `"disable_oauth": true`, and
//! `ClientOptions::with_allow_http(true)`. Authentication headers are ignored.
//!
//! # Implemented operations
//!
//! Path-style URLs only: `/{bucket}` and `/{bucket}/{object}`, where both parts
//! are percent-decoded (so `a%2Fb` and `a/b` name the same object).
//!
//! Objects:
//! - `PUT /{bucket}/{object}`: single-request upload. Stores the body and the
//!   `Content-Type` (default `application/octet-stream`), `Cache-Control`,
//!   `Content-Disposition`, `Content-Encoding`, `Content-Language`,
//!   `x-goog-storage-class` and `x-goog-meta-*` headers. Answers `200` with
//!   `ETag` (quoted hex MD5), `x-goog-generation`, `x-goog-metageneration`,
//!   `x-goog-hash` (`crc32c=`, `md5=`), `x-goog-stored-content-length` and
//!   `x-goog-stored-content-encoding`.
//! - `PUT /{bucket}/{object}` with `x-goog-copy-source: [/]{bucket}/{object}`:
//!   copy (also across buckets), honouring `x-goog-copy-source-generation` and
//!   `x-goog-metadata-directive: COPY|REPLACE`. Answers `200` with a
//!   `CopyObjectResult` body.
//! - `GET` and `HEAD /{bucket}/{object}`: download / metadata, with
//!   - `Range: bytes=a-b`, `bytes=a-`, `bytes=-n` (`206` + `Content-Range`;
//!     `416 InvalidRange` when unsatisfiable; multi-range requests get the
//!     whole object with `200`, as GCS does);
//!   - `?generation=N` (the current generation only: versioning is not kept);
//!   - `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`
//!     (`412` / `304`).
//! - `DELETE /{bucket}/{object}` (`204`; `404 NoSuchKey` if absent, as GCS
//!   does), with optional `?generation=N`.
//! - Preconditions `x-goog-if-generation-match` (`0` = must not exist) and
//!   `x-goog-if-metageneration-match` on every object write, copy (checked on
//!   the destination), multipart completion, delete, get and head. A failed
//!   precondition is `412 PreconditionFailed`, which `object_store` maps to
//!   `Error::Precondition`, and to `Error::AlreadyExists` for
//!   `PutMode::Create` and `copy_if_not_exists`.
//!
//! Multipart uploads (XML API, S3-compatible):
//! - `POST /{bucket}/{object}?uploads`: initiate; takes the same metadata
//!   headers as a single upload; answers `InitiateMultipartUploadResult`.
//! - `PUT /{bucket}/{object}?partNumber=N&uploadId=ID`: upload part
//!   (`1 <= N <= 10000`; re-uploading a number replaces it); answers `ETag`.
//! - `POST /{bucket}/{object}?uploadId=ID` with a `CompleteMultipartUpload`
//!   body: complete. Parts must be listed in ascending order
//!   (`400 InvalidPartOrder`), exist with the given ETag (`400 InvalidPart`),
//!   and all but the last must be at least 5 MiB (`400 EntityTooSmall`). The
//!   object becomes visible only now; its ETag is S3-style
//!   `"<md5 of part md5s>-<count>"`. Answers `CompleteMultipartUploadResult`
//!   plus `x-goog-generation`.
//! - `DELETE /{bucket}/{object}?uploadId=ID`: abort (`204`), dropping all parts.
//! - An unknown upload id is `404 NoSuchUpload`.
//! - `GET /{bucket}?uploads`: list the open uploads
//!   (`ListMultipartUploadsResult`), ordered by object name, then by
//!   initiation (upload ids sort in that order), with `prefix`, `delimiter`
//!   (`CommonPrefixes`), `key-marker` (names after it), `upload-id-marker`
//!   (with `key-marker`: that name's later uploads too; ignored without it)
//!   and `max-uploads` (at most 1000). A truncated page has `IsTruncated`
//!   true and `NextKeyMarker` / `NextUploadIdMarker`. Each `Upload` has
//!   `Key`, `UploadId`, `StorageClass` and `Initiated`.
//!
//! Buckets:
//! - `GET /{bucket}?list-type=2`: list objects (V2) with `prefix`,
//!   `delimiter`, `start-after`, `max-keys` (at most 1000) and
//!   `continuation-token` / `NextContinuationToken` pagination. Returns
//!   `Contents` (`Key`, `Generation`, `MetaGeneration`, `LastModified`,
//!   `ETag`, `Size`), `CommonPrefixes`, `KeyCount` and `IsTruncated`.
//! - `PUT /{bucket}` (create; `409 BucketAlreadyOwnedByYou` if it exists),
//!   `HEAD /{bucket}`, `DELETE /{bucket}` (`409 BucketNotEmpty` if it has
//!   objects).
//! - `PUT /{bucket}?lifecycle` stores a `LifecycleConfiguration` document as
//!   sent (`400 MalformedLifecycleConfiguration` when the body is not one);
//!   `GET /{bucket}?lifecycle` answers it, or an empty
//!   `<LifecycleConfiguration/>` when none was set, as GCS does. Nothing is
//!   ever expired.
//! - Any request naming a bucket that does not exist is `404 NoSuchBucket`.
//!
//! Errors use the XML API body
//! `<Error><Code>..</Code><Message>..</Message><Details>..</Details></Error>`.
//!
//! # Not implemented
//!
//! These answer `400` with code `NotImplemented` (deliberately not `501`:
//! `object_store` retries 5xx responses with back-off, which would turn a
//! missing feature into a slow, confusing test failure):
//! - listing buckets (`GET /`), list objects V1 (`GET /{bucket}` without
//!   `list-type=2`), listing parts (`GET /{bucket}/{object}?uploadId=`),
//!   `encoding-type=url` on the uploads listing, and any other bucket
//!   sub-resource (`?acl`, `?cors`, `?versioning`, ...);
//! - HTML form uploads (`POST /{bucket}` / `POST /{bucket}/{object}` without
//!   `uploads` / `uploadId`) and the resumable upload protocol.
//!
//! Not modelled at all (accepted and ignored, or simply absent):
//! - authentication and authorisation (`Authorization` is ignored), signed
//!   URLs, ACLs, IAM, requester pays, CMEK / CSEK encryption headers;
//! - object versioning (only the live generation exists), holds, retention;
//! - `Content-MD5` / `x-goog-hash` validation of uploads, decompressive
//!   transcoding of `Content-Encoding: gzip` objects, `x-goog-component-count`;
//! - object sub-resources (`?acl`, `?tagging`, ...): the query is ignored and
//!   the request is treated as a plain object request;
//! - virtual-hosted-style URLs (`bucket.host/object`), the JSON API, and
//!   `If-*` conditional headers on writes (only the `x-goog-if-*` ones apply).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Minimum size of every multipart part except the last one (5 MiB).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Largest accepted `partNumber`.
const MAX_PART_NUMBER: u32 = 10_000;
/// Default and maximum page size of a list request.
const MAX_KEYS: usize = 1000;

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const S3_NAMESPACE: &str = "http://doc.s3.amazonaws.com/2006-03-01";
const XML_DECLARATION: &str = "<?xml version='1.0' encoding='UTF-8'?>";

type Body = Full<Bytes>;

/// A GCS XML API double serving on `127.0.0.1` from a background tokio task.
///
/// State is in memory. The server stops when the value is dropped.
pub struct GcsDouble {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl fmt::Debug for GcsDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("GcsDouble")
            .field("addr", &self.addr)
            .field("buckets", &state.buckets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl GcsDouble {
    /// Binds `127.0.0.1:0` and starts serving in a background task.
    ///
    /// Must be called inside a tokio runtime.
    pub async fn start() -> GcsDouble {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("GCS double: bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("GCS double: local address of listener");
        let state = Arc::new(Mutex::new(State::default()));
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        GcsDouble {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, for `GoogleCloudStorageBuilder::with_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the double listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates an empty bucket; does nothing if it already exists.
    pub fn create_bucket(&self, name: &str) {
        lock(&self.state)
            .buckets
            .entry(name.to_string())
            .or_default();
    }

    /// Names of the visible objects in `bucket`, sorted (empty if the bucket
    /// does not exist).
    pub fn object_keys(&self, bucket: &str) -> Vec<String> {
        lock(&self.state)
            .buckets
            .get(bucket)
            .map(|b| b.objects.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Content of a visible object, if it exists.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Bytes> {
        lock(&self.state)
            .buckets
            .get(bucket)?
            .objects
            .get(key)
            .map(|o| o.data.clone())
    }

    /// Stores an object directly (as a single upload with default metadata
    /// would).
    ///
    /// # Panics
    /// If the bucket does not exist.
    pub fn insert_object(&self, bucket: &str, key: &str, data: impl Into<Bytes>) {
        let mut state = lock(&self.state);
        let generation = state.generations.next();
        let bucket = state
            .buckets
            .get_mut(bucket)
            .unwrap_or_else(|| panic!("GCS double: no bucket named {bucket:?}"));
        let object = Object::single(data.into(), default_attributes(), generation);
        bucket.objects.insert(key.to_string(), object);
    }

    /// Sets `bucket`'s lifecycle configuration, as `PUT /{bucket}?lifecycle`
    /// would.
    ///
    /// # Panics
    /// If the bucket does not exist.
    pub fn set_lifecycle(&self, bucket: &str, xml: &str) {
        lock(&self.state)
            .buckets
            .get_mut(bucket)
            .unwrap_or_else(|| panic!("GCS double: no bucket named {bucket:?}"))
            .lifecycle = Some(Bytes::from(xml.to_string()));
    }

    /// Number of multipart uploads in `bucket` that were initiated but neither
    /// completed nor aborted.
    pub fn pending_uploads(&self, bucket: &str) -> usize {
        lock(&self.state)
            .buckets
            .get(bucket)
            .map_or(0, |b| b.uploads.len())
    }

    /// Every request received so far, as `"METHOD /path?query"`, in arrival
    /// order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// Answer at most `n` uploads per `GET /{bucket}?uploads` page, even if
    /// the client asks for more. GCS pages at 1000; a lower limit makes a
    /// client page through a handful of uploads as it would through
    /// thousands.
    pub fn limit_upload_pages(&self, n: usize) {
        lock(&self.state).upload_page_limit = Some(n.max(1));
    }
}

impl Drop for GcsDouble {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task with it.
        self.server.abort();
    }
}

// ---------------------------------------------------------------------------
// State

#[derive(Default)]
struct State {
    buckets: BTreeMap<String, Bucket>,
    generations: Generations,
    next_upload: u64,
    requests: Vec<String>,
    upload_page_limit: Option<usize>,
}

#[derive(Default)]
struct Bucket {
    objects: BTreeMap<String, Object>,
    uploads: HashMap<String, Upload>,
    /// The `LifecycleConfiguration` document last PUT, kept as sent (GCS
    /// does not act on it here: nothing expires).
    lifecycle: Option<Bytes>,
}

/// Hands out strictly increasing generation numbers (microseconds since the
/// epoch, like GCS).
#[derive(Default)]
struct Generations {
    last: i64,
}

impl Generations {
    fn next(&mut self) -> i64 {
        self.last = (self.last + 1).max(Utc::now().timestamp_micros());
        self.last
    }
}

/// Stored metadata headers (`Content-Type`, `x-goog-meta-*`, ...).
type Attributes = Vec<(HeaderName, HeaderValue)>;

#[derive(Clone)]
struct Object {
    data: Bytes,
    attributes: Attributes,
    generation: i64,
    metageneration: i64,
    /// Quoted, as sent in the `ETag` header.
    etag: String,
    /// Absent for objects assembled from multipart uploads, as in GCS.
    md5: Option<[u8; 16]>,
    crc32c: u32,
    last_modified: DateTime<Utc>,
}

impl Object {
    fn single(data: Bytes, attributes: Attributes, generation: i64) -> Object {
        let md5 = md5(&data);
        Object {
            etag: format!("\"{}\"", hex(&md5)),
            md5: Some(md5),
            crc32c: crc32c(&data),
            data,
            attributes,
            generation,
            metageneration: 1,
            last_modified: Utc::now(),
        }
    }

    fn attribute(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

struct Upload {
    key: String,
    attributes: Attributes,
    parts: BTreeMap<u32, Part>,
    initiated: DateTime<Utc>,
}

struct Part {
    data: Bytes,
    md5: [u8; 16],
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Server plumbing

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(Arc::clone(&state), request)
                    });
                    // Connection errors (client hung up, ...) only end this connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The request body could not be read.",
                Some(e.to_string()),
            ));
        }
    };
    let mut response = {
        let mut state = lock(&state);
        state.requests.push(format!(
            "{} {}",
            parts.method,
            parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path(), |pq| pq.as_str())
        ));
        route(&mut state, &parts, body)
    };
    if parts.method == Method::HEAD {
        // Headers (including Content-Length) are kept; a HEAD never has a body.
        *response.body_mut() = Full::new(Bytes::new());
    }
    Ok(response)
}

/// A parsed request, as the handlers see it.
struct Req<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    query: Query,
    body: Bytes,
}

impl Req<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn route(state: &mut State, parts: &hyper::http::request::Parts, body: Bytes) -> Response<Body> {
    let path = parts.uri.path();
    let path = path.strip_prefix('/').unwrap_or(path);
    let (raw_bucket, raw_key) = match path.split_once('/') {
        Some((bucket, key)) => (bucket, Some(key)),
        None => (path, None),
    };
    let Some(bucket) = percent_decode(raw_bucket, false) else {
        return invalid_uri();
    };
    let key = match raw_key.filter(|k| !k.is_empty()) {
        Some(raw) => match percent_decode(raw, false) {
            Some(key) => Some(key),
            None => return invalid_uri(),
        },
        None => None,
    };
    let req = Req {
        method: &parts.method,
        headers: &parts.headers,
        query: Query::parse(parts.uri.query()),
        body,
    };
    if bucket.is_empty() {
        return not_implemented("listing buckets (GET /)");
    }
    match key {
        None => bucket_request(state, &bucket, &req),
        Some(key) => object_request(state, &bucket, &key, &req),
    }
}

// ---------------------------------------------------------------------------
// Bucket requests

fn bucket_request(state: &mut State, name: &str, req: &Req<'_>) -> Response<Body> {
    if *req.method == Method::PUT && req.query.is_empty() {
        if state.buckets.contains_key(name) {
            return error(
                StatusCode::CONFLICT,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
                None,
            );
        }
        state.buckets.insert(name.to_string(), Bucket::default());
        return empty(StatusCode::OK);
    }
    let Some(bucket) = state.buckets.get(name) else {
        return no_such_bucket(name);
    };
    match *req.method {
        Method::GET if req.query.get("list-type") == Some("2") => list_v2(name, bucket, &req.query),
        Method::GET if req.query.has("uploads") && req.query.get("encoding-type").is_none() => {
            let limit = state.upload_page_limit.unwrap_or(MAX_KEYS);
            list_uploads(name, &state.buckets[name], &req.query, limit)
        }
        Method::GET if req.query.is_empty() => not_implemented("list objects V1 (use list-type=2)"),
        Method::GET if req.query.names() == ["lifecycle"] => {
            let body = bucket.lifecycle.clone().unwrap_or_else(|| {
                Bytes::from(format!("{XML_DECLARATION}<LifecycleConfiguration/>"))
            });
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            );
            let mut response = Response::new(Full::new(body));
            *response.headers_mut() = headers;
            response
        }
        Method::PUT if req.query.names() == ["lifecycle"] => {
            let text = std::str::from_utf8(&req.body).unwrap_or("");
            if !text.contains("<LifecycleConfiguration") {
                return error(
                    StatusCode::BAD_REQUEST,
                    "MalformedLifecycleConfiguration",
                    "The XML you provided was not well-formed or did not validate against our published schema.",
                    None,
                );
            }
            let body = req.body.clone();
            if let Some(b) = state.buckets.get_mut(name) {
                b.lifecycle = Some(body);
            }
            empty(StatusCode::OK)
        }
        Method::HEAD if req.query.is_empty() => empty(StatusCode::OK),
        Method::DELETE if req.query.is_empty() => {
            if !bucket.objects.is_empty() {
                return error(
                    StatusCode::CONFLICT,
                    "BucketNotEmpty",
                    "The bucket you tried to delete is not empty.",
                    Some(name.to_string()),
                );
            }
            state.buckets.remove(name);
            empty(StatusCode::NO_CONTENT)
        }
        _ => not_implemented(&format!(
            "{} on a bucket with query {:?}",
            req.method,
            req.query.names()
        )),
    }
}

enum ListEntry<'a> {
    Object(&'a str, &'a Object),
    Prefix(String),
}

impl ListEntry<'_> {
    fn name(&self) -> &str {
        match self {
            ListEntry::Object(key, _) => key,
            ListEntry::Prefix(prefix) => prefix,
        }
    }
}

/// `GET /{bucket}?list-type=2`
fn list_v2(name: &str, bucket: &Bucket, query: &Query) -> Response<Body> {
    let prefix = query.get("prefix").unwrap_or("");
    let delimiter = query.get("delimiter").filter(|d| !d.is_empty());
    let start_after = query.get("start-after");
    let token = match query.get("continuation-token") {
        Some(token) => match unhex(token) {
            Some(token) => Some(token),
            None => return invalid_argument("Invalid continuation token."),
        },
        None => None,
    };
    let max_keys = match query.get("max-keys") {
        Some(v) => match v.parse::<usize>() {
            Ok(n) => n.min(MAX_KEYS),
            Err(_) => return invalid_argument("max-keys must be a non-negative integer."),
        },
        None => MAX_KEYS,
    };

    // Keys sharing a common prefix are contiguous in sorted order, so grouping
    // while iterating keeps the entries sorted and unique.
    let mut entries: Vec<ListEntry<'_>> = Vec::new();
    for (key, object) in bucket
        .objects
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
    {
        if !key.starts_with(prefix) {
            break;
        }
        if start_after.is_some_and(|after| key.as_str() <= after) {
            continue;
        }
        if let Some(delimiter) = delimiter
            && let Some(at) = key[prefix.len()..].find(delimiter)
        {
            let common = &key[..prefix.len() + at + delimiter.len()];
            if !matches!(entries.last(), Some(ListEntry::Prefix(p)) if p == common) {
                entries.push(ListEntry::Prefix(common.to_string()));
            }
            continue;
        }
        entries.push(ListEntry::Object(key, object));
    }
    if let Some(token) = &token {
        entries.retain(|e| e.name() > token.as_str());
    }
    let truncated = entries.len() > max_keys;
    entries.truncate(max_keys);
    let next_token = if truncated {
        entries.last().map(|e| hex(e.name().as_bytes()))
    } else {
        None
    };

    let mut xml = format!("{XML_DECLARATION}<ListBucketResult xmlns=\"{S3_NAMESPACE}\">");
    push_element(&mut xml, "Name", name);
    push_element(&mut xml, "Prefix", prefix);
    if let Some(after) = start_after {
        push_element(&mut xml, "StartAfter", after);
    }
    if let Some(token) = query.get("continuation-token") {
        push_element(&mut xml, "ContinuationToken", token);
    }
    push_element(&mut xml, "MaxKeys", &max_keys.to_string());
    if let Some(delimiter) = delimiter {
        push_element(&mut xml, "Delimiter", delimiter);
    }
    push_element(
        &mut xml,
        "IsTruncated",
        if truncated { "true" } else { "false" },
    );
    push_element(&mut xml, "KeyCount", &entries.len().to_string());
    if let Some(token) = &next_token {
        push_element(&mut xml, "NextContinuationToken", token);
    }
    // object_store's quick-xml deserializer needs each repeated element to be
    // contiguous: all Contents first, then all CommonPrefixes.
    for entry in &entries {
        if let ListEntry::Object(key, object) = entry {
            xml.push_str("<Contents>");
            push_element(&mut xml, "Key", key);
            push_element(&mut xml, "Generation", &object.generation.to_string());
            push_element(
                &mut xml,
                "MetaGeneration",
                &object.metageneration.to_string(),
            );
            push_element(
                &mut xml,
                "LastModified",
                &object
                    .last_modified
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            );
            push_element(&mut xml, "ETag", &object.etag);
            push_element(&mut xml, "Size", &object.data.len().to_string());
            xml.push_str("</Contents>");
        }
    }
    for entry in &entries {
        if let ListEntry::Prefix(prefix) = entry {
            xml.push_str("<CommonPrefixes>");
            push_element(&mut xml, "Prefix", prefix);
            xml.push_str("</CommonPrefixes>");
        }
    }
    xml.push_str("</ListBucketResult>");
    xml_response(StatusCode::OK, HeaderMap::new(), xml)
}

/// `GET /{bucket}?uploads`
fn list_uploads(name: &str, bucket: &Bucket, query: &Query, page_limit: usize) -> Response<Body> {
    let prefix = query.get("prefix").unwrap_or("");
    let delimiter = query.get("delimiter").filter(|d| !d.is_empty());
    let key_marker = query.get("key-marker").filter(|m| !m.is_empty());
    // Without key-marker, upload-id-marker is ignored (as GCS documents).
    let id_marker = key_marker.and(query.get("upload-id-marker").filter(|m| !m.is_empty()));
    let max_uploads = match query.get("max-uploads") {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_KEYS),
            _ => return invalid_argument("max-uploads must be a positive integer."),
        },
        None => MAX_KEYS,
    }
    .min(page_limit);

    let mut open: Vec<(&str, &str, &Upload)> = bucket
        .uploads
        .iter()
        .map(|(id, u)| (u.key.as_str(), id.as_str(), u))
        .filter(|(key, id, _)| {
            // A common prefix handed out as NextKeyMarker was listed whole.
            let rolled_up =
                |km: &str| delimiter.is_some_and(|d| km.ends_with(d)) && key.starts_with(km);
            key.starts_with(prefix)
                && match (key_marker, id_marker) {
                    (None, _) => true,
                    (Some(km), None) => *key > km && !rolled_up(km),
                    (Some(km), Some(im)) => {
                        (*key > km && !rolled_up(km)) || (*key == km && *id > im)
                    }
                }
        })
        .collect();
    open.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

    // Entries are uploads and, with a delimiter, common prefixes (each
    // counted once, as one entry).
    enum Entry<'a> {
        Upload(&'a str, &'a str, &'a Upload),
        Prefix(String),
    }
    let mut entries: Vec<Entry<'_>> = Vec::new();
    let mut truncated = false;
    for (key, id, upload) in open {
        let common = delimiter.and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|at| key[..prefix.len() + at + d.len()].to_string())
        });
        if let Some(common) = &common
            && matches!(entries.last(), Some(Entry::Prefix(p)) if p == common)
        {
            continue;
        }
        if entries.len() == max_uploads {
            truncated = true;
            break;
        }
        entries.push(match common {
            Some(common) => Entry::Prefix(common),
            None => Entry::Upload(key, id, upload),
        });
    }

    let mut xml = format!("{XML_DECLARATION}<ListMultipartUploadsResult xmlns=\"{S3_NAMESPACE}\">");
    push_element(&mut xml, "Bucket", name);
    push_element(&mut xml, "KeyMarker", key_marker.unwrap_or(""));
    push_element(&mut xml, "UploadIdMarker", id_marker.unwrap_or(""));
    if truncated {
        let (next_key, next_id) = match entries.last() {
            Some(Entry::Upload(key, id, _)) => (key.to_string(), id.to_string()),
            Some(Entry::Prefix(p)) => (p.clone(), String::new()),
            None => (String::new(), String::new()),
        };
        push_element(&mut xml, "NextKeyMarker", &next_key);
        push_element(&mut xml, "NextUploadIdMarker", &next_id);
    }
    if let Some(delimiter) = delimiter {
        push_element(&mut xml, "Delimiter", delimiter);
    }
    push_element(&mut xml, "Prefix", prefix);
    push_element(&mut xml, "MaxUploads", &max_uploads.to_string());
    push_element(
        &mut xml,
        "IsTruncated",
        if truncated { "true" } else { "false" },
    );
    for entry in &entries {
        if let Entry::Upload(key, id, upload) = entry {
            let class = upload
                .attributes
                .iter()
                .find(|(n, _)| n.as_str() == "x-goog-storage-class")
                .and_then(|(_, v)| v.to_str().ok())
                .unwrap_or("STANDARD");
            xml.push_str("<Upload>");
            push_element(&mut xml, "Key", key);
            push_element(&mut xml, "UploadId", id);
            push_element(&mut xml, "StorageClass", class);
            push_element(
                &mut xml,
                "Initiated",
                &upload
                    .initiated
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            );
            xml.push_str("</Upload>");
        }
    }
    for entry in &entries {
        if let Entry::Prefix(prefix) = entry {
            xml.push_str("<CommonPrefixes>");
            push_element(&mut xml, "Prefix", prefix);
            xml.push_str("</CommonPrefixes>");
        }
    }
    xml.push_str("</ListMultipartUploadsResult>");
    xml_response(StatusCode::OK, HeaderMap::new(), xml)
}

// ---------------------------------------------------------------------------
// Object requests

fn object_request(
    state: &mut State,
    bucket_name: &str,
    key: &str,
    req: &Req<'_>,
) -> Response<Body> {
    if !state.buckets.contains_key(bucket_name) {
        return no_such_bucket(bucket_name);
    }
    let method = req.method.clone();
    match method {
        Method::GET | Method::HEAD if req.query.has("uploadId") => {
            not_implemented("listing the parts of a multipart upload")
        }
        Method::GET | Method::HEAD => {
            let bucket = &state.buckets[bucket_name];
            get_object(bucket_name, bucket, key, req)
        }
        Method::PUT if req.query.has("uploadId") || req.query.has("partNumber") => {
            upload_part(state, bucket_name, key, req)
        }
        Method::PUT if req.headers.contains_key("x-goog-copy-source") => {
            copy_object(state, bucket_name, key, req)
        }
        Method::PUT => put_object(state, bucket_name, key, req),
        Method::POST if req.query.has("uploads") => initiate_upload(state, bucket_name, key, req),
        Method::POST if req.query.has("uploadId") => complete_upload(state, bucket_name, key, req),
        Method::POST => not_implemented("HTML form and resumable uploads"),
        Method::DELETE if req.query.has("uploadId") => abort_upload(state, bucket_name, key, req),
        Method::DELETE => delete_object(state, bucket_name, key, req),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            Some(method.to_string()),
        ),
    }
}

/// `GET` / `HEAD /{bucket}/{object}`
fn get_object(bucket_name: &str, bucket: &Bucket, key: &str, req: &Req<'_>) -> Response<Body> {
    let Some(object) = bucket.objects.get(key) else {
        return no_such_key(bucket_name, key);
    };
    if let Some(generation) = req.query.get("generation")
        && generation.parse::<i64>().ok() != Some(object.generation)
    {
        return no_such_key(bucket_name, key);
    }
    if let Some(response) = check_goog_preconditions(req.headers, Some(object)) {
        return response;
    }
    if let Some(response) = check_http_conditions(req, object) {
        return response;
    }

    let mut headers = HeaderMap::new();
    object_headers(&mut headers, object);
    let size = object.data.len() as u64;
    let (status, body) = match req.header("range").map(|r| parse_range(r, size)) {
        None | Some(RangeSpec::Whole) => (StatusCode::OK, object.data.clone()),
        Some(RangeSpec::Unsatisfiable) => {
            let mut response = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range cannot be satisfied.",
                req.header("range").map(str::to_string),
            );
            set_header(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return response;
        }
        Some(RangeSpec::Partial(first, last)) => {
            set_header(
                &mut headers,
                header::CONTENT_RANGE,
                &format!("bytes {first}-{last}/{size}"),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                object.data.slice(first as usize..=last as usize),
            )
        }
    };
    if *req.method == Method::HEAD {
        // hyper derives Content-Length from the body for GET; a HEAD response
        // has no body, so the length of what a GET would return is set here.
        set_header(
            &mut headers,
            header::CONTENT_LENGTH,
            &body.len().to_string(),
        );
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `PUT /{bucket}/{object}`
fn put_object(state: &mut State, bucket_name: &str, key: &str, req: &Req<'_>) -> Response<Body> {
    let bucket = state.buckets.get_mut(bucket_name).expect("bucket checked");
    if let Some(response) = check_goog_preconditions(req.headers, bucket.objects.get(key)) {
        return response;
    }
    let object = Object::single(
        req.body.clone(),
        attributes_from(req.headers),
        state.generations.next(),
    );
    let mut headers = HeaderMap::new();
    write_result_headers(&mut headers, &object);
    bucket.objects.insert(key.to_string(), object);
    with_headers(empty(StatusCode::OK), headers)
}

/// `PUT /{bucket}/{object}` with `x-goog-copy-source`
fn copy_object(state: &mut State, bucket_name: &str, key: &str, req: &Req<'_>) -> Response<Body> {
    let source = req.header("x-goog-copy-source").unwrap_or_default();
    let source = source.strip_prefix('/').unwrap_or(source);
    let Some((src_bucket, src_key)) = source
        .split_once('/')
        .and_then(|(b, k)| Some((percent_decode(b, false)?, percent_decode(k, false)?)))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
    else {
        return invalid_argument("x-goog-copy-source must be of the form bucket/object.");
    };
    let Some(src) = state.buckets.get(&src_bucket) else {
        return no_such_bucket(&src_bucket);
    };
    let Some(src) = src.objects.get(&src_key) else {
        return no_such_key(&src_bucket, &src_key);
    };
    if let Some(generation) = req.header("x-goog-copy-source-generation")
        && generation.parse::<i64>().ok() != Some(src.generation)
    {
        return no_such_key(&src_bucket, &src_key);
    }
    let src = src.clone();

    let bucket = state.buckets.get_mut(bucket_name).expect("bucket checked");
    if let Some(response) = check_goog_preconditions(req.headers, bucket.objects.get(key)) {
        return response;
    }
    let replace = req
        .header("x-goog-metadata-directive")
        .is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"));
    let object = Object {
        attributes: if replace {
            attributes_from(req.headers)
        } else {
            src.attributes
        },
        generation: state.generations.next(),
        metageneration: 1,
        last_modified: Utc::now(),
        ..src
    };
    let mut headers = HeaderMap::new();
    write_result_headers(&mut headers, &object);
    let mut xml = format!("{XML_DECLARATION}<CopyObjectResult>");
    push_element(
        &mut xml,
        "LastModified",
        &object
            .last_modified
            .to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    push_element(&mut xml, "ETag", &object.etag);
    xml.push_str("</CopyObjectResult>");
    bucket.objects.insert(key.to_string(), object);
    xml_response(StatusCode::OK, headers, xml)
}

/// `DELETE /{bucket}/{object}`
fn delete_object(state: &mut State, bucket_name: &str, key: &str, req: &Req<'_>) -> Response<Body> {
    let bucket = state.buckets.get_mut(bucket_name).expect("bucket checked");
    let Some(object) = bucket.objects.get(key) else {
        return no_such_key(bucket_name, key);
    };
    if let Some(generation) = req.query.get("generation")
        && generation.parse::<i64>().ok() != Some(object.generation)
    {
        return no_such_key(bucket_name, key);
    }
    if let Some(response) = check_goog_preconditions(req.headers, Some(object)) {
        return response;
    }
    bucket.objects.remove(key);
    empty(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// Multipart uploads

/// `POST /{bucket}/{object}?uploads`
fn initiate_upload(
    state: &mut State,
    bucket_name: &str,
    key: &str,
    req: &Req<'_>,
) -> Response<Body> {
    state.next_upload += 1;
    let upload_id = format!(
        "ABPnzm{:012x}{:08x}",
        state.next_upload,
        Utc::now().timestamp_subsec_nanos()
    );
    let bucket = state.buckets.get_mut(bucket_name).expect("bucket checked");
    bucket.uploads.insert(
        upload_id.clone(),
        Upload {
            key: key.to_string(),
            attributes: attributes_from(req.headers),
            parts: BTreeMap::new(),
            initiated: Utc::now(),
        },
    );
    let mut xml =
        format!("{XML_DECLARATION}<InitiateMultipartUploadResult xmlns=\"{S3_NAMESPACE}\">");
    push_element(&mut xml, "Bucket", bucket_name);
    push_element(&mut xml, "Key", key);
    push_element(&mut xml, "UploadId", &upload_id);
    xml.push_str("</InitiateMultipartUploadResult>");
    xml_response(StatusCode::OK, HeaderMap::new(), xml)
}

/// Looks up the upload named by `?uploadId=`, which must belong to `key`.
fn find_upload<'b>(
    bucket: &'b mut Bucket,
    key: &str,
    req: &Req<'_>,
) -> Option<(String, &'b mut Upload)> {
    let upload_id = req.query.get("uploadId").unwrap_or_default();
    let upload = bucket.uploads.get_mut(upload_id)?;
    (upload.key == key).then(|| (upload_id.to_string(), upload))
}

fn no_such_upload(req: &Req<'_>) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchUpload",
        "The requested upload was not found.",
        req.query.get("uploadId").map(str::to_string),
    )
}

/// `PUT /{bucket}/{object}?partNumber=N&uploadId=ID`
fn upload_part(state: &mut State, bucket_name: &str, key: &str, req: &Req<'_>) -> Response<Body> {
    let part_number = match req.query.get("partNumber").map(str::parse::<u32>) {
        Some(Ok(n)) if (1..=MAX_PART_NUMBER).contains(&n) => n,
        _ => {
            return invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive.",
            );
        }
    };
    let bucket = state.buckets.get_mut(bucket_name).expect("bucket checked");
    let Some((_, upload)) = find_upload(bucket, key, req) else {
        return no_such_upload(req);
    };
    let part = Part {
        md5: md5(&req.body),
        data: req.body.clone(),
    };
    let mut headers = HeaderMap::new();
    set_header(
        &mut headers,
        header::ETAG,
        &format!("\"{}\"", hex(&part.md5)),
    );
    headers.append(
        "x-goog-hash",
        header_value(&format!("md5={}", base64(&part.md5))),
    );
    upload.parts.insert(part_number, part);
    with_headers(empty(StatusCode::OK), headers)
}

/// `POST /{bucket}/{object}?uploadId=ID`
fn complete_upload(
    state: &mut State,
    bucket_name: &str,
    key: &str,
    req: &Req<'_>,
) -> Response<Body> {
    let bucket = state.buckets.get_mut(bucket_name).expect("bucket checked");
    let Some((upload_id, upload)) = find_upload(bucket, key, req) else {
        return no_such_upload(req);
    };
    let Some(listed) = parse_complete_body(&req.body).filter(|parts| !parts.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
            None,
        );
    };
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidPartOrder",
            "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            None,
        );
    }
    let mut parts = Vec::with_capacity(listed.len());
    for (number, etag) in &listed {
        match upload.parts.get(number) {
            Some(part) if unquote(etag) == hex(&part.md5) => parts.push(part),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.",
                    Some(format!("part {number}, ETag {etag}")),
                );
            }
        }
    }
    if let Some((number, _)) = listed
        .iter()
        .zip(&parts)
        .take(parts.len() - 1)
        .find(|(_, part)| part.data.len() < MIN_PART_SIZE)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed object size.",
            Some(format!(
                "part {} is smaller than {MIN_PART_SIZE} bytes and is not the last part",
                number.0
            )),
        );
    }

    let mut data = BytesMut::with_capacity(parts.iter().map(|p| p.data.len()).sum());
    let mut md5s = Vec::with_capacity(parts.len() * 16);
    for part in &parts {
        data.extend_from_slice(&part.data);
        md5s.extend_from_slice(&part.md5);
    }
    let data = data.freeze();
    let etag = format!("\"{}-{}\"", hex(&md5(&md5s)), parts.len());
    let attributes = upload.attributes.clone();

    if let Some(response) = check_goog_preconditions(req.headers, bucket.objects.get(key)) {
        return response;
    }
    bucket.uploads.remove(&upload_id);
    let object = Object {
        crc32c: crc32c(&data),
        md5: None,
        etag,
        data,
        attributes,
        generation: state.generations.next(),
        metageneration: 1,
        last_modified: Utc::now(),
    };
    let mut headers = HeaderMap::new();
    write_result_headers(&mut headers, &object);
    let mut xml =
        format!("{XML_DECLARATION}<CompleteMultipartUploadResult xmlns=\"{S3_NAMESPACE}\">");
    push_element(
        &mut xml,
        "Location",
        &format!("http://storage.googleapis.com/{bucket_name}/{key}"),
    );
    push_element(&mut xml, "Bucket", bucket_name);
    push_element(&mut xml, "Key", key);
    push_element(&mut xml, "ETag", &object.etag);
    xml.push_str("</CompleteMultipartUploadResult>");
    bucket.objects.insert(key.to_string(), object);
    xml_response(StatusCode::OK, headers, xml)
}

/// `DELETE /{bucket}/{object}?uploadId=ID`
fn abort_upload(state: &mut State, bucket_name: &str, key: &str, req: &Req<'_>) -> Response<Body> {
    let bucket = state.buckets.get_mut(bucket_name).expect("bucket checked");
    let Some((upload_id, _)) = find_upload(bucket, key, req) else {
        return no_such_upload(req);
    };
    bucket.uploads.remove(&upload_id);
    empty(StatusCode::NO_CONTENT)
}

/// Extracts `(PartNumber, ETag)` pairs from a `CompleteMultipartUpload` body.
fn parse_complete_body(body: &[u8]) -> Option<Vec<(u32, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("<CompleteMultipartUpload") {
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<Part>") {
        let after = &rest[start + "<Part>".len()..];
        let end = after.find("</Part>")?;
        let inner = &after[..end];
        let number = element_text(inner, "PartNumber")?.trim().parse().ok()?;
        let etag = xml_unescape(element_text(inner, "ETag")?.trim());
        parts.push((number, etag));
        rest = &after[end + "</Part>".len()..];
    }
    Some(parts)
}

fn element_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(&xml[start..end])
}

// ---------------------------------------------------------------------------
// Preconditions and ranges

/// `x-goog-if-generation-match` / `x-goog-if-metageneration-match` against the
/// current live object (`None` if there is none). Returns the error response
/// if a precondition does not hold.
fn check_goog_preconditions(
    headers: &HeaderMap,
    current: Option<&Object>,
) -> Option<Response<Body>> {
    for name in [
        "x-goog-if-generation-match",
        "x-goog-if-metageneration-match",
    ] {
        let Some(value) = headers.get(name) else {
            continue;
        };
        let Some(want) = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        else {
            return Some(invalid_argument(&format!("Invalid value for {name}.")));
        };
        let holds = match (name, current) {
            ("x-goog-if-generation-match", None) => want == 0,
            ("x-goog-if-generation-match", Some(object)) => object.generation == want,
            (_, None) => false,
            (_, Some(object)) => object.metageneration == want,
        };
        if !holds {
            return Some(precondition_failed(name));
        }
    }
    None
}

/// RFC 9110 conditional GET/HEAD: `If-Match`, `If-Unmodified-Since` (412),
/// `If-None-Match`, `If-Modified-Since` (304).
fn check_http_conditions(req: &Req<'_>, object: &Object) -> Option<Response<Body>> {
    let modified = object.last_modified.timestamp();
    let since = |name: &str| {
        req.header(name)
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.timestamp())
    };
    if let Some(if_match) = req.header("if-match") {
        if !etag_list_matches(if_match, &object.etag) {
            return Some(precondition_failed("If-Match"));
        }
    } else if since("if-unmodified-since").is_some_and(|t| modified > t) {
        return Some(precondition_failed("If-Unmodified-Since"));
    }
    let not_modified = match req.header("if-none-match") {
        Some(if_none_match) => etag_list_matches(if_none_match, &object.etag),
        None => since("if-modified-since").is_some_and(|t| modified <= t),
    };
    if not_modified {
        let mut headers = HeaderMap::new();
        set_header(&mut headers, header::ETAG, &object.etag);
        set_header(
            &mut headers,
            header::LAST_MODIFIED,
            &http_date(&object.last_modified),
        );
        set_header(
            &mut headers,
            "x-goog-generation",
            &object.generation.to_string(),
        );
        return Some(with_headers(empty(StatusCode::NOT_MODIFIED), headers));
    }
    None
}

fn etag_list_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || unquote(candidate.trim_start_matches("W/")) == unquote(etag)
    })
}

enum RangeSpec {
    Whole,
    /// First and last byte, inclusive.
    Partial(u64, u64),
    Unsatisfiable,
}

/// Parses a single `Range: bytes=...` against an object of `size` bytes.
/// Anything that is not a single well-formed byte range is ignored (whole
/// object), as GCS does.
fn parse_range(value: &str, size: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeSpec::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeSpec::Whole;
        };
        if suffix == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Partial(size.saturating_sub(suffix), size - 1);
    }
    let Ok(first) = first.parse::<u64>() else {
        return RangeSpec::Whole;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(last) if last >= first => last,
            _ => return RangeSpec::Whole,
        }
    };
    if first >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Partial(first, last.min(size - 1))
}

// ---------------------------------------------------------------------------
// Headers

/// Metadata headers of an upload request that are stored with the object.
fn attributes_from(headers: &HeaderMap) -> Attributes {
    let mut attributes: Attributes = headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            matches!(
                name,
                "content-type"
                    | "cache-control"
                    | "content-disposition"
                    | "content-encoding"
                    | "content-language"
                    | "x-goog-storage-class"
            ) || name.starts_with("x-goog-meta-")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if !attributes.iter().any(|(n, _)| n == header::CONTENT_TYPE) {
        attributes.extend(default_attributes());
    }
    attributes
}

fn default_attributes() -> Attributes {
    vec![(
        header::CONTENT_TYPE,
        HeaderValue::from_static(DEFAULT_CONTENT_TYPE),
    )]
}

/// Headers GCS returns after a write (upload, copy, multipart completion).
fn write_result_headers(headers: &mut HeaderMap, object: &Object) {
    set_header(headers, header::ETAG, &object.etag);
    set_header(headers, "x-goog-generation", &object.generation.to_string());
    set_header(
        headers,
        "x-goog-metageneration",
        &object.metageneration.to_string(),
    );
    set_header(
        headers,
        "x-goog-stored-content-length",
        &object.data.len().to_string(),
    );
    set_header(
        headers,
        "x-goog-stored-content-encoding",
        object
            .attribute(&header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity"),
    );
    headers.append(
        "x-goog-hash",
        header_value(&format!("crc32c={}", base64(&object.crc32c.to_be_bytes()))),
    );
    if let Some(md5) = &object.md5 {
        headers.append("x-goog-hash", header_value(&format!("md5={}", base64(md5))));
    }
}

/// Headers of a GET / HEAD response, except the length and range ones.
fn object_headers(headers: &mut HeaderMap, object: &Object) {
    for (name, value) in &object.attributes {
        headers.append(name.clone(), value.clone());
    }
    if !headers.contains_key("x-goog-storage-class") {
        set_header(headers, "x-goog-storage-class", "STANDARD");
    }
    write_result_headers(headers, object);
    set_header(
        headers,
        header::LAST_MODIFIED,
        &http_date(&object.last_modified),
    );
    set_header(headers, header::ACCEPT_RANGES, "bytes");
}

fn set_header<K: hyper::header::IntoHeaderName>(headers: &mut HeaderMap, name: K, value: &str) {
    headers.insert(name, header_value(value));
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_bytes(value.as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn http_date(time: &DateTime<Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

// ---------------------------------------------------------------------------
// Responses

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn with_headers(mut response: Response<Body>, headers: HeaderMap) -> Response<Body> {
    response.headers_mut().extend(headers);
    response
}

fn xml_response(status: StatusCode, headers: HeaderMap, xml: String) -> Response<Body> {
    let mut response = with_headers(Response::new(Full::new(Bytes::from(xml))), headers);
    *response.status_mut() = status;
    set_header(
        response.headers_mut(),
        header::CONTENT_TYPE,
        "application/xml; charset=UTF-8",
    );
    response
}

/// An XML API error response.
fn error(status: StatusCode, code: &str, message: &str, details: Option<String>) -> Response<Body> {
    let mut xml = format!("{XML_DECLARATION}<Error>");
    push_element(&mut xml, "Code", code);
    push_element(&mut xml, "Message", message);
    if let Some(details) = details {
        push_element(&mut xml, "Details", &details);
    }
    xml.push_str("</Error>");
    xml_response(status, HeaderMap::new(), xml)
}

fn no_such_bucket(bucket: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchBucket",
        "The specified bucket does not exist.",
        Some(bucket.to_string()),
    )
}

fn no_such_key(bucket: &str, key: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchKey",
        "The specified key does not exist.",
        Some(format!("No such object: {bucket}/{key}")),
    )
}

fn precondition_failed(condition: &str) -> Response<Body> {
    error(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold.",
        Some(format!("Condition: {condition}")),
    )
}

fn invalid_argument(details: &str) -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidArgument",
        "Invalid argument.",
        Some(details.to_string()),
    )
}

fn invalid_uri() -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidURI",
        "Couldn't parse the specified URI.",
        None,
    )
}

fn not_implemented(what: &str) -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        "NotImplemented",
        "A header or query you provided requested a function that is not implemented by the GCS test double.",
        Some(what.to_string()),
    )
}

// ---------------------------------------------------------------------------
// Encoding helpers

/// Query string parameters, form-decoded (`+` is a space).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            query
                .unwrap_or_default()
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let decode = |s: &str| percent_decode(s, true).unwrap_or_else(|| s.to_string());
                    (decode(name), decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`); malformed
/// escapes are kept literally. `None` if the result is not UTF-8.
fn percent_decode(input: &str, plus_is_space: bool) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn push_element(xml: &mut String, name: &str, text: &str) {
    xml.push('<');
    xml.push_str(name);
    xml.push('>');
    for c in text.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\'' => xml.push_str("&apos;"),
            c => xml.push(c),
        }
    }
    xml.push_str("</");
    xml.push_str(name);
    xml.push('>');
}

fn xml_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

fn unquote(etag: &str) -> &str {
    etag.trim()
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag.trim())
}

fn md5(data: &[u8]) -> [u8; 16] {
    let digest = Md5::digest(data);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest);
    out
}

/// CRC32C (Castagnoli), as in GCS's `x-goog-hash: crc32c=`.
fn crc32c(data: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut crc = i as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
            *entry = crc;
        }
        table
    });
    !data.iter().fold(!0u32, |crc, &b| {
        table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_gcs_encodings() {
        // Values as reported by GCS (and fake-gcs-server) for "hello".
        assert_eq!(base64(&crc32c(b"hello").to_be_bytes()), "mnG7TA==");
        assert_eq!(base64(&md5(b"hello")), "XUFAKrxLKna5cZ2REBfFkg==");
        assert_eq!(hex(&md5(b"hello")), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb+c%20d", true).unwrap(), "a/b c d");
        assert_eq!(percent_decode("a+b%2", false).unwrap(), "a+b%2");
        assert_eq!(percent_decode("100%", false).unwrap(), "100%");
        assert_eq!(unhex(&hex("dir/ü".as_bytes())).unwrap(), "dir/ü");
        let body = br#"<CompleteMultipartUpload><Part><ETag>"ab"</ETag><PartNumber>1</PartNumber></Part><Part><ETag>&quot;cd&quot;</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>"#;
        assert_eq!(
            parse_complete_body(body).unwrap(),
            vec![(1, "\"ab\"".to_string()), (2, "\"cd\"".to_string())]
        );
    }

    #[test]
    fn ranges() {
        assert!(matches!(
            parse_range("bytes=0-4", 10),
            RangeSpec::Partial(0, 4)
        ));
        assert!(matches!(
            parse_range("bytes=5-", 10),
            RangeSpec::Partial(5, 9)
        ));
        assert!(matches!(
            parse_range("bytes=-3", 10),
            RangeSpec::Partial(7, 9)
        ));
        assert!(matches!(
            parse_range("bytes=-30", 10),
            RangeSpec::Partial(0, 9)
        ));
        assert!(matches!(
            parse_range("bytes=8-100", 10),
            RangeSpec::Partial(8, 9)
        ));
        assert!(matches!(
            parse_range("bytes=10-", 10),
            RangeSpec::Unsatisfiable
        ));
        assert!(matches!(parse_range("bytes=0-1,3-4", 10), RangeSpec::Whole));
        assert!(matches!(parse_range("bytes=4-1", 10), RangeSpec::Whole));
    }
}
