//! What a sink holds: backups listed from their manifests.
//!
//! A backup is complete when its directory holds a readable `manifest.json`;
//! anything else under `<source>/backups/` is incomplete (an interrupted run,
//! or one whose verification failed and whose cleanup did not finish). Both
//! are reported; only complete ones are ever offered for restore. Order is by
//! the time recorded in the manifest, never by key names.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::sink::{ObjectInfo, Sink, SinkExt};

/// A complete backup.
#[derive(Debug, Clone)]
pub struct BackupEntry {
    /// Its directory in the sink (`app/backups/2026/11/21/<id>`).
    pub dir: String,
    /// Its manifest.
    pub manifest: Manifest,
}

/// A backup directory without a readable manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IncompleteBackup {
    /// Its directory in the sink.
    pub dir: String,
    /// The source name from the path.
    pub source: String,
    /// The backup id from the path.
    pub backup_id: String,
    /// Bytes held by its objects.
    pub bytes: u64,
    /// The newest object's modification time.
    pub last_modified: DateTime<Utc>,
    /// Why it is incomplete.
    pub reason: String,
}

/// Everything found in a sink.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Complete backups, oldest first by recorded start time.
    pub complete: Vec<BackupEntry>,
    /// Incomplete ones.
    pub incomplete: Vec<IncompleteBackup>,
}

impl Listing {
    /// The source names that have complete backups, sorted.
    pub fn sources(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .complete
            .iter()
            .map(|b| b.manifest.source.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Which backup an operation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The newest complete backup.
    Latest,
    /// A backup id (a unique prefix is enough).
    Id(String),
}

/// Reads backups from a sink.
#[derive(Debug, Clone)]
pub struct Catalog {
    sink: Arc<dyn Sink>,
}

/// Split `<source>/backups/<YYYY>/<MM>/<DD>/<id>/<file>` into (dir, source, id, file).
fn parse_key(key: &str) -> Option<(String, String, String, String)> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.len() != 7 || parts[1] != "backups" {
        return None;
    }
    let dir = parts[..6].join("/");
    Some((
        dir,
        parts[0].to_string(),
        parts[5].to_string(),
        parts[6].to_string(),
    ))
}

impl Catalog {
    /// A catalog over `sink`.
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self { sink }
    }

    /// List every backup, or those of one source.
    ///
    /// # Errors
    /// Any listing failure is an error, never an empty list.
    pub async fn list(&self, source: Option<&str>) -> Result<Listing> {
        let prefix = source.map(|s| format!("{s}/backups")).unwrap_or_default();
        let objects = self.sink.list(&prefix).await?;
        let mut dirs: BTreeMap<String, (String, String, Vec<ObjectInfo>)> = BTreeMap::new();
        for obj in objects {
            if let Some((dir, src, id, _file)) = parse_key(&obj.key) {
                dirs.entry(dir)
                    .or_insert_with(|| (src, id, Vec::new()))
                    .2
                    .push(obj);
            }
        }
        let sink = self.sink.clone();
        let results: Vec<_> = futures::stream::iter(dirs)
            .map(|(dir, (src, id, objs))| {
                let sink = sink.clone();
                async move {
                    let has_manifest = objs.iter().any(|o| o.key.ends_with(MANIFEST_FILE));
                    let bytes = objs.iter().map(|o| o.size).sum();
                    let last_modified = objs
                        .iter()
                        .map(|o| o.last_modified)
                        .max()
                        .unwrap_or_default();
                    let incomplete = |reason: String| IncompleteBackup {
                        dir: dir.clone(),
                        source: src.clone(),
                        backup_id: id.clone(),
                        bytes,
                        last_modified,
                        reason,
                    };
                    if !has_manifest {
                        return Ok::<_, Error>(Err(incomplete("no manifest.json".into())));
                    }
                    let raw = sink.get_bytes(&format!("{dir}/{MANIFEST_FILE}")).await?;
                    Ok(match Manifest::from_json(&raw) {
                        Ok(manifest) => Ok(BackupEntry { dir, manifest }),
                        Err(e) => Err(incomplete(e.to_string())),
                    })
                }
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let mut listing = Listing::default();
        for r in results {
            match r {
                Ok(entry) => listing.complete.push(entry),
                Err(inc) => listing.incomplete.push(inc),
            }
        }
        listing.complete.sort_by(|a, b| {
            (a.manifest.started_at, &a.manifest.backup_id)
                .cmp(&(b.manifest.started_at, &b.manifest.backup_id))
        });
        listing.incomplete.sort_by_key(|a| a.last_modified);
        Ok(listing)
    }

    /// Find one complete backup. With no `source` the sink must hold backups
    /// of exactly one source.
    ///
    /// # Errors
    /// [`Error::NotFound`] when nothing matches; [`Error::Usage`] when the
    /// source is ambiguous or an id prefix matches several backups.
    pub async fn find(&self, source: Option<&str>, which: &Selector) -> Result<BackupEntry> {
        let listing = self.list(source).await?;
        let sources = listing.sources();
        if source.is_none() && sources.len() > 1 {
            return Err(Error::usage(format!(
                "{} holds backups of several sources ({}); name one with --source",
                self.sink.location(),
                sources.join(", ")
            )));
        }
        let not_found = |what: String| Error::NotFound {
            location: self.sink.location().to_string(),
            key: what,
        };
        match which {
            Selector::Latest => listing.complete.into_iter().next_back().ok_or_else(|| {
                not_found(match source {
                    Some(s) => format!("a complete backup of {s}"),
                    None => "a complete backup".into(),
                })
            }),
            Selector::Id(id) => {
                let mut hits: Vec<BackupEntry> = listing
                    .complete
                    .into_iter()
                    .filter(|b| b.manifest.backup_id.starts_with(id.as_str()))
                    .collect();
                match hits.len() {
                    0 => Err(not_found(format!("backup {id}"))),
                    1 => Ok(hits.remove(0)),
                    n => Err(Error::usage(format!(
                        "backup id {id} is ambiguous: {n} backups start with it"
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_only_in_the_layout() {
        let (dir, src, id, file) =
            parse_key("app/backups/2026/11/21/20261121T030000Z-3f9a/manifest.json").unwrap();
        assert_eq!(dir, "app/backups/2026/11/21/20261121T030000Z-3f9a");
        assert_eq!(
            (src.as_str(), id.as_str(), file.as_str()),
            ("app", "20261121T030000Z-3f9a", "manifest.json")
        );
        assert!(parse_key("app/wal/1/000001.zst").is_none());
        assert!(parse_key("stray.txt").is_none());
    }
}
