//! What a sink holds: backups listed from their manifests.
//!
//! Three kinds of backup directory under `<source>/backups/`:
//!
//! - **complete**: it holds a `manifest.json` this build reads;
//! - **unreadable**: it holds a `manifest.json` this build cannot read (a
//!   newer format version, a garbled body, an HTML error page served with
//!   200). It may well be a good backup: it is listed, never offered for
//!   restore, never pruned, and it makes `status` unhealthy;
//! - **incomplete**: it holds no manifest object at all (an interrupted run,
//!   or one whose verification failed and whose cleanup did not finish).
//!
//! Only complete ones are ever offered for restore. Order is by the time
//! recorded in the manifest, never by key names.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::Manifest;
use crate::sink::{ObjectInfo, Sink, SinkExt};

/// A complete backup.
#[derive(Debug, Clone)]
pub struct BackupEntry {
    /// Its directory in the sink (`app/backups/2026/11/21/<id>`).
    pub dir: String,
    /// Its manifest.
    pub manifest: Manifest,
}

/// A backup directory without a manifest object (or, in
/// [`Listing::unreadable`], with one this build cannot read).
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
    /// Why it is incomplete (or unreadable).
    pub reason: String,
}

/// A backup whose manifest exists but cannot be read.
pub type UnreadableBackup = IncompleteBackup;

/// Everything found in a sink.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Complete backups, oldest first by recorded start time.
    pub complete: Vec<BackupEntry>,
    /// Directories with no manifest object.
    pub incomplete: Vec<IncompleteBackup>,
    /// Directories whose manifest exists but cannot be read: kept, never
    /// restored from, reported.
    pub unreadable: Vec<UnreadableBackup>,
}

