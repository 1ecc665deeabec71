//! A physical backup's tar checked against PostgreSQL's own
//! `backup_manifest` in one pass, as it streams back from the sink: the
//! checks `pg_verifybackup` makes on a data directory, without unpacking
//! the cluster to disk first (PostgreSQL 15's `pg_verifybackup` only reads
//! a directory).
//!
//! - the manifest's own SHA-256 (`Manifest-Checksum`);
//! - every file the manifest lists is in the tar, with its size and
//!   checksum (CRC32C, `pg_basebackup`'s default);
//! - no file in the tar that the manifest does not list;
//! - the files `pg_verifybackup` ignores are ignored here too:
//!   `backup_manifest` itself, `pg_wal/`, `postgresql.auto.conf`,
//!   `recovery.signal`, `standby.signal`.
//!
//! The WAL segments under `pg_wal/` are the only bytes written to disk:
//! the caller hands them to `pg_waldump` for the manifest's WAL ranges, as
//! `pg_verifybackup` does.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A WAL range of the manifest: recovery from the backup needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalRange {
    pub(crate) timeline: u32,
    pub(crate) start: String,
    pub(crate) end: String,
}

/// What a stream that matched its manifest held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    /// Files checked against the manifest.
    pub(crate) files: usize,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// WAL segments written to the WAL directory.
    pub(crate) wal_segments: usize,
    /// The manifest's WAL ranges.
    pub(crate) wal_ranges: Vec<WalRange>,
}

/// Why a stream could not be checked: its bytes could not be read (the
/// sink, or bytes that do not decode), or the WAL could not be written
/// to the local disk.
#[derive(Debug)]
pub(crate) enum StreamError {
    Read(io::Error),
    Local(io::Error),
}

/// Paths `pg_verifybackup` does not check (its default ignore list).
fn ignored(path: &str) -> bool {
    matches!(
        path,
        "backup_manifest" | "postgresql.auto.conf" | "recovery.signal" | "standby.signal"
    ) || path == "pg_wal"
        || path.starts_with("pg_wal/")
}

/// A tar path as the manifest spells it: no `./` in front, no `/` behind.
fn normalize(raw: &[u8]) -> Vec<u8> {
    let mut p = raw;
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
    }
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    p.to_vec()
}

/// Read the tar `reader` streams to its real end (past the end-of-archive
/// blocks, so a verifying reader below sees all of it), checking it
/// against the `backup_manifest` it holds. WAL segments go into `wal_dir`
/// (created). `Ok(Err(why))` is a backup that does not match.
pub(crate) fn check_stream(
    reader: impl Read,
    wal_dir: &Path,
) -> std::result::Result<std::result::Result<Checked, String>, StreamError> {
    let mut seen: HashMap<Vec<u8>, (u64, u32)> = HashMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    let mut wal_segments = 0usize;
    let mut archive = tar::Archive::new(reader);
    // A server-compressed backup has backup_manifest after the end of
    // the server's archive (see physical.rs).
    archive.set_ignore_zeros(true);
    let mut buf = vec![0u8; 256 * 1024];
    for entry in archive.entries().map_err(StreamError::Read)? {
        let mut entry = entry.map_err(StreamError::Read)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = normalize(&entry.path_bytes());
        let text = String::from_utf8_lossy(&path).into_owned();
        if text == "backup_manifest" {
            let mut m = Vec::new();
            entry.read_to_end(&mut m).map_err(StreamError::Read)?;
            manifest = Some(m);
            continue;
        }
        if let Some(name) = text.strip_prefix("pg_wal/")
            && !name.contains('/')
            && super::walfile::WalFileName::parse(name).is_some()
        {
            let dest = wal_dir.join(name);
            let mut out = match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dest)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Ok(Err(format!("{text} is twice in the backup")));
                }
                Err(e) => return Err(StreamError::Local(e)),
            };
            loop {
                let n = entry.read(&mut buf).map_err(StreamError::Read)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(StreamError::Local)?;
            }
            wal_segments += 1;
            continue;
        }
        if ignored(&text) {
            io::copy(&mut entry, &mut io::sink()).map_err(StreamError::Read)?;
            continue;
        }
        let mut crc = 0u32;
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(StreamError::Read)?;
            if n == 0 {
                break;
            }
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            size += n as u64;
        }
        if seen.insert(path, (size, crc)).is_some() {
            return Ok(Err(format!("{text} is twice in the backup")));
        }
    }
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(StreamError::Read)?;
    let Some(manifest) = manifest else {
        return Ok(Err("the backup holds no backup_manifest".into()));
    };
    Ok(
        compare(&manifest, seen).map(|(files, bytes, wal_ranges)| Checked {
            files,
            bytes,
            wal_segments,
            wal_ranges,
        }),
    )
}

