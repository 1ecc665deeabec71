//! The bucket layout: every key Lifeboat writes or reads in a sink, spelled
//! in one place.
//!
//! ```text
//! <source>/
//!   restore.md                                       how to restore without Lifeboat
//!   backups/<YYYY>/<MM>/<DD>/<backup-id>/
//!     data.<ext>.zst                                 the artifact (db, dump)
//!     <attachment>.zst                               e.g. globals.sql.zst
//!     manifest.json                                  written last: the commit marker
//!   verifications/<YYYY>-<MM>/<YYYYMMDDTHHMMSSZ>-<backup-id>.json
//!   drills/<YYYY>-Q<n>/<drill-id>.json
//!   wal/archive.json                                 the archive's cluster (written by the first push)
//!   wal/<timeline>/<file>.zst                        an archived WAL file (`lifeboat wal push`)
//! ```
//!
//! Keys are relative to the sink's root (a bucket prefix is the sink's
//! business). A source name is one key segment (see
//! [`crate::manifest::check_source_name`]), so `<source>/` scopes everything
//! of one source. The catalog finds backups by parsing keys back
//! ([`parse_backup_key`]); everything else is found by listing a prefix.

use chrono::{DateTime, Datelike, Utc};

/// The directory of a source's backups, under the source's prefix.
pub const BACKUPS: &str = "backups";
/// The file name of the manifest in a backup's directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The suffix of every zstd-compressed object.
pub const ZSTD_SUFFIX: &str = ".zst";
/// The name of the PostgreSQL globals attachment in a manifest.
pub const GLOBALS_ATTACHMENT: &str = "globals";
/// The file name of the globals attachment, before [`ZSTD_SUFFIX`].
pub const GLOBALS_FILE: &str = "globals.sql";
/// The file name of a source's restore guide.
pub const RESTORE_GUIDE_FILE: &str = "restore.md";

/// Everything of one source lives under this prefix: `<source>`.
pub fn source_prefix(source: &str) -> &str {
    source
}

/// `<source>/backups`: what the catalog and retention list.
pub fn backups_prefix(source: &str) -> String {
    format!("{source}/{BACKUPS}")
}

/// The directory (key prefix) of one backup:
/// `<source>/backups/<YYYY>/<MM>/<DD>/<backup-id>`, dated by its start (UTC).
pub fn backup_dir(source: &str, at: DateTime<Utc>, backup_id: &str) -> String {
    format!(
        "{}/{:04}/{:02}/{:02}/{backup_id}",
        backups_prefix(source),
        at.year(),
        at.month(),
        at.day()
    )
}

/// The shape of a backup directory for people (`app/backups/<YYYY>/<MM>/<DD>/<backup-id>`),
/// as the restore guide explains it.
pub fn backup_dir_pattern(source: &str) -> String {
    format!("{}/<YYYY>/<MM>/<DD>/<backup-id>", backups_prefix(source))
}

/// `<dir>/manifest.json`.
pub fn manifest_key(dir: &str) -> String {
    format!("{dir}/{MANIFEST_FILE}")
}

/// Whether `key` is a manifest (its last segment is `manifest.json`).
pub fn is_manifest_key(key: &str) -> bool {
    file_name(key) == MANIFEST_FILE
}

/// `<dir>/data.<extension>.zst`: the artifact (`extension` is the source's:
/// `sqlite` or `pgdump`).
pub fn data_key(dir: &str, extension: &str) -> String {
    format!("{dir}/data.{extension}{ZSTD_SUFFIX}")
}

/// `<dir>/<file_name>.zst`: an attachment stored beside the artifact.
pub fn attachment_key(dir: &str, file_name: &str) -> String {
    format!("{dir}/{file_name}{ZSTD_SUFFIX}")
}

/// `<source>/restore.md`.
pub fn restore_guide_key(source: &str) -> String {
    format!("{source}/{RESTORE_GUIDE_FILE}")
}

/// `<source>/verifications`: where `lifeboat verify` keeps its results.
pub fn verifications_prefix(source: &str) -> String {
    format!("{source}/verifications")
}

/// `<source>/verifications/<YYYY>-<MM>/<YYYYMMDDTHHMMSSZ>-<backup-id>.json`
/// for a verification of `backup_id` recorded at `at`.
pub fn verification_key(source: &str, at: DateTime<Utc>, backup_id: &str) -> String {
    format!(
        "{}/{}/{}-{backup_id}.json",
        verifications_prefix(source),
        at.format("%Y-%m"),
        at.format("%Y%m%dT%H%M%SZ"),
    )
}

/// `<source>/drills`: where restore drills keep their evidence.
pub fn drills_prefix(source: &str) -> String {
    format!("{source}/drills")
}

/// `<source>/drills/<YYYY>-Q<n>/<drill-id>.json` for a drill started at `at`
/// (the quarter is `at`'s).
pub fn drill_key(source: &str, at: DateTime<Utc>, drill_id: &str) -> String {
    let quarter = (at.month() - 1) / 3 + 1;
    format!(
        "{}/{}-Q{quarter}/{drill_id}.json",
        drills_prefix(source),
        at.year()
    )
}

/// `<source>/wal`: archived PostgreSQL WAL.
pub fn wal_prefix(source: &str) -> String {
    format!("{source}/wal")
}

