//! What a SQLite backup records about itself in its fingerprint's
//! `details`, typed. On disk it stays the JSON map it always was:
//! [`SqliteDetails::into_details`] writes the keys the snapshot always
//! wrote, and [`SqliteDetails::from_fingerprint`] reads them back leniently
//! (missing or mistyped keys read as absent).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::manifest::Fingerprint;

/// The `details` of a SQLite backup's fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqliteDetails {
    /// `PRAGMA page_size` of the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    /// `PRAGMA page_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_count: Option<i64>,
    /// `PRAGMA user_version` (the application's schema version, often).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_version: Option<i64>,
    /// `PRAGMA freelist_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freelist_count: Option<i64>,
    /// The source database's journal mode (`wal`, `delete`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_mode: Option<String>,
    /// How the snapshot was taken (`copied`, `online-backup`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_method: Option<String>,
}

impl SqliteDetails {
    /// The details a SQLite backup's fingerprint records.
    pub fn from_fingerprint(fp: &Fingerprint) -> Self {
        Self::from_details(&fp.details)
    }

    /// The same, from the map itself: each key on its own, so one odd key
    /// does not hide the others.
    pub fn from_details(d: &Map<String, Value>) -> Self {
        let int = |k: &str| d.get(k).and_then(Value::as_i64);
        let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
        Self {
            page_size: int("page_size"),
            page_count: int("page_count"),
            user_version: int("user_version"),
            freelist_count: int("freelist_count"),
            journal_mode: text("journal_mode"),
            snapshot_method: text("snapshot_method"),
        }
    }

    /// The JSON map stored as the fingerprint's `details`.
    pub fn into_details(self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("SqliteDetails serializes to a JSON object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_details_read_typed_and_write_back_the_same_json() {
        let stored = serde_json::json!({
            "page_size": 4096, "page_count": 12, "user_version": 3,
            "freelist_count": 0, "journal_mode": "wal", "snapshot_method": "copied"
        });
        let Value::Object(m) = stored else {
            unreachable!()
        };
        let d = SqliteDetails::from_details(&m);
        assert_eq!(d.page_size, Some(4096));
        assert_eq!(d.user_version, Some(3));
        assert_eq!(d.journal_mode.as_deref(), Some("wal"));
        assert_eq!(d.into_details(), m);

        let mut odd = Map::new();
        odd.insert("page_size".into(), "big".into());
        odd.insert("journal_mode".into(), "delete".into());
        let d = SqliteDetails::from_details(&odd);
        assert_eq!(d.page_size, None);
        assert_eq!(d.journal_mode.as_deref(), Some("delete"));
    }
}
