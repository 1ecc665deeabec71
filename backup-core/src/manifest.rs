//! `manifest.json`: the record that makes a backup complete and
//! self-describing. It is written last; a backup directory without one is
//! incomplete and never offered for restore.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The format name written into every manifest.
pub const MANIFEST_FORMAT: &str = "lifeboat.manifest";
/// The manifest format version this build writes and the newest it reads.
pub const MANIFEST_VERSION: u32 = 1;
pub use crate::layout::{MANIFEST_FILE, backup_dir};

/// Everything needed to find, check and restore one backup without any local
/// state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The manifest format version.
    pub format_version: u32,
    /// The backup's id: UTC start time and a random suffix, so ids sort by time.
    pub backup_id: String,
    /// What was backed up.
    pub source: SourceInfo,
    /// When the snapshot started (UTC).
    pub started_at: DateTime<Utc>,
    /// When the manifest was written (UTC).
    pub finished_at: DateTime<Utc>,
    /// The host that took the backup.
    pub host: String,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// The stored artifact.
    pub artifact: Artifact,
    /// What the database held at the snapshot.
    pub fingerprint: Fingerprint,
    /// Each verifier's verdict, in the order they finished.
    pub verdicts: Vec<Verdict>,
    /// Smaller objects stored beside the artifact (PostgreSQL globals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentInfo>,
    /// Where the backup was stored, and how to restore it by hand, without
    /// Lifeboat: the bucket explains itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
}

/// Where a backup's objects are, and the steps to restore it with standard
/// tools only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Storage {
    /// The sink, as a URL without credentials (`s3://bucket/prefix`).
    pub sink: String,
    /// The key prefix inside the bucket (`prefix`), or `""`.
    pub prefix: String,
    /// The artifact's key relative to the bucket root (prefix included): what
    /// `aws s3 cp s3://<bucket>/<key>` takes.
    pub artifact_bucket_key: String,
    /// Each attachment's key relative to the bucket root, in the order of
    /// [`Manifest::attachments`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachment_bucket_keys: Vec<String>,
    /// The steps, in order, to restore this backup by hand.
    pub manual_restore: Vec<String>,
}

/// One object stored beside the artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// What it is (`globals`).
    pub name: String,
    /// Its key, relative to the sink root.
    pub key: String,
    /// Uncompressed size.
    pub raw_size: u64,
    /// Stored (zstd) size.
    pub stored_size: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// How it was compressed (`None` in manifests written before this was
    /// recorded: zstd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Encryption after compression, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// What the decompressed bytes are (`SQL script`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The source a backup was taken from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceInfo {
    /// `sqlite` or `postgres`.
    pub kind: String,
    /// The source name used in the bucket layout.
    pub name: String,
    /// Where the source was, without credentials.
    pub location: String,
}

/// The program that wrote a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ToolInfo {
    /// `lifeboat`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl ToolInfo {
    pub(crate) fn current() -> Self {
        Self {
            name: "lifeboat".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The stored data object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Artifact {
    /// Key of the data object, relative to the sink root.
    pub key: String,
    /// Size of the uncompressed dump.
    pub raw_size: u64,
    /// Size of the stored (compressed) object.
    pub stored_size: u64,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256: String,
    /// How the dump was compressed.
    pub compression: Compression,
    /// Encryption after compression, if any (age, to these recipients).
    pub encryption: Option<Encryption>,
    /// What the decompressed bytes are: `sqlite3 database file` or
    /// `pg_dump custom-format archive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Compression of the stored artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Compression {
    /// `zstd`.
    pub algorithm: CompressionAlgorithm,
    /// The level used.
    pub level: i32,
}

impl Compression {
    /// zstd at `level`.
    pub fn zstd(level: i32) -> Self {
        Self {
            algorithm: CompressionAlgorithm::Zstd,
            level,
        }
    }
}

/// A compression algorithm, stored as its name. A name this version does
/// not know still parses (the manifest stays listable), and a reader
/// refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressionAlgorithm {
    /// `zstd`: every backup this version writes.
    Zstd,
    /// Another name, written by some other version.
    Other(String),
}

impl CompressionAlgorithm {
    /// The stored name.
    pub fn as_str(&self) -> &str {
        match self {
            CompressionAlgorithm::Zstd => "zstd",
            CompressionAlgorithm::Other(s) => s,
        }
    }
}

impl std::fmt::Display for CompressionAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CompressionAlgorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CompressionAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.as_str() {
            "zstd" => CompressionAlgorithm::Zstd,
            _ => CompressionAlgorithm::Other(name),
        })
    }
}

