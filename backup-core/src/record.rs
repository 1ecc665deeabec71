//! Verification and drill records: what `lifeboat verify` and restore drills
//! leave in the sink beside the backups (see [`crate::layout`]), and what
//! `status` reads back.
//!
//! Both are one JSON object: which backup, whether it passed, when, and the
//! kind's own evidence beside those (a verification's `verdicts`; a drill's
//! `drill_id`, target, timings, counts and mismatches). The time is
//! `checked_at` in a verification record and `started_at` in drill evidence,
//! as they have always been stored.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sink::{PutOptions, Sink};

/// Which record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A `lifeboat verify` run: `<source>/verifications/…`.
    Verification,
    /// A restore drill's evidence: `<source>/drills/…`.
    Drill,
}

impl RecordKind {
    /// The JSON field that holds the record's time.
    pub fn time_field(self) -> &'static str {
        match self {
            RecordKind::Verification => "checked_at",
            RecordKind::Drill => "started_at",
        }
    }

    /// Where a source's records of this kind are.
    pub fn prefix(self, source: &str) -> String {
        match self {
            RecordKind::Verification => crate::layout::verifications_prefix(source),
            RecordKind::Drill => crate::layout::drills_prefix(source),
        }
    }

    fn what(self) -> &'static str {
        match self {
            RecordKind::Verification => "verification record",
            RecordKind::Drill => "drill evidence",
        }
    }
}

/// One verification or drill record, with the kind's evidence `E` (any
/// JSON object; `serde::de::IgnoredAny` to read only the common fields).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord<E> {
    /// Which record.
    pub kind: RecordKind,
    /// The backup it is about.
    pub backup_id: String,
    /// When it ran (stored under [`RecordKind::time_field`]).
    pub at: DateTime<Utc>,
    /// Whether the backup passed.
    pub passed: bool,
    /// Everything else, stored beside the fields above.
    pub evidence: E,
}

impl<E: Serialize> CheckRecord<E> {
    /// The stored JSON: the evidence's fields plus `backup_id`, the time and
    /// `passed`, pretty-printed, with secrets taken out (see `redact`).
    pub fn to_json(&self) -> Vec<u8> {
        let mut body = match serde_json::to_value(&self.evidence) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        body.insert("backup_id".into(), self.backup_id.clone().into());
        body.insert(
            self.kind.time_field().into(),
            serde_json::to_value(self.at).expect("a time serializes"),
        );
        body.insert("passed".into(), self.passed.into());
        let json = serde_json::to_string_pretty(&body).expect("a record serializes");
        crate::redact::text(&json).into_owned().into_bytes()
    }

    /// Store it at `key`, best effort: a record that cannot be written is a
    /// warning, never the run's failure.
    pub async fn store(&self, sink: &dyn Sink, key: &str, opts: PutOptions) {
        if let Err(e) = sink.put(key, Bytes::from(self.to_json()), opts).await {
            tracing::warn!(key = %key, error = %e.display_chain(), "could not store the {}", self.kind.what());
        }
    }
}

impl<E: DeserializeOwned> CheckRecord<E> {
    /// Read a stored record; `None` when it is not one (garbled, or missing
    /// a common field).
    pub fn from_json(kind: RecordKind, bytes: &[u8]) -> Option<Self> {
        let serde_json::Value::Object(mut body) = serde_json::from_slice(bytes).ok()? else {
            return None;
        };
        let at = body
            .remove(kind.time_field())?
            .as_str()?
            .parse::<DateTime<Utc>>()
            .ok()?;
        let passed = body.remove("passed").and_then(|v| v.as_bool());
        let backup_id = match body.remove("backup_id") {
            Some(serde_json::Value::String(s)) => s,
            _ => String::new(),
        };
        let evidence = serde_json::from_value(serde_json::Value::Object(body)).ok()?;
        Some(Self {
            kind,
            backup_id,
            at,
            passed: passed.unwrap_or(false),
            evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde::de::IgnoredAny;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Ev {
        drill_id: String,
        rows_checked: u64,
    }

    #[test]
    fn records_round_trip_with_their_time_field() {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap();
        for kind in [RecordKind::Verification, RecordKind::Drill] {
            let rec = CheckRecord {
                kind,
                backup_id: "20261121T030000Z-3f9a".into(),
                at,
                passed: true,
                evidence: Ev {
                    drill_id: "d".into(),
                    rows_checked: 555,
                },
            };
            let json = rec.to_json();
            let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(v[kind.time_field()], "2026-11-21T03:00:00Z");
            assert_eq!(v["rows_checked"], 555);
            assert_eq!(v["passed"], true);
            assert_eq!(CheckRecord::<Ev>::from_json(kind, &json).unwrap(), rec);
            let head = CheckRecord::<IgnoredAny>::from_json(kind, &json).unwrap();
            assert_eq!(
                (head.backup_id.as_str(), head.at, head.passed),
                (rec.backup_id.as_str(), at, true)
            );
        }
        // The other kind's time field is not this kind's.
        let json = CheckRecord {
            kind: RecordKind::Drill,
            backup_id: "x".into(),
            at,
            passed: false,
            evidence: serde_json::Map::new(),
        }
        .to_json();
        assert!(CheckRecord::<IgnoredAny>::from_json(RecordKind::Verification, &json).is_none());
        assert!(CheckRecord::<IgnoredAny>::from_json(RecordKind::Drill, b"<html>").is_none());
    }

    /// Records written before this type existed read the same.
    #[test]
    fn stored_records_read_back() {
        let verification = br#"{"backup_id":"b1","checked_at":"2026-11-21T03:00:00Z","passed":false,"verdicts":[]}"#;
        let r =
            CheckRecord::<IgnoredAny>::from_json(RecordKind::Verification, verification).unwrap();
        assert_eq!((r.backup_id.as_str(), r.passed), ("b1", false));
        let drill = br#"{"drill_id":"d","backup_id":"b2","source":"postgres://h/db","target":"t","started_at":"2026-11-21T03:00:00Z","restore_ms":1,"total_ms":2,"tables_checked":1,"rows_checked":5,"mismatches":[],"smoke":[],"roles_created":[],"placeholder_roles":[],"passed":true,"error":null}"#;
        let r = CheckRecord::<IgnoredAny>::from_json(RecordKind::Drill, drill).unwrap();
        assert_eq!((r.backup_id.as_str(), r.passed), ("b2", true));
    }
}
