//! `status`: is each source's newest backup fresh, big enough, verified?
//!
//! Seed 003's silent failure is a job that exits 0 for months while nothing
//! usable lands; these checks look at what is actually in the bucket.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::record::{CheckRecord, RecordKind};
use crate::sink::{Sink, SinkExt};

/// Default `max_age`: 26 hours (a daily backup plus slack).
pub const DEFAULT_MAX_AGE_SECS: u64 = 26 * 3600;

/// Default `max_wal_age`, for a source with a WAL archive: 1 hour (with
/// `archive_timeout = 60` a segment lands every minute even when idle).
pub const DEFAULT_MAX_WAL_AGE_SECS: u64 = 3600;

/// Health thresholds. In `lifeboat.toml`, a profile's `[health]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HealthPolicy {
    /// The newest backup must be younger than this (`"26h"`, or seconds).
    #[serde(deserialize_with = "crate::units::opt_duration::deserialize")]
    pub max_age: Option<u64>,
    /// The newest backup's stored size must be at least this many bytes.
    pub min_size: Option<u64>,
    /// Unhealthy when the newest backup's raw size dropped by more than this
    /// fraction against the previous one (0.5 = half), a dropped table or a
    /// mass delete.
    pub max_size_drop: Option<f64>,
    /// For a source with a WAL archive: its newest segment must be younger
    /// than this (`"1h"`, the default, or seconds).
    #[serde(deserialize_with = "crate::units::opt_duration::deserialize")]
    pub max_wal_age: Option<u64>,
}

impl HealthPolicy {
    /// Check the numbers.
    ///
    /// # Errors
    /// A message naming the key and the range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(a) = self.max_age {
            crate::units::check_duration(a).map_err(|e| format!("max_age: {e}"))?;
        }
        if let Some(a) = self.max_wal_age {
            crate::units::check_duration(a).map_err(|e| format!("max_wal_age: {e}"))?;
        }
        if let Some(f) = self.max_size_drop
            && !(f.is_finite() && (0.0..=1.0).contains(&f))
        {
            return Err("max_size_drop must be a fraction between 0 and 1 (0.5 = half)".into());
        }
        Ok(())
    }
}

/// One source's health.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// The source name.
    pub source: String,
    /// Complete backups.
    pub backups: usize,
    /// Incomplete backups.
    pub incomplete: usize,
    /// Backups whose manifest exists but cannot be read.
    pub unreadable: usize,
    /// The newest complete backup.
    pub newest: Option<NewestBackup>,
    /// The newest verification record (`lifeboat verify`).
    pub last_verification: Option<Record>,
    /// The newest restore drill.
    pub last_drill: Option<Record>,
    /// The WAL archive (`lifeboat wal push`), when the source has one.
    pub wal: Option<WalHealth>,
    /// What is wrong; empty when healthy.
    pub problems: Vec<String>,
    /// Whether nothing is wrong.
    pub healthy: bool,
}

/// The newest backup's facts.
#[derive(Debug, Clone, Serialize)]
pub struct NewestBackup {
    /// Its id.
    pub backup_id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its age at `now`, in seconds.
    pub age_secs: i64,
    /// Stored bytes.
    pub stored_size: u64,
    /// Raw bytes.
    pub raw_size: u64,
    /// Whether every verdict passed.
    pub verified: bool,
    /// How far it is proven: `drilled` (restored in a drill, at backup time
    /// or by a later `verify --drill`), `checked`, or `failed`.
    pub assurance: crate::manifest::Assurance,
    /// The previous backup's raw size, if any.
    pub previous_raw_size: Option<u64>,
}

/// The health of a source's WAL archive.
#[derive(Debug, Clone, Serialize)]
pub struct WalHealth {
    /// Archived files (segments, history, backup and partial files).
    pub files: usize,
    /// The newest archived segment, by name.
    pub newest_segment: Option<String>,
    /// When it was stored.
    pub newest_at: Option<DateTime<Utc>>,
    /// Its age at `now`, in seconds.
    pub age_secs: Option<i64>,
    /// Segments missing between the oldest physical base backup's end (or
    /// the oldest archived segment) and the newest: `first..=last` names.
    /// Point-in-time recovery cannot cross a gap.
    pub gaps: Vec<String>,
    /// The server's `pg_stat_archiver`, when `status` could connect to it
    /// (`--server`, or the profile's PostgreSQL source).
    pub archiver: Option<crate::wal::ArchiverStats>,
}