/// Encryption of a stored object, after compression: `age`, with the
/// fingerprints of the recipients ([`crate::crypt::fingerprint`]);
/// `null` in the manifest when not encrypted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Encryption {
    /// `age`, or another scheme's name.
    pub scheme: String,
    /// Fingerprints of the recipients (public keys) it was encrypted to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

impl std::fmt::Display for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.scheme)?;
        if !self.recipients.is_empty() {
            write!(f, " to {}", self.recipients.join(", "))?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Encryption {
    /// `{"scheme": "age", "recipients": [...]}`, or a bare scheme name.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Full {
                scheme: String,
                #[serde(default)]
                recipients: Vec<String>,
            },
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Name(scheme) => Encryption {
                scheme,
                recipients: Vec::new(),
            },
            Raw::Full { scheme, recipients } => Encryption { scheme, recipients },
        })
    }
}

/// What the database held at the moment of the snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fingerprint {
    /// Every table with its exact row count, sorted by name.
    pub tables: Vec<TableCount>,
    /// The database engine and version (`SQLite 3.50.4`).
    pub server_version: String,
    /// Source-specific facts (page size, journal mode, tool versions).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Fingerprint {
    /// A fingerprint with tables sorted by name.
    pub fn new(mut tables: Vec<TableCount>, server_version: impl Into<String>) -> Self {
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            tables,
            server_version: server_version.into(),
            details: serde_json::Map::new(),
        }
    }

    /// Total rows across all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Differences between this fingerprint (expected) and `actual`, one line
    /// each; empty when they agree.
    pub fn diff(&self, actual: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            match actual.tables.iter().find(|a| a.name == t.name) {
                None => out.push(format!("table {} is missing", t.name)),
                Some(a) if a.rows != t.rows => out.push(format!(
                    "table {} has {} rows, expected {}",
                    t.name, a.rows, t.rows
                )),
                Some(_) => {}
            }
        }
        for a in &actual.tables {
            if !self.tables.iter().any(|t| t.name == a.name) {
                out.push(format!("unexpected table {}", a.name));
            }
        }
        out
    }
}

/// One table and its row count.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableCount {
    /// Table name (schema-qualified where the engine has schemas).
    pub name: String,
    /// Exact row count.
    pub rows: u64,
}

/// One verifier's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Verdict {
    /// The verifier (`min-size`, `checksum`, `sqlite-integrity`).
    pub verifier: String,
    /// Whether the check passed.
    pub passed: bool,
    /// The evidence, one line.
    pub detail: String,
    /// How long the check took, in milliseconds.
    pub duration_ms: u64,
    /// When it finished.
    pub checked_at: DateTime<Utc>,
}

impl Verdict {
    /// The verdict of `verifier`, which started at `started` and finishes now.
    pub fn new(
        verifier: &str,
        passed: bool,
        detail: impl Into<String>,
        started: std::time::Instant,
    ) -> Self {
        Self {
            verifier: verifier.to_string(),
            passed,
            detail: detail.into(),
            duration_ms: started.elapsed().as_millis() as u64,
            checked_at: Utc::now(),
        }
    }

    /// A passed check (see [`new`](Self::new)).
    pub fn pass(verifier: &str, detail: impl Into<String>, started: std::time::Instant) -> Self {
        Self::new(verifier, true, detail, started)
    }

    /// A failed check (see [`new`](Self::new)).
    pub fn fail(verifier: &str, detail: impl Into<String>, started: std::time::Instant) -> Self {
        Self::new(verifier, false, detail, started)
    }

