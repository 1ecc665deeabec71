//! What a PostgreSQL backup records about itself in its fingerprint's
//! `details`, typed. On disk it stays the JSON map it always was, so every
//! stored manifest reads as before: [`PostgresDetails::into_details`] writes
//! the same keys the dump always wrote, and
//! [`PostgresDetails::from_fingerprint`] reads them back leniently (a key
//! that is missing or holds something else reads as absent, as the string
//! lookups it replaces did).

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::manifest::Fingerprint;

/// The `details` of a PostgreSQL backup's fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PostgresDetails {
    /// The database's properties at the snapshot (name, encoding, collate,
    /// ctype, locale provider, ICU locale, owner; see `restore::database_facts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<Value>,
    /// `count(*)` of `pg_largeobject_metadata` in the snapshot, when pg_dump
    /// dumps large objects (no schema or table selection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub large_objects: Option<u64>,
    /// `{"schema.name": {last_value, is_called}}` from the archive's
    /// `SEQUENCE SET` entries (none when the archive was passed through).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequences: Option<Map<String, Value>>,
    /// The server's version (`15.4`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The version of the `pg_dump` that wrote the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_dump_version: Option<String>,
    /// Its major version: a restore needs a `pg_restore` at least this new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_dump_major: Option<u32>,
    /// The server's major version: a drill's throwaway cluster needs one at
    /// least this new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_major: Option<u32>,
    /// pg_dump's selection flags (`--schema=…`, `--exclude-table=…`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// The exclusions: `schemas` and `tables`, as configured.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub excluded: BTreeMap<String, Vec<String>>,
    /// The archive: format, version, whether its chunks were merged, chunks
    /// in and out, why it was passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<Value>,
    /// Whether globals were stored with role passwords (and the warning
    /// when not); absent without `--globals`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub globals: Option<GlobalsDetails>,
}

/// `details.globals`: how the globals were dumped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GlobalsDetails {
    /// False when the role may not read `pg_authid` and the globals were
    /// dumped with `--no-role-passwords`.
    pub role_passwords: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// `details[key]` as a `T`, or `None` when it is missing or not a `T`.
fn get<T: DeserializeOwned>(details: &Map<String, Value>, key: &str) -> Option<T> {
    details.get(key).and_then(|v| T::deserialize(v).ok())
}

impl PostgresDetails {
    /// The details a PostgreSQL backup's fingerprint records. Lenient: a key
    /// that is missing, or of another type, reads as absent.
    pub fn from_fingerprint(fp: &Fingerprint) -> Self {
        Self::from_details(&fp.details)
    }

    /// The same, from the map itself.
    pub fn from_details(d: &Map<String, Value>) -> Self {
        Self {
            database: d.get("database").cloned(),
            large_objects: get(d, "large_objects"),
            sequences: get(d, "sequences"),
            server_version: get(d, "server_version"),
            pg_dump_version: get(d, "pg_dump_version"),
            pg_dump_major: get(d, "pg_dump_major"),
            server_major: get(d, "server_major"),
            filters: get(d, "filters").unwrap_or_default(),
            excluded: get(d, "excluded").unwrap_or_default(),
            archive: d.get("archive").cloned(),
            globals: get(d, "globals"),
        }
    }

    /// The major version of the `pg_dump` that wrote the archive; 0 when
    /// not recorded (then any `pg_restore` will do).
    pub fn pg_dump_major(&self) -> u32 {
        self.pg_dump_major.unwrap_or(0)
    }

    /// The server's major version; 0 when not recorded.
    pub fn server_major(&self) -> u32 {
        self.server_major.unwrap_or(0)
    }

    /// The JSON map stored as the fingerprint's `details`: the keys above,
    /// those without a value left out.
    pub fn into_details(self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("PostgresDetails serializes to a JSON object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fingerprint's details as backups have always stored them.
    fn stored() -> Map<String, Value> {
        let v = serde_json::json!({
            "database": {"name": "app", "encoding": "UTF8", "owner": "app"},
            "large_objects": 2,
            "sequences": {"public.items_id_seq": {"last_value": 7, "is_called": true}},
            "server_version": "15.8",
            "pg_dump_version": "17.2",
            "pg_dump_major": 17,
            "server_major": 15,
            "filters": ["--exclude-table=public.big_*"],
            "excluded": {"tables": ["public.big_*"]},
            "archive": {"format": "custom", "version": "1.16.0", "chunks_merged": true,
                        "chunks_in": 10, "chunks_out": 2, "passthrough": null},
            "globals": {"role_passwords": false, "warning": "role app may not read role passwords"},
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn stored_details_read_typed_and_write_back_the_same_json() {
        let d = PostgresDetails::from_details(&stored());
        assert_eq!(d.pg_dump_major(), 17);
        assert_eq!(d.server_major(), 15);
        assert_eq!(d.pg_dump_version.as_deref(), Some("17.2"));
        assert_eq!(d.large_objects, Some(2));
        assert_eq!(
            d.globals,
            Some(GlobalsDetails {
                role_passwords: false,
                warning: Some("role app may not read role passwords".into())
            })
        );
        assert_eq!(d.into_details(), stored());

        // Only what was recorded is written: no filters, no globals.
        let mut m = stored();
        for k in [
            "filters",
            "excluded",
            "globals",
            "large_objects",
            "sequences",
        ] {
            m.remove(k);
        }
        assert_eq!(PostgresDetails::from_details(&m).into_details(), m);
        let g = PostgresDetails {
            globals: Some(GlobalsDetails {
                role_passwords: true,
                warning: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            Value::Object(g.into_details()),
            serde_json::json!({"globals": {"role_passwords": true}})
        );
    }

    #[test]
    fn missing_or_odd_keys_read_as_absent() {
        let d = PostgresDetails::from_details(&Map::new());
        assert_eq!((d.pg_dump_major(), d.server_major()), (0, 0));
        assert_eq!(d, PostgresDetails::default());
        let mut m = Map::new();
        m.insert("pg_dump_major".into(), "seventeen".into());
        m.insert("sequences".into(), Value::Null);
        let d = PostgresDetails::from_details(&m);
        assert_eq!(d.pg_dump_major(), 0);
        assert_eq!(d.sequences, None);
    }
}