/// `<source>/wal/<timeline>/<file>.zst`: an archived WAL file (a segment,
/// a partial segment, a timeline or backup history file), written by
/// `lifeboat wal push` beside the backups; the catalog, which only reads
/// `<source>/backups/`, never mistakes one for a backup.
///
/// `timeline` is written as PostgreSQL names it in file names (8 uppercase
/// hex digits), `segment` is the WAL file name (`000000010000000000000001`).
pub fn wal_segment_key(source: &str, timeline: u32, segment: &str) -> String {
    format!(
        "{}/{timeline:08X}/{segment}{ZSTD_SUFFIX}",
        wal_prefix(source)
    )
}

/// `<source>/wal/archive.json`: which cluster the archive belongs to
/// (system identifier, WAL format, segment size), written create-only by
/// the first push; every later push is checked against it.
pub fn wal_archive_key(source: &str) -> String {
    format!("{}/archive.json", wal_prefix(source))
}

/// The parts of a key inside a backup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupKey<'a> {
    /// The backup's directory (`app/backups/2026/11/21/<id>`).
    pub dir: &'a str,
    /// The source name.
    pub source: &'a str,
    /// The backup id.
    pub backup_id: &'a str,
    /// The object's file name (`manifest.json`, `data.db.zst`).
    pub file: &'a str,
}

/// Split `<source>/backups/<YYYY>/<MM>/<DD>/<id>/<file>`; `None` for any
/// other key (records, the restore guide, WAL, strays).
pub fn parse_backup_key(key: &str) -> Option<BackupKey<'_>> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.len() != 7 || parts[1] != BACKUPS {
        return None;
    }
    let (dir, file) = key.rsplit_once('/')?;
    Some(BackupKey {
        dir,
        source: parts[0],
        backup_id: parts[5],
        file,
    })
}

/// Split `<source>/wal/<timeline>/<segment>.zst` into (source, timeline,
/// segment): the inverse of [`wal_segment_key`].
pub fn parse_wal_segment_key(key: &str) -> Option<(&str, u32, &str)> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.len() != 4 || parts[1] != "wal" || parts[2].len() != 8 {
        return None;
    }
    let timeline = u32::from_str_radix(parts[2], 16).ok()?;
    let segment = parts[3].strip_suffix(ZSTD_SUFFIX)?;
    Some((parts[0], timeline, segment))
}

/// The last segment of a key.
pub fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    #[test]
    fn backup_keys_round_trip() {
        let t = at(2026, 11, 21, 3);
        let id = "20261121T030000Z-3f9a";
        let dir = backup_dir("app", t, id);
        assert_eq!(dir, "app/backups/2026/11/21/20261121T030000Z-3f9a");
        for (key, file) in [
            (manifest_key(&dir), "manifest.json"),
            (data_key(&dir, "db"), "data.db.zst"),
            (attachment_key(&dir, GLOBALS_FILE), "globals.sql.zst"),
        ] {
            let parsed = parse_backup_key(&key).unwrap();
            assert_eq!(
                parsed,
                BackupKey {
                    dir: &dir,
                    source: "app",
                    backup_id: id,
                    file,
                }
            );
            assert!(key.starts_with(&format!("{}/", backups_prefix("app"))));
            assert_eq!(is_manifest_key(&key), file == MANIFEST_FILE);
        }
        assert!(!is_manifest_key(
            "app/backups/2026/11/21/x/not-a-manifest.json"
        ));
        assert_eq!(
            backup_dir_pattern("app"),
            "app/backups/<YYYY>/<MM>/<DD>/<backup-id>"
        );
    }

    #[test]
    fn other_keys_are_not_backups() {
        let t = at(2026, 2, 3, 4);
        for key in [
            restore_guide_key("app"),
            verification_key("app", t, "20260203T040000Z-0001"),
            drill_key("app", t, "20260203T040000Z-beef"),
            wal_segment_key("app", 1, "000000010000000000000001"),
            "stray.txt".to_string(),
            "app/backups/2026/x".to_string(),
        ] {
            assert!(parse_backup_key(&key).is_none(), "{key}");
        }
    }

    #[test]
    fn record_keys_keep_their_layout() {
        let t = at(2026, 11, 21, 3);
        assert_eq!(restore_guide_key("app"), "app/restore.md");
        assert_eq!(
            verification_key("app", t, "20261120T030000Z-3f9a"),
            "app/verifications/2026-11/20261121T030000Z-20261120T030000Z-3f9a.json"
        );
        assert!(verification_key("app", t, "x").starts_with(&verifications_prefix("app")));
        for (month, quarter) in [(1, 1), (3, 1), (4, 2), (9, 3), (12, 4)] {
            assert_eq!(
                drill_key("app", at(2026, month, 1, 0), "d"),
                format!("app/drills/2026-Q{quarter}/d.json")
            );
        }
        assert!(drill_key("app", t, "d").starts_with(&drills_prefix("app")));
    }

    #[test]
    fn wal_segment_keys_round_trip() {
        let key = wal_segment_key("app", 0x1a, "0000001A0000000300000004");
        assert_eq!(key, "app/wal/0000001A/0000001A0000000300000004.zst");
        assert!(key.starts_with(&format!("{}/", wal_prefix("app"))));
        assert_eq!(
            parse_wal_segment_key(&key),
            Some(("app", 0x1a, "0000001A0000000300000004"))
        );
        assert_eq!(parse_wal_segment_key("app/wal/1/x.zst"), None);
        assert_eq!(parse_wal_segment_key("app/wal/0000001A/x"), None);
        assert_eq!(parse_wal_segment_key("app/backups/0000001A/x.zst"), None);
    }
}