    /// `verifier: detail` for each failed verdict of `verdicts`.
    pub fn failures(verdicts: &[Verdict]) -> Vec<String> {
        verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| format!("{}: {}", v.verifier, v.detail))
            .collect()
    }
}

impl Manifest {
    /// Parse and check a manifest.
    ///
    /// # Errors
    /// [`Error::Verification`] for a manifest that is not ours, is of a newer
    /// format, or is malformed.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::verification("manifest", format!("unreadable manifest: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(Error::verification(
                "manifest",
                format!("not a Lifeboat manifest (format {:?})", m.format),
            ));
        }
        if m.format_version > MANIFEST_VERSION {
            return Err(Error::verification(
                "manifest",
                format!(
                    "manifest format {} is newer than this lifeboat reads ({MANIFEST_VERSION}); upgrade lifeboat",
                    m.format_version
                ),
            ));
        }
        Ok(m)
    }

    /// Serialize as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    /// Whether every recorded verdict passed (and there is at least one).
    pub fn verified(&self) -> bool {
        !self.verdicts.is_empty() && self.verdicts.iter().all(|v| v.passed)
    }

    /// How far this backup is proven: [`Assurance::Drilled`] when a restore
    /// drill restored it, [`Assurance::Checked`] when every check passed
    /// without one, [`Assurance::Failed`] when any check failed.
    pub fn assurance(&self) -> Assurance {
        if !self.verified() {
            Assurance::Failed
        } else if self.verdicts.iter().any(|v| v.verifier.ends_with("-drill")) {
            Assurance::Drilled
        } else {
            Assurance::Checked
        }
    }
}

/// How far a backup is proven (see [`Manifest::assurance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assurance {
    /// Restored in a drill and found whole.
    Drilled,
    /// Every check passed (size, checksum read-back, the engine's own
    /// structural check); not restored in a drill.
    Checked,
    /// A check or the drill failed.
    Failed,
}

impl Assurance {
    /// `drilled`, `checked` or `FAILED`, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Assurance::Drilled => "drilled",
            Assurance::Checked => "checked",
            Assurance::Failed => "FAILED",
        }
    }
}

/// The key prefix inside the bucket of a sink location
/// (`s3://bucket/a/b` → `a/b`; `""` for local folders and bucket roots).
pub fn location_prefix(location: &str) -> String {
    match location.split_once("://") {
        Some(("file", _)) | None => String::new(),
        Some((_, rest)) => rest
            .split_once('/')
            .map(|(_, p)| p.trim_matches('/').to_string())
            .unwrap_or_default(),
    }
}

/// How to fetch `url` with the provider's own command-line tool.
fn fetch_command(url: &str, out: &str) -> String {
    match url.split_once("://") {
        Some(("s3", _)) => format!("aws s3 cp {url} {out}"),
        Some(("spaces", rest)) => format!(
            "aws s3 cp s3://{rest} {out} --endpoint-url https://<region>.digitaloceanspaces.com"
        ),
        Some(("gs" | "gcs", rest)) => format!("gcloud storage cp gs://{rest} {out}"),
        Some(("file", path)) => format!("cp {path} {out}"),
        _ => format!("copy {url} to {out}"),
    }
}

/// The steps of `storage.manual_restore` as they are written: the
/// engine-free ones (fetch, check, decompress) first, then the engine's own
/// (see `SourceKind::manual_restore`). Each step is numbered as it is added.
#[derive(Debug)]
pub struct ManualSteps {
    sink_location: String,
    raw: String,
    steps: Vec<String>,
}

impl ManualSteps {
    /// The decompressed artifact's file name (`data.db`, `data.dump`).
    pub fn raw_file(&self) -> &str {
        &self.raw
    }

    /// The provider's own command that fetches the object at `key` (a key
    /// of this sink) into the file `out`.
    pub fn fetch(&self, key: &str, out: &str) -> String {
        fetch_command(
            &format!("{}/{key}", self.sink_location.trim_end_matches('/')),
            out,
        )
    }