impl Listing {
    /// The source names that have backups of any kind, sorted.
    pub fn sources(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .complete
            .iter()
            .map(|b| b.manifest.source.name.clone())
            .chain(self.unreadable.iter().map(|u| u.source.clone()))
            .chain(self.incomplete.iter().map(|u| u.source.clone()))
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

/// What one backup directory turned out to be.
enum Found {
    Complete(Box<BackupEntry>),
    Incomplete(IncompleteBackup),
    Unreadable(UnreadableBackup),
}

/// Reads backups from a sink.
#[derive(Debug, Clone)]
pub struct Catalog {
    sink: Arc<dyn Sink>,
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
        // Only `<source>/backups/` holds backups: list the sources as the
        // root's common prefixes, then only their backups, not every WAL
        // segment, verification and drill record beside them.
        let prefixes = match source {
            Some(s) => vec![layout::backups_prefix(s)],
            None => self
                .sink
                .list_with_delimiter("")
                .await?
                .common_prefixes
                .iter()
                .map(|s| layout::backups_prefix(s))
                .collect(),
        };
        let mut dirs: BTreeMap<String, (String, String, Vec<ObjectInfo>)> = BTreeMap::new();
        for prefix in &prefixes {
            let mut objects = self.sink.list_stream(prefix);
            while let Some(obj) = objects.try_next().await? {
                if let Some(k) = layout::parse_backup_key(&obj.key) {
                    dirs.entry(k.dir.to_string())
                        .or_insert_with(|| {
                            (k.source.to_string(), k.backup_id.to_string(), Vec::new())
                        })
                        .2
                        .push(obj);
                }
            }
        }
        let sink = self.sink.clone();
        let results: Vec<_> = futures::stream::iter(dirs)
            .map(|(dir, (src, id, objs))| {
                let sink = sink.clone();
                async move {
                    let has_manifest = objs.iter().any(|o| layout::is_manifest_key(&o.key));
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
                        return Ok::<_, Error>(Found::Incomplete(incomplete(format!(
                            "no {}",
                            layout::MANIFEST_FILE
                        ))));
                    }
                    let raw = match sink.get_bytes(&layout::manifest_key(&dir)).await {
                        Ok(raw) => raw,
                        // Listed a moment ago, gone now: deleted meanwhile
                        // (a prune), so it is incomplete.
                        Err(Error::NotFound { .. }) => {
                            return Ok(Found::Incomplete(incomplete(format!(
                                "{} was deleted while listing",
                                layout::MANIFEST_FILE
                            ))));
                        }
                        Err(e) => return Err(e),
                    };
                    Ok(match Manifest::from_json(&raw) {
                        Ok(manifest) if manifest.backup_id == id => {
                            Found::Complete(Box::new(BackupEntry { dir, manifest }))
                        }
                        Ok(manifest) => Found::Unreadable(incomplete(format!(
                            "the manifest names backup {} but sits in the directory of {id}",
                            manifest.backup_id
                        ))),
                        Err(e) => Found::Unreadable(incomplete(match e {
                            Error::Verification { message, .. } => message,
                            other => other.to_string(),
                        })),
                    })
                }
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let mut listing = Listing::default();
        for r in results {
            match r {
                Found::Complete(entry) => listing.complete.push(*entry),
                Found::Incomplete(inc) => listing.incomplete.push(inc),
                Found::Unreadable(u) => listing.unreadable.push(u),
            }
        }
        listing.complete.sort_by(|a, b| {
            (a.manifest.started_at, &a.manifest.backup_id)
                .cmp(&(b.manifest.started_at, &b.manifest.backup_id))
        });
        listing.incomplete.sort_by_key(|a| a.last_modified);
        // Ids start with their UTC start time.
        listing
            .unreadable
            .sort_by(|a, b| a.backup_id.cmp(&b.backup_id));
        Ok(listing)
    }

    /// Find one complete backup. With no `source` the sink must hold backups
    /// of exactly one source.
    ///
    /// # Errors
    /// [`Error::NotFound`] when nothing matches; [`Error::Usage`] when the
    /// source is ambiguous or an id prefix matches several backups.
    pub async fn find(&self, source: Option<&str>, which: &Selector) -> Result<BackupEntry> {
        self.pick(source, which, false).await
    }

    /// [`find`](Self::find) for a restore: [`Selector::Latest`] means the
    /// newest *verified* backup (one whose checks and drill passed), saying
    /// which newer ones it passed over and why; only when none is verified
    /// the newest complete one (with a warning).
    ///
    /// # Errors
    /// As [`find`](Self::find).
    pub async fn find_for_restore(
        &self,
        source: Option<&str>,
        which: &Selector,
    ) -> Result<BackupEntry> {
        self.pick(source, which, true).await
    }

    async fn pick(
        &self,
        source: Option<&str>,
        which: &Selector,
        prefer_verified: bool,
    ) -> Result<BackupEntry> {
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
            Selector::Latest => {
                let mut complete = listing.complete;
                let verified = complete.iter().rposition(|b| b.manifest.verified());
                let newest = match (prefer_verified, verified) {
                    (true, Some(i)) => {
                        for b in &complete[i + 1..] {
                            tracing::warn!(
                                backup_id = %b.manifest.backup_id,
                                failed = %crate::Verdict::failures(&b.manifest.verdicts).join("; "),
                                "skipped a newer backup that is not verified (restore it by id, with --partial, if you need it)"
                            );
                        }
                        complete.truncate(i + 1);
                        complete.pop()
                    }
                    _ => complete.pop(),
                };
                // Say why a newer-looking backup was passed over.
                for u in &listing.unreadable {
                    let newer = newest
                        .as_ref()
                        .is_none_or(|n| u.backup_id > n.manifest.backup_id);
                    if newer {
                        tracing::warn!(
                            backup_id = %u.backup_id,
                            dir = %u.dir,
                            reason = %u.reason,
                            "skipped a newer backup: its manifest cannot be read"
                        );
                    }
                }
                newest.ok_or_else(|| {
                    let mut what = match source {
                        Some(s) => format!("a complete backup of {s}"),
                        None => "a complete backup".into(),
                    };
                    if !listing.unreadable.is_empty() {
                        what.push_str(&format!(
                            " ({} backups with unreadable manifests were skipped: {})",
                            listing.unreadable.len(),
                            listing
                                .unreadable
                                .iter()
                                .map(|u| format!("{}: {}", u.backup_id, u.reason))
                                .collect::<Vec<_>>()
                                .join("; ")
                        ));
                    }
                    not_found(what)
                })
            }
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
    use std::sync::Mutex;

    use async_trait::async_trait;
    use bytes::Bytes;
    use futures::stream::BoxStream;

    use super::*;
    use crate::sink::{ByteStream, ListResult, PendingUpload, PutOptions, Upload};

    /// A memory sink that records the prefixes streamed in full.
    #[derive(Debug)]
    struct Recording(crate::ObjectStoreSink, Mutex<Vec<String>>);

    #[async_trait]
    impl Sink for Recording {
        fn location(&self) -> &str {
            self.0.location()
        }
        async fn check(&self) -> Result<()> {
            self.0.check().await
        }
        async fn put(&self, k: &str, d: Bytes, o: PutOptions) -> Result<()> {
            self.0.put(k, d, o).await
        }
        async fn upload(&self, k: &str) -> Result<Box<dyn Upload>> {
            self.0.upload(k).await
        }
        async fn get(&self, k: &str) -> Result<ByteStream> {
            self.0.get(k).await
        }
        async fn head(&self, k: &str) -> Result<ObjectInfo> {
            self.0.head(k).await
        }
        fn list_stream(&self, p: &str) -> BoxStream<'_, Result<ObjectInfo>> {
            self.1.lock().unwrap().push(p.to_string());
            self.0.list_stream(p)
        }
        async fn list_with_delimiter(&self, p: &str) -> Result<ListResult> {
            self.0.list_with_delimiter(p).await
        }
        async fn delete(&self, k: &str) -> Result<()> {
            self.0.delete(k).await
        }
        async fn list_pending(&self, p: &str) -> Result<Vec<PendingUpload>> {
            self.0.list_pending(p).await
        }
        async fn abort_pending(&self, u: &PendingUpload) -> Result<()> {
            self.0.abort_pending(u).await
        }
    }

    #[tokio::test]
    async fn only_the_backups_of_each_source_are_listed() {
        let sink = Arc::new(Recording(
            crate::ObjectStoreSink::memory(),
            Mutex::default(),
        ));
        for key in [
            "app/backups/2026/11/21/20261121T000000Z-aaaa/data.sqlite.zst",
            "app/wal/00000001/000000010000000000000001.zst",
            "app/verifications/2026-11/x.json",
            "app/restore.md",
            "db2/backups/2026/11/22/20261122T000000Z-bbbb/data.pgdump.zst",
            "stray.txt",
        ] {
            sink.put(key, Bytes::from_static(b"x"), PutOptions::default())
                .await
                .unwrap();
        }
        let listing = Catalog::new(sink.clone()).list(None).await.unwrap();
        let mut ids: Vec<_> = listing
            .incomplete
            .iter()
            .map(|b| (b.source.as_str(), b.backup_id.as_str()))
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                ("app", "20261121T000000Z-aaaa"),
                ("db2", "20261122T000000Z-bbbb")
            ]
        );
        let mut streamed = sink.1.lock().unwrap().clone();
        streamed.sort();
        assert_eq!(streamed, ["app/backups", "db2/backups"]);
    }
}