/// The WAL archive of `source`: its newest segment and the gaps in its
/// sequence; `None` when it has none.
async fn wal_health(
    sink: &dyn Sink,
    source: &str,
    oldest_physical_stop: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Option<WalHealth>> {
    use crate::source::postgres::walfile::WalFileKind;
    use crate::wal::{ArchiveListing, DEFAULT_SEGMENT_SIZE};
    let Some(archive) = ArchiveListing::read(sink, source).await? else {
        return Ok(None);
    };
    let segment_size = ArchiveListing::segment_size(sink, source)
        .await
        .ok()
        .flatten()
        .unwrap_or(DEFAULT_SEGMENT_SIZE);
    let files: Vec<_> = archive
        .files
        .iter()
        .map(|f| (f.name.clone(), f.stored_at))
        .collect();
    let segments: Vec<_> = files
        .iter()
        .filter(|(n, _)| n.kind() == WalFileKind::Segment)
        .collect();
    let newest = segments
        .iter()
        .max_by_key(|(n, _)| (n.segment_number(segment_size), n.timeline()));
    let mut numbers: Vec<u64> = segments
        .iter()
        .filter_map(|(n, _)| n.segment_number(segment_size))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut gaps = Vec::new();
    if let Some(&first) = numbers.first() {
        let name = |segno: u64| crate::wal::segment_position_name(segno, segment_size);
        let start = oldest_physical_stop
            .map(|lsn| lsn / u64::from(segment_size))
            .filter(|s| *s >= first)
            .unwrap_or(first);
        let mut expected = start;
        for &n in numbers.iter().filter(|n| **n >= start) {
            if n > expected {
                gaps.push(format!(
                    "log/segment {}..={} ({} missing)",
                    name(expected),
                    name(n - 1),
                    n - expected
                ));
            }
            expected = n + 1;
        }
    }
    Ok(Some(WalHealth {
        files: files.len(),
        newest_segment: newest.map(|(n, _)| n.as_str().to_string()),
        newest_at: newest.map(|(_, at)| *at),
        age_secs: newest.map(|(_, at)| (now - *at).num_seconds()),
        gaps,
        archiver: None,
    }))
}

/// A verification or drill record.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Whether it passed.
    pub passed: bool,
    /// The backup it was about.
    pub backup_id: String,
    /// Its key in the sink.
    pub key: String,
    /// Fingerprints of the identities that decrypted the backup in this
    /// check (encrypted backups).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub decrypted_with: Vec<String>,
}

/// The newest record of `kind` of `source`, by the time it records.
async fn newest_record(sink: &dyn Sink, source: &str, kind: RecordKind) -> Result<Option<Record>> {
    let mut objects = sink.list(&kind.prefix(source)).await?;
    // Parse the newest few by modification time; choose by recorded time.
    objects.sort_by_key(|o| std::cmp::Reverse(o.last_modified));
    let mut best: Option<Record> = None;
    for o in objects.iter().take(5) {
        let Ok(raw) = sink.get_bytes(&o.key).await else {
            continue;
        };
        let Some(r) = CheckRecord::<IgnoredAny>::from_json(kind, &raw) else {
            continue;
        };
        if best.as_ref().is_none_or(|b| r.at > b.at) {
            let decrypted_with = serde_json::from_slice::<serde_json::Value>(&raw)
                .ok()
                .and_then(|v| serde_json::from_value(v["decrypted_with"].clone()).ok())
                .unwrap_or_default();
            best = Some(Record {
                at: r.at,
                passed: r.passed,
                backup_id: r.backup_id,
                key: o.key.clone(),
                decrypted_with,
            });
        }
    }
    Ok(best)
}