    /// Add the next step, numbered.
    pub fn push(&mut self, text: impl fmt::Display) {
        let n = self.steps.len() + 1;
        self.steps.push(format!("{n}. {text}"));
    }
}

impl Manifest {
    /// Where the objects are and how to restore them by hand, for a backup
    /// stored in the sink at `sink_location`: the engine-free steps, then
    /// those `engine` adds.
    pub fn describe_storage(
        &self,
        sink_location: &str,
        engine: impl FnOnce(&mut ManualSteps),
    ) -> Storage {
        let prefix = location_prefix(sink_location);
        let in_bucket = |key: &str| {
            if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}/{key}")
            }
        };
        let art = &self.artifact;
        let file = art.key.rsplit('/').next().unwrap_or("data.zst").to_string();
        let mut manual = ManualSteps {
            sink_location: sink_location.to_string(),
            raw: file.trim_end_matches(".zst").to_string(),
            steps: Vec::new(),
        };
        manual.push(format_args!(
            "Fetch the data: {}",
            manual.fetch(&art.key, &file)
        ));
        manual.push(format_args!(
            "Check it: sha256sum {file} must print {} ({} bytes)",
            art.sha256, art.stored_size
        ));
        let raw = manual.raw.clone();
        match &art.encryption {
            None => manual.push(format_args!(
                "Decompress it (zstd, level {}): zstd -d {file} -o {raw}",
                art.compression.level
            )),
            Some(enc) => manual.push(format_args!(
                "Decrypt and decompress it ({enc}, then zstd level {}), with the age identity file of one of those recipients: age -d -i KEYFILE {file} | zstd -d -o {raw}",
                art.compression.level
            )),
        }
        engine(&mut manual);
        Storage {
            sink: sink_location.to_string(),
            artifact_bucket_key: in_bucket(&art.key),
            attachment_bucket_keys: self.attachments.iter().map(|a| in_bucket(&a.key)).collect(),
            prefix,
            manual_restore: manual.steps,
        }
    }
}

/// A new backup id: `YYYYMMDDTHHMMSSZ-xxxx`, sorting by time.
pub fn new_backup_id(at: DateTime<Utc>) -> String {
    let tag: u16 = rand::random();
    format!("{}-{tag:04x}", at.format("%Y%m%dT%H%M%SZ"))
}

/// Check a source name: it becomes a path segment in every sink.
///
/// # Errors
/// [`Error::Usage`] for names with characters other than letters, digits,
/// `-`, `_` and `.`, or that start with `.`.
pub fn check_source_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid source name {name:?}: use letters, digits, '-', '_' and '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_sort_by_time_and_dirs_follow_the_layout() {
        let t1 = Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap();
        let t2 = Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 1).unwrap();
        let (a, b) = (new_backup_id(t1), new_backup_id(t2));
        assert!(a.starts_with("20261121T030000Z-") && a < b);
        assert_eq!(
            backup_dir("app", t1, &a),
            format!("app/backups/2026/11/21/{a}")
        );
    }

    #[test]
    fn fingerprint_diff_names_each_difference() {
        let expected = Fingerprint::new(
            vec![
                TableCount {
                    name: "a".into(),
                    rows: 1,
                },
                TableCount {
                    name: "b".into(),
                    rows: 2,
                },
            ],
            "x",
        );
        let actual = Fingerprint::new(
            vec![
                TableCount {
                    name: "a".into(),
                    rows: 1,
                },
                TableCount {
                    name: "c".into(),
                    rows: 0,
                },
            ],
            "x",
        );
        let d = expected.diff(&actual);
        assert_eq!(d, vec!["table b is missing", "unexpected table c"]);
        assert!(expected.diff(&expected).is_empty());
    }

    #[test]
    fn foreign_and_future_manifests_are_rejected() {
        let err = Manifest::from_json(br#"{"format":"other"}"#).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Verification);
    }

    #[test]
    fn source_names_are_path_safe() {
        assert!(check_source_name("app-db_1.main").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(check_source_name(bad).is_err(), "{bad}");
        }
    }
}