/// The manifest's checksum, and every file against it.
#[allow(clippy::type_complexity)]
fn compare(
    manifest: &[u8],
    mut seen: HashMap<Vec<u8>, (u64, u32)>,
) -> std::result::Result<(usize, u64, Vec<WalRange>), String> {
    let at = memchr::memmem::rfind(manifest, b"\"Manifest-Checksum\"")
        .ok_or("backup_manifest has no Manifest-Checksum")?;
    let doc: Value = serde_json::from_slice(manifest)
        .map_err(|e| format!("backup_manifest is not valid JSON: {e}"))?;
    let version = doc["PostgreSQL-Backup-Manifest-Version"].as_u64();
    if !matches!(version, Some(1 | 2)) {
        return Err(format!(
            "backup_manifest has version {}, this version of lifeboat reads 1 and 2",
            doc["PostgreSQL-Backup-Manifest-Version"]
        ));
    }
    let want = doc["Manifest-Checksum"].as_str().unwrap_or_default();
    let got = hex::encode(Sha256::digest(&manifest[..at]));
    if !want.eq_ignore_ascii_case(&got) {
        return Err(format!(
            "backup_manifest's checksum is {want}, its contents hash to {got}"
        ));
    }
    let files = doc["Files"]
        .as_array()
        .ok_or("backup_manifest lists no Files")?;
    let (mut checked, mut bytes) = (0usize, 0u64);
    let mut problems = Vec::new();
    for f in files {
        let path = match (f["Path"].as_str(), f["Encoded-Path"].as_str()) {
            (Some(p), _) => p.as_bytes().to_vec(),
            (None, Some(h)) => {
                hex::decode(h).map_err(|_| format!("backup_manifest: bad Encoded-Path {h}"))?
            }
            _ => return Err("backup_manifest has a file without a path".into()),
        };
        let text = String::from_utf8_lossy(&path).into_owned();
        if ignored(&text) {
            seen.remove(&path);
            continue;
        }
        let size = f["Size"]
            .as_u64()
            .ok_or_else(|| format!("backup_manifest: no Size for {text}"))?;
        let Some((got_size, crc)) = seen.remove(&path) else {
            problems.push(format!("{text} is missing"));
            continue;
        };
        if got_size != size {
            problems.push(format!(
                "{text} has {got_size} bytes, the manifest says {size}"
            ));
            continue;
        }
        match f["Checksum-Algorithm"].as_str().unwrap_or("NONE") {
            "NONE" => {}
            "CRC32C" => {
                let want = f["Checksum"].as_str().unwrap_or_default();
                // PostgreSQL writes the CRC's bytes in memory order.
                let got = hex::encode(crc.to_le_bytes());
                if !want.eq_ignore_ascii_case(&got) {
                    problems.push(format!(
                        "{text} has checksum {got}, the manifest says {want}"
                    ));
                    continue;
                }
            }
            other => {
                return Err(format!(
                    "backup_manifest uses {other} checksums; lifeboat takes backups with CRC32C and checks only those"
                ));
            }
        }
        checked += 1;
        bytes += size;
    }
    let mut extra: Vec<String> = seen
        .keys()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    extra.sort();
    problems.extend(
        extra
            .into_iter()
            .map(|p| format!("{p} is not in backup_manifest")),
    );
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(5);
        return Err(format!(
            "{n} file(s) do not match backup_manifest: {}{}",
            problems.join("; "),
            if n > 5 { "; …" } else { "" }
        ));
    }
    let ranges = doc["WAL-Ranges"]
        .as_array()
        .ok_or("backup_manifest has no WAL-Ranges")?
        .iter()
        .map(|r| {
            Some(WalRange {
                timeline: u32::try_from(r["Timeline"].as_u64()?).ok()?,
                start: r["Start-LSN"].as_str()?.to_string(),
                end: r["End-LSN"].as_str()?.to_string(),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or("backup_manifest has a malformed WAL range")?;
    if ranges.is_empty() {
        return Err("backup_manifest has no WAL range".into());
    }
    Ok((checked, bytes, ranges))
}

/// A manifest and tars as PostgreSQL writes them, for tests here and of
/// the relay ([`super::server_zstd`]).
#[cfg(test)]
pub(crate) mod fixtures {
    use sha2::{Digest, Sha256};

    /// A manifest as PostgreSQL writes it, with its checksum.
    pub(crate) fn manifest(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut m = String::from("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n");
        let lines: Vec<String> = files
            .iter()
            .map(|(p, data)| {
                format!(
                    "{{ \"Path\": \"{p}\", \"Size\": {}, \"Last-Modified\": \"2026-12-03 14:47:05 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"{}\" }}",
                    data.len(),
                    hex::encode(crc32c::crc32c(data).to_le_bytes())
                )
            })
            .collect();
        m.push_str(&lines.join(",\n"));
        m.push_str("\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n");
        let sum = hex::encode(Sha256::digest(m.as_bytes()));
        m.push_str(&format!("\"Manifest-Checksum\": \"{sum}\"}}\n"));
        m.into_bytes()
    }

    /// A tar of `entries`, end-of-archive blocks included.
    pub(crate) fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, p, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    pub(crate) const FILES: &[(&str, &[u8])] = &[
        ("PG_VERSION", b"15\n"),
        ("base/1/1259", &[7u8; 8192]),
        ("global/pg_control", &[1u8; 8192]),
    ];
}

#[cfg(test)]
mod tests {
    use super::fixtures::{FILES, manifest, tar_of};
    use super::*;

    fn check(tar: Vec<u8>) -> std::result::Result<Checked, String> {
        let wal = tempfile::tempdir().unwrap();
        check_stream(&tar[..], wal.path()).unwrap()
    }

    #[test]
    fn postgresql_writes_the_crc_in_memory_order() {
        // From a real PostgreSQL 15 backup_manifest: PG_VERSION is "15\n".
        assert_eq!(
            hex::encode(crc32c::crc32c(b"15\n").to_le_bytes()),
            "8a744722"
        );
    }

    #[test]
    fn a_backup_that_matches_its_manifest_passes_and_wal_is_kept_apart() {
        let m = manifest(FILES);
        let seg = vec![5u8; 1024];
        let mut entries = FILES.to_vec();
        entries.push(("pg_wal/000000010000000000000002", &seg));
        entries.push(("backup_manifest", &m));
        let wal = tempfile::tempdir().unwrap();
        let c = check_stream(&tar_of(&entries)[..], wal.path())
            .unwrap()
            .unwrap();
        assert_eq!(c.files, 3);
        assert_eq!(c.bytes, 3 + 8192 * 2);
        assert_eq!(c.wal_segments, 1);
        assert_eq!(c.wal_ranges[0].start, "0/2000028");
        assert_eq!(
            std::fs::read(wal.path().join("000000010000000000000002")).unwrap(),
            seg
        );
    }

    #[test]
    fn the_manifest_may_follow_the_end_of_the_archive() {
        let m = manifest(FILES);
        let mut stream = tar_of(FILES);
        stream.extend(tar_of(&[("backup_manifest", &m)]));
        assert_eq!(check(stream).unwrap().files, 3);
    }

    #[test]
    fn a_changed_missing_or_extra_file_fails_naming_it() {
        let m = manifest(FILES);
        let changed = [
            ("PG_VERSION", &b"16\n"[..]),
            FILES[1],
            FILES[2],
            ("backup_manifest", &m),
        ];
        let why = check(tar_of(&changed)).unwrap_err();
        assert!(why.contains("PG_VERSION has checksum"), "{why}");
        let missing = [FILES[0], FILES[1], ("backup_manifest", &m)];
        let why = check(tar_of(&missing)).unwrap_err();
        assert!(why.contains("global/pg_control is missing"), "{why}");
        let extra = [
            FILES[0],
            FILES[1],
            FILES[2],
            ("base/1/9999", &b"x"[..]),
            ("backup_manifest", &m),
        ];
        let why = check(tar_of(&extra)).unwrap_err();
        assert!(
            why.contains("base/1/9999 is not in backup_manifest"),
            "{why}"
        );
        let short = [
            FILES[0],
            ("base/1/1259", &[7u8; 100][..]),
            FILES[2],
            ("backup_manifest", &m),
        ];
        let why = check(tar_of(&short)).unwrap_err();
        assert!(why.contains("base/1/1259 has 100 bytes"), "{why}");
    }

    #[test]
    fn a_manifest_edited_after_the_fact_or_absent_fails() {
        let mut m = manifest(FILES);
        let at = memchr::memmem::find(&m, b"\"Size\": 3").unwrap();
        m[at + 8] = b'4';
        let mut entries = FILES.to_vec();
        entries.push(("backup_manifest", &m));
        let why = check(tar_of(&entries)).unwrap_err();
        assert!(why.contains("backup_manifest's checksum"), "{why}");
        let why = check(tar_of(FILES)).unwrap_err();
        assert!(why.contains("no backup_manifest"), "{why}");
    }

    #[test]
    fn files_pg_verifybackup_ignores_are_ignored() {
        let m = manifest(FILES);
        let mut entries = FILES.to_vec();
        entries.push(("postgresql.auto.conf", b"# edited"));
        entries.push(("./pg_wal/archive_status/000000010000000000000002.done", b""));
        entries.push(("backup_manifest", &m));
        assert_eq!(check(tar_of(&entries)).unwrap().files, 3);
    }
}