/// Check one source at time `now`.
///
/// # Errors
/// A listing failure (which is never "no backups").
pub async fn status(
    sink: &Arc<dyn Sink>,
    source: &str,
    policy: &HealthPolicy,
    now: DateTime<Utc>,
) -> Result<SourceStatus> {
    let listing = Catalog::new(sink.clone()).list(Some(source)).await?;
    let mut problems = Vec::new();
    let n = listing.complete.len();
    let newest = listing.complete.last().map(|b| {
        let m = &b.manifest;
        NewestBackup {
            backup_id: m.backup_id.clone(),
            started_at: m.started_at,
            age_secs: (now - m.started_at).num_seconds(),
            stored_size: m.artifact.stored_size,
            raw_size: m.artifact.raw_size,
            verified: m.verified(),
            assurance: m.assurance(),
            previous_raw_size: (n >= 2).then(|| listing.complete[n - 2].manifest.artifact.raw_size),
        }
    });
    let max_age = policy.max_age.unwrap_or(DEFAULT_MAX_AGE_SECS);
    match &newest {
        None => problems.push(format!("no complete backup of {source}")),
        Some(b) => {
            if b.age_secs > max_age as i64 {
                problems.push(format!(
                    "newest backup {} is {} old, more than the allowed {}",
                    b.backup_id,
                    human_secs(b.age_secs),
                    human_secs(max_age as i64)
                ));
            }
            if !b.verified {
                problems.push(format!("newest backup {} is not verified", b.backup_id));
            }
            if let Some(min) = policy.min_size
                && b.stored_size < min
            {
                problems.push(format!(
                    "newest backup {} is {} bytes, below the minimum {min}",
                    b.backup_id, b.stored_size
                ));
            }
            if let (Some(frac), Some(prev)) = (policy.max_size_drop, b.previous_raw_size)
                && prev > 0
                && (b.raw_size as f64) < prev as f64 * (1.0 - frac)
            {
                problems.push(format!(
                    "newest backup {} shrank to {} bytes from {prev} (more than {:.0}%): a dropped table or a mass delete?",
                    b.backup_id,
                    b.raw_size,
                    frac * 100.0
                ));
            }
        }
    }
    if !listing.unreadable.is_empty() {
        problems.push(format!(
            "{} backup(s) have a manifest this lifeboat cannot read (kept, never restored from): {}",
            listing.unreadable.len(),
            listing
                .unreadable
                .iter()
                .map(|u| format!("{} ({})", u.backup_id, u.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    // A HEAD per object of the newest backup: cheap, and it catches data
    // deleted from under its manifest (a lifecycle rule, a hand-run rm)
    // without a full verify.
    if let Some(b) = listing.complete.last() {
        let m = &b.manifest;
        let objects = std::iter::once((&m.artifact.key, m.artifact.stored_size))
            .chain(m.attachments.iter().map(|a| (&a.key, a.stored_size)));
        for (key, size) in objects {
            match sink.head(key).await {
                Ok(info) if info.size == size => {}
                Ok(info) => problems.push(format!(
                    "newest backup {}: {key} is {} bytes, its manifest says {size}",
                    m.backup_id, info.size
                )),
                Err(Error::NotFound { .. }) => problems.push(format!(
                    "newest backup {}: {key} is missing from the sink",
                    m.backup_id
                )),
                Err(e) => return Err(e),
            }
        }
    }
    let oldest_physical_stop = listing
        .complete
        .iter()
        .filter(|b| b.manifest.source.kind == crate::source::postgres::physical::PHYSICAL_KIND)
        .find_map(|b| {
            crate::source::postgres::physical::PhysicalDetails::from_fingerprint(
                &b.manifest.fingerprint,
            )
            .stop_lsn
            .as_deref()
            .and_then(crate::source::postgres::physical::parse_lsn)
        });
    let wal = wal_health(&**sink, source, oldest_physical_stop, now).await?;
    if let Some(w) = &wal {
        let max = policy.max_wal_age.unwrap_or(DEFAULT_MAX_WAL_AGE_SECS);
        match (&w.newest_segment, w.age_secs) {
            (Some(seg), Some(age)) if age > max as i64 => problems.push(format!(
                "WAL archive is stale: the newest segment {seg} was archived {} ago, more than the allowed {} (is archive_command failing? see pg_stat_archiver)",
                human_secs(age),
                human_secs(max as i64)
            )),
            (None, _) => problems.push("WAL archive holds no segment".to_string()),
            _ => {}
        }
        if !w.gaps.is_empty() {
            problems.push(format!(
                "WAL archive has gaps (point-in-time recovery cannot cross them): {}",
                w.gaps.join(", ")
            ));
        }
    }
    let last_verification = newest_record(&**sink, source, RecordKind::Verification).await?;
    let last_drill = newest_record(&**sink, source, RecordKind::Drill).await?;
    if let Some(v) = &last_verification
        && !v.passed
        && newest.as_ref().is_some_and(|b| b.backup_id == v.backup_id)
    {
        problems.push(format!("the last verification of {} failed", v.backup_id));
    }
    // A drill run later on the newest backup proves it too.
    let mut newest = newest;
    if let (Some(b), Some(d)) = (newest.as_mut(), &last_drill)
        && d.passed
        && d.backup_id == b.backup_id
        && b.assurance == crate::manifest::Assurance::Checked
    {
        b.assurance = crate::manifest::Assurance::Drilled;
    }
    // An encrypted newest backup: some recipient's key must have opened it
    // (a verify or drill with --identity), or a lost key goes unnoticed.
    if let Some(enc) = listing
        .complete
        .last()
        .and_then(|b| b.manifest.artifact.encryption.as_ref())
    {
        let id = &listing.complete.last().expect("checked").manifest.backup_id;
        let proven = last_verification.as_ref().is_some_and(|v| {
            v.passed
                && &v.backup_id == id
                && v.decrypted_with.iter().any(|f| enc.recipients.contains(f))
        });
        if !proven {
            problems.push(format!(
                "newest backup {id} is encrypted ({enc}) and no identity has proven it decrypts it: run lifeboat verify --identity KEYFILE where a recipient's key is"
            ));
        }
    }
    if let Some(d) = &last_drill
        && !d.passed
    {
        problems.push(format!(
            "the last restore drill (of {}) failed",
            d.backup_id
        ));
    }
    Ok(SourceStatus {
        source: source.to_string(),
        backups: n,
        incomplete: listing.incomplete.len(),
        unreadable: listing.unreadable.len(),
        healthy: problems.is_empty(),
        newest,
        last_verification,
        last_drill,
        wal,
        problems,
    })
}

/// Add what the server says of its archiving to a source's status: a
/// failing `archive_command`, or a server that could not be asked, makes it
/// unhealthy.
pub fn add_archiver(st: &mut SourceStatus, server: &str, read: Result<crate::wal::ArchiverStats>) {
    let Some(wal) = st.wal.as_mut() else { return };
    match read {
        Ok(a) => {
            if a.failing() {
                st.problems.push(format!(
                    "archive_command on {server} is failing: pg_stat_archiver counts {} failures, the newest for {} at {}, after the newest success ({}); see the server log",
                    a.failed_count,
                    a.last_failed_wal.as_deref().unwrap_or("?"),
                    a.last_failed_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    match (&a.last_archived_wal, a.last_archived_time) {
                        (Some(w), Some(t)) => format!("{w} at {}", t.to_rfc3339()),
                        _ => "none since the statistics were reset".to_string(),
                    }
                ));
            }
            wal.archiver = Some(a);
        }
        Err(e) => st.problems.push(format!(
            "cannot read pg_stat_archiver: {}",
            e.display_chain()
        )),
    }
    st.healthy = st.problems.is_empty();
}

/// `26h`, `3d 4h`, `15m`.
pub fn human_secs(s: i64) -> String {
    let s = s.max(0);
    match s {
        s if s >= 86400 => format!("{}d {}h", s / 86400, s % 86400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Prometheus text for a set of statuses.
pub fn prometheus(statuses: &[SourceStatus], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, values: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (src, v) in values {
            out.push_str(&format!(
                "{name}{{source=\"{}\"}} {v}\n",
                escape_label(&src)
            ));
        }
    };
    let per = |f: &dyn Fn(&SourceStatus) -> Option<f64>| -> Vec<(String, f64)> {
        statuses
            .iter()
            .filter_map(|s| f(s).map(|v| (s.source.clone(), v)))
            .collect()
    };
    metric(
        "lifeboat_healthy",
        "1 when the newest backup is fresh, verified and big enough",
        per(&|s| Some(if s.healthy { 1.0 } else { 0.0 })),
    );
    metric(
        "lifeboat_newest_backup_timestamp_seconds",
        "Start time of the newest complete backup",
        per(&|s| s.newest.as_ref().map(|b| b.started_at.timestamp() as f64)),
    );
    metric(
        "lifeboat_newest_backup_age_seconds",
        "Age of the newest complete backup",
        per(&|s| {
            s.newest
                .as_ref()
                .map(|b| (now - b.started_at).num_seconds() as f64)
        }),
    );
    metric(
        "lifeboat_newest_backup_size_bytes",
        "Stored size of the newest complete backup",
        per(&|s| s.newest.as_ref().map(|b| b.stored_size as f64)),
    );
    metric(
        "lifeboat_newest_backup_drilled",
        "1 when the newest backup was restored in a drill, 0 when only checked",
        per(&|s| {
            s.newest.as_ref().map(|b| {
                if b.assurance == crate::manifest::Assurance::Drilled {
                    1.0
                } else {
                    0.0
                }
            })
        }),
    );
    metric(
        "lifeboat_backups",
        "Complete backups in the sink",
        per(&|s| Some(s.backups as f64)),
    );
    metric(
        "lifeboat_wal_newest_age_seconds",
        "Age of the newest archived WAL segment (sources with a WAL archive)",
        per(&|s| s.wal.as_ref().and_then(|w| w.age_secs.map(|a| a as f64))),
    );
    metric(
        "lifeboat_wal_gaps",
        "Gaps in the archived WAL sequence (sources with a WAL archive)",
        per(&|s| s.wal.as_ref().map(|w| w.gaps.len() as f64)),
    );
    metric(
        "lifeboat_wal_archiver_failing",
        "1 when the server's archive_command failed after its last success (pg_stat_archiver; status connected to the server)",
        per(&|s| {
            s.wal
                .as_ref()
                .and_then(|w| w.archiver.as_ref())
                .map(|a| if a.failing() { 1.0 } else { 0.0 })
        }),
    );
    metric(
        "lifeboat_last_drill_timestamp_seconds",
        "Time of the newest restore drill",
        per(&|s| s.last_drill.as_ref().map(|d| d.at.timestamp() as f64)),
    );
    out
}

pub(crate) fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::PutOptions;

    #[tokio::test]
    async fn wal_archives_are_stale_after_max_wal_age_and_gaps_are_named() {
        let sink = crate::ObjectStoreSink::memory();
        let none = wal_health(&sink, "app", None, Utc::now()).await.unwrap();
        assert!(none.is_none());
        for seg in [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000005",
            "000000020000000000000006",
        ] {
            let key = crate::layout::wal_segment_key("app", seg[..8].parse().unwrap(), seg);
            sink.put(&key, bytes::Bytes::from_static(b"x"), PutOptions::default())
                .await
                .unwrap();
        }
        let hist = crate::layout::wal_segment_key("app", 2, "00000002.history");
        sink.put(
            &hist,
            bytes::Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await
        .unwrap();
        let now = Utc::now();
        let w = wal_health(&sink, "app", None, now).await.unwrap().unwrap();
        assert_eq!(w.files, 5);
        assert_eq!(
            w.newest_segment.as_deref(),
            Some("000000020000000000000006")
        );
        assert_eq!(
            w.gaps,
            ["log/segment 0000000000000003..=0000000000000004 (2 missing)"]
        );
        // From the oldest base backup's end on: a gap before it is no gap.
        let w = wal_health(&sink, "app", Some(5 * (16u64 << 20) + 40), now)
            .await
            .unwrap()
            .unwrap();
        assert!(w.gaps.is_empty(), "{:?}", w.gaps);

        // Through status: a stale archive and the gap are problems.
        let sink: Arc<dyn Sink> = Arc::new(sink);
        let later = now + chrono::Duration::hours(2);
        let s = status(&sink, "app", &HealthPolicy::default(), later)
            .await
            .unwrap();
        assert!(!s.healthy);
        assert!(
            s.problems
                .iter()
                .any(|p| p.contains("WAL archive is stale")),
            "{:?}",
            s.problems
        );
        assert!(
            s.problems.iter().any(|p| p.contains("gaps")),
            "{:?}",
            s.problems
        );
        let fresh = status(
            &sink,
            "app",
            &HealthPolicy {
                max_wal_age: Some(3 * 3600),
                ..Default::default()
            },
            later,
        )
        .await
        .unwrap();
        assert!(
            !fresh.problems.iter().any(|p| p.contains("stale")),
            "{:?}",
            fresh.problems
        );
        let prom = prometheus(&[s], later);
        assert!(
            prom.contains("lifeboat_wal_gaps{source=\"app\"} 1"),
            "{prom}"
        );
    }
}
