//! Helpers shared by the integration tests: the servers `scripts/test`
//! starts, a tiny HTTP client for bucket set-up, and sample databases.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// Whether missing test servers are a failure (`scripts/test` sets
/// `LIFEBOAT_REQUIRE_SERVERS=1`) or a reason to skip (a bare `cargo test`).
pub fn servers_required() -> bool {
    std::env::var("LIFEBOAT_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v.trim_end_matches('/').to_string()),
        _ if servers_required() => panic!("{var} is not set but LIFEBOAT_REQUIRE_SERVERS=1"),
        _ => {
            eprintln!("SKIPPED: {var} is not set; run scripts/test to start the test servers");
            None
        }
    }
}

/// The moto S3 endpoint, or `None` (the test skips) outside `scripts/test`.
pub fn s3_endpoint() -> Option<String> {
    server("LIFEBOAT_TEST_S3_ENDPOINT")
}

/// The real fake-gcs-server, or `None`.
pub fn fake_gcs() -> Option<String> {
    server("LIFEBOAT_TEST_FAKE_GCS")
}

/// A bucket name no other test uses.
pub fn unique_bucket(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

/// A plain HTTP/1.1 request (no TLS); returns status and body.
pub fn http(method: &str, url: &str, body: &[u8]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(hostport).expect("connect to test server");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Create a bucket on moto.
pub fn create_s3_bucket(endpoint: &str, bucket: &str) {
    let (status, body) = http("PUT", &format!("{endpoint}/{bucket}"), b"");
    assert!(status == 200, "create bucket {bucket}: {status} {body}");
}

/// Keys in a moto bucket (at most 1000), via the S3 XML listing.
pub fn s3_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let (status, body) = http("GET", &format!("{endpoint}/{bucket}?list-type=2"), b"");
    assert_eq!(status, 200, "list {bucket}: {body}");
    body.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
        .collect()
}

/// A sample SQLite database in WAL mode: `items` with `rows` rows and
/// `notes` with `rows / 10`.
pub fn sample_db(path: &Path, rows: usize) {
    backup_core::source::sqlite::write_sample_database(path, rows).expect("write sample database");
}

/// Every regular file below `dir`, hidden ones included.
pub fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A size-limited tmpfs mounted on a fresh directory, unmounted on drop: a
/// disk that fills up. Needs root (`mount`); `None` (and "SKIPPED") when it
/// cannot be mounted, unless `LIFEBOAT_REQUIRE_SERVERS=1` (then panic).
#[derive(Debug)]
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mount `bytes` of tmpfs.
    pub fn mount(bytes: u64) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0777")])
            .arg("tmpfs")
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).to_string(),
                    Err(e) => e.to_string(),
                };
                if servers_required() {
                    panic!("cannot mount a small tmpfs (root needed): {why}");
                }
                eprintln!("SKIPPED: cannot mount a small tmpfs (root needed): {why}");
                None
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remount read-only (or back read-write).
    pub fn set_read_only(&self, ro: bool) {
        let opt = if ro { "remount,ro" } else { "remount,rw" };
        let st = std::process::Command::new("mount")
            .args(["-o", opt])
            .arg(self.dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mount -o {opt}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A fake 16 MiB segment `name` of cluster `sysid` (PostgreSQL 15's page
/// magic), for tests that need no server.
pub fn fake_segment(name: &str, sysid: u64) -> Vec<u8> {
    let size: u64 = 16 << 20;
    let tli = u32::from_str_radix(&name[..8], 16).unwrap();
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    let mut b: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    b[0..40].fill(0);
    b[0..2].copy_from_slice(&0xD110u16.to_ne_bytes());
    b[2..4].copy_from_slice(&0x0002u16.to_ne_bytes());
    b[4..8].copy_from_slice(&tli.to_ne_bytes());
    let addr = (log * (0x1_0000_0000 / size) + seg) * size;
    b[8..16].copy_from_slice(&addr.to_ne_bytes());
    b[24..32].copy_from_slice(&sysid.to_ne_bytes());
    b[32..36].copy_from_slice(&(size as u32).to_ne_bytes());
    b[36..40].copy_from_slice(&8192u32.to_ne_bytes());
    b
}

/// A key pair made by the real `age-keygen`: (public key, identity file).
pub fn age_keygen(dir: &Path, name: &str) -> (String, std::path::PathBuf) {
    let path = dir.join(name);
    let out = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen runs (Debian's age package; scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8_lossy(&out.stderr)
        .trim()
        .trim_start_matches("Public key: ")
        .to_string();
    assert!(public.starts_with("age1"), "{public}");
    (public, path)
}
