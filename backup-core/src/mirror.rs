//! `mirror`: copy what one sink has and another lacks (complete backups,
//! the WAL archive, verification and drill records), every object checked,
//! manifests last.
//!
//! - **A backup** is copied object by object: each artifact and attachment
//!   streams from A to B through a SHA-256, and must match the size and
//!   hash its manifest records; only then is the manifest written to B
//!   (create-only). A mirror interrupted half-way leaves B with objects
//!   but no manifest: an incomplete backup, invisible to restores and
//!   removed by `prune`; the next mirror copies what is missing and commits
//!   it. Objects B already holds at the recorded size are not copied again
//!   (uploads are atomic, so such an object is whole).
//! - **WAL**: `archive.json` first (B's must match A's: the same cluster),
//!   then every file B lacks, oldest first. An unencrypted file is
//!   decompressed and checked against its own record (name, size,
//!   SHA-256) before it is written; an encrypted one has its metadata frame
//!   checked (its payload is checked when it is fetched).
//! - **Records** (verifications, drills): copied as they are, create-only.
//! - A backup whose objects in A do not match its manifest is not copied
//!   to B; it is reported, and the run fails (exit 4) after copying the
//!   rest.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{BackupEntry, Catalog};
use crate::error::{Error, Result};
use crate::layout;
use crate::sink::{PutOptions, Sink, SinkExt};

/// WAL files and records copied at once.
const PARALLEL: usize = 8;

/// What a mirror did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorReport {
    /// `A`, without credentials.
    pub from: String,
    /// `B`, without credentials.
    pub to: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// Backups copied (committed in B), by id.
    pub backups: Vec<String>,
    /// Backups B already had.
    pub backups_present: usize,
    /// WAL files copied.
    pub wal_files: usize,
    /// Verification and drill records copied.
    pub records: usize,
    /// Bytes copied.
    pub bytes: u64,
    /// What could not be copied, and why.
    pub failures: Vec<String>,
    /// Wall time.
    pub duration_ms: u64,
}

/// Copy what `from` has and `to` lacks, for `source` or every source.
///
/// # Errors
/// Sink errors that stop the run (listing A or B); per-object problems are
/// collected in [`MirrorReport::failures`] and turned into
/// [`Error::Verification`] by [`MirrorReport::into_result`].
pub async fn mirror(
    from: Arc<dyn Sink>,
    to: Arc<dyn Sink>,
    source: Option<&str>,
    dry_run: bool,
) -> Result<MirrorReport> {
    let t0 = Instant::now();
    let mut report = MirrorReport {
        from: from.location().to_string(),
        to: to.location().to_string(),
        dry_run,
        ..Default::default()
    };
    if !dry_run {
        to.check().await?;
    }
    let listing = Catalog::new(from.clone()).list(source).await?;
    let mut names: Vec<String> = match source {
        Some(s) => vec![s.to_string()],
        None => listing.sources(),
    };
    // Sources with only a WAL archive (no backup yet) are mirrored too.
    if source.is_none() {
        for p in from.list_with_delimiter("").await?.common_prefixes {
            let name = p.trim_end_matches('/').to_string();
            if !names.contains(&name)
                && crate::manifest::check_source_name(&name).is_ok()
                && from.head(&layout::wal_archive_key(&name)).await.is_ok()
            {
                names.push(name);
            }
        }
    }
    let there = Catalog::new(to.clone()).list(source).await?;
    let present: HashSet<&str> = there
        .complete
        .iter()
        .map(|b| b.manifest.backup_id.as_str())
        .collect();
    // Hosts sharing the target: one writes (or prunes) a source at a time.
    let mut leases = Vec::new();
    if !dry_run {
        names.sort();
        for name in &names {
            match crate::lease::Lease::acquire(to.clone(), name, "mirror").await {
                Ok(l) => leases.push(l),
                Err(e) => {
                    for l in leases {
                        l.release().await;
                    }
                    return Err(e);
                }
            }
        }
    }
    let result = mirror_held(
        &from,
        &to,
        &listing,
        &present,
        &names,
        dry_run,
        &mut report,
        &leases,
    )
    .await;
    for l in leases {
        l.release().await;
    }
    result?;
    report.duration_ms = t0.elapsed().as_millis() as u64;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn mirror_held(
    from: &Arc<dyn Sink>,
    to: &Arc<dyn Sink>,
    listing: &crate::catalog::Listing,
    present: &HashSet<&str>,
    names: &[String],
    dry_run: bool,
    report: &mut MirrorReport,
    leases: &[crate::lease::Lease],
) -> Result<()> {
    let ensure = || leases.iter().try_for_each(|l| l.ensure());
    // Newest first: the newest backup matters most if the run is cut short.
    for entry in listing.complete.iter().rev() {
        if present.contains(entry.manifest.backup_id.as_str()) {
            report.backups_present += 1;
            continue;
        }
        ensure()?;
        // A prune of A elsewhere keeps what is being copied.
        let mark = if dry_run {
            None
        } else {
            crate::lease::ReaderMark::place(
                from.clone(),
                &entry.manifest.source.name,
                &entry.manifest.backup_id,
                "mirror",
            )
            .await
        };
        let copied = copy_backup(&**from, &**to, entry, dry_run).await;
        if let Some(m) = mark {
            m.remove().await;
        }
        match copied {
            Ok((bytes, _)) => {
                report.bytes += bytes;
                report.backups.push(entry.manifest.backup_id.clone());
                tracing::info!(backup_id = %entry.manifest.backup_id, bytes, dry_run, "backup mirrored");
            }
            Err(e @ Error::Verification { .. }) => {
                tracing::error!(backup_id = %entry.manifest.backup_id, error = %e.display_chain(), "backup not mirrored");
                report.failures.push(format!(
                    "{}: {}",
                    entry.manifest.backup_id,
                    e.display_chain()
                ));
            }
            Err(e) => return Err(e),
        }
    }
    for name in names {
        ensure()?;
        let (files, bytes) = copy_wal(&**from, &**to, name, dry_run, &mut report.failures).await?;
        report.wal_files += files;
        report.bytes += bytes;
        for prefix in [
            layout::verifications_prefix(name),
            layout::drills_prefix(name),
        ] {
            let (n, bytes) = copy_missing(&**from, &**to, &prefix, dry_run).await?;
            report.records += n;
            report.bytes += bytes;
        }
        // The restore guide follows the newest backup's.
        let guide = layout::restore_guide_key(name);
        if !dry_run
            && let Ok(g) = from.get_bytes(&guide).await
            && to.get_bytes(&guide).await.ok().as_ref() != Some(&g)
        {
            to.put(&guide, g, PutOptions::default()).await?;
        }
    }
    Ok(())
}

impl MirrorReport {
    /// The report, or [`Error::Verification`] naming what could not be
    /// copied.
    ///
    /// # Errors
    /// When something could not be copied.
    pub fn into_result(self) -> Result<Self> {
        if self.failures.is_empty() {
            Ok(self)
        } else {
            Err(Error::verification("mirror", self.failures.join("; ")))
        }
    }
}

/// Copy one backup's objects, checked, then its manifest. Returns the
/// bytes copied and, unless dry, the manifest the target holds.
async fn copy_backup(
    from: &dyn Sink,
    to: &dyn Sink,
    entry: &BackupEntry,
    dry_run: bool,
) -> Result<(u64, Option<crate::Manifest>)> {
    let m = &entry.manifest;
    // Key → (size, sha256) the manifest records.
    let mut expected: HashMap<&str, (u64, &str)> = HashMap::new();
    expected.insert(
        &m.artifact.key,
        (m.artifact.stored_size, &m.artifact.sha256),
    );
    for a in &m.attachments {
        expected.insert(&a.key, (a.stored_size, &a.sha256));
    }
    let manifest_key = layout::manifest_key(&entry.dir);
    let objects = from.list(&entry.dir).await?;
    for k in expected.keys() {
        if !objects.iter().any(|o| o.key == *k) {
            return Err(Error::verification(
                "mirror",
                format!("{k} is missing from {}", from.location()),
            ));
        }
    }
    let mut bytes = 0;
    for o in objects.iter().filter(|o| o.key != manifest_key) {
        if let Ok(info) = to.head(&o.key).await
            && info.size == o.size
        {
            continue;
        }
        bytes += o.size;
        if dry_run {
            continue;
        }
        copy_object(from, to, &o.key, expected.get(o.key.as_str()).copied()).await?;
    }
    if !dry_run {
        crate::failpoint::point("mirror:objects-copied");
        // The same manifest, its storage section describing the target
        // (where the objects are, how to restore by hand from there).
        let mut copy = m.clone();
        let kind = crate::source::SourceKind::parse(&copy.source.kind);
        copy.storage = Some(copy.describe_storage(to.location(), |steps| {
            if let Some(kind) = kind {
                kind.manual_restore(m, steps);
            }
        }));
        let raw = Bytes::from(copy.to_json());
        bytes += raw.len() as u64;
        match to.put(&manifest_key, raw, PutOptions::create_only()).await {
            Ok(()) => {}
            // A manifest of the same backup is there: it was committed.
            Err(Error::AlreadyExists { .. })
                if crate::Manifest::from_json(&to.get_bytes(&manifest_key).await?)
                    .is_ok_and(|t| t.backup_id == m.backup_id) => {}
            Err(e) => return Err(e),
        }
        return Ok((bytes, Some(copy)));
    }
    Ok((bytes, None))
}

/// Copy one committed backup from `from` to `to` (a second sink of the
/// same run): every object checked against the manifest, then the manifest
/// with its storage section describing `to`. Returns the bytes copied.
///
/// # Errors
/// [`Error::Verification`] when an object in `from` does not match its
/// manifest (nothing is committed in `to`); sink errors.
pub async fn replicate(from: &dyn Sink, to: &dyn Sink, entry: &BackupEntry) -> Result<u64> {
    let (bytes, written) = copy_backup(from, to, entry, false).await?;
    if let Some(m) = written {
        crate::pipeline::write_restore_guide(to, &m).await;
    }
    Ok(bytes)
}

/// Stream `key` from A to B through a SHA-256; with `expected`, the size
/// and hash must match or nothing stays in B.
async fn copy_object(
    from: &dyn Sink,
    to: &dyn Sink,
    key: &str,
    expected: Option<(u64, &str)>,
) -> Result<()> {
    let mut stream = from.get(key).await?;
    let mut up = to.upload(key).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = up.abort().await;
                return Err(e);
            }
        };
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if let Err(e) = up.write(chunk).await {
            let _ = up.abort().await;
            return Err(e);
        }
    }
    let sha = hex::encode(hasher.finalize());
    if let Some((want_size, want_sha)) = expected
        && (size != want_size || sha != want_sha)
    {
        let _ = up.abort().await;
        return Err(Error::verification(
            "mirror",
            format!(
                "{key} in {} does not match its manifest ({size} bytes, SHA-256 {sha}; manifest: {want_size} bytes, {want_sha}): not copied",
                from.location()
            ),
        ));
    }
    up.complete().await
}

/// Copy the WAL files of `name` that B lacks, oldest first, each checked.
async fn copy_wal(
    from: &dyn Sink,
    to: &dyn Sink,
    name: &str,
    dry_run: bool,
    failures: &mut Vec<String>,
) -> Result<(usize, u64)> {
    let info_key = layout::wal_archive_key(name);
    let info = match from.get_bytes(&info_key).await {
        Ok(b) => b,
        Err(Error::NotFound { .. }) => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    match to.get_bytes(&info_key).await {
        Ok(theirs) if theirs == info => {}
        Ok(_) => {
            failures.push(format!(
                "{name}: the WAL archive in {} belongs to another cluster (its archive.json differs): WAL not mirrored",
                to.location()
            ));
            return Ok((0, 0));
        }
        Err(Error::NotFound { .. }) if dry_run => {}
        Err(Error::NotFound { .. }) => {
            to.put(&info_key, info.clone(), PutOptions::create_only())
                .await?;
        }
        Err(e) => return Err(e),
    }
    let prefix = layout::wal_prefix(name);
    let theirs: HashSet<String> = to.list(&prefix).await?.into_iter().map(|o| o.key).collect();
    let mut missing: Vec<_> = from
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|o| {
            o.key != info_key
                && !theirs.contains(&o.key)
                && !layout::file_name(&o.key).starts_with('.')
        })
        .collect();
    missing.sort_by(|a, b| layout::file_name(&a.key).cmp(layout::file_name(&b.key)));
    let bytes: u64 = missing.iter().map(|o| o.size).sum();
    if dry_run {
        return Ok((missing.len(), bytes));
    }
    let mut results: Vec<(String, Result<()>)> = Vec::new();
    for batch in missing.chunks(PARALLEL) {
        let done =
            futures::future::join_all(batch.iter().map(|o| copy_wal_object(from, to, &o.key)))
                .await;
        results.extend(batch.iter().map(|o| o.key.clone()).zip(done));
    }
    let mut copied = 0;
    for (key, r) in results {
        match r {
            Ok(()) => copied += 1,
            Err(e @ Error::Verification { .. }) | Err(e @ Error::AlreadyExists { .. }) => {
                failures.push(format!("{key}: {}", e.display_chain()))
            }
            Err(e) => return Err(e),
        }
    }
    Ok((copied, bytes))
}

/// Copy one WAL object, checked, create-only.
async fn copy_wal_object(from: &dyn Sink, to: &dyn Sink, key: &str) -> Result<()> {
    let stored = from.get_bytes(key).await?;
    check_wal_object(key, &stored)?;
    match to.put(key, stored.clone(), PutOptions::create_only()).await {
        Ok(()) => Ok(()),
        Err(Error::AlreadyExists { .. }) if to.get_bytes(key).await? == stored => Ok(()),
        Err(e) => Err(e),
    }
}

/// Copy one small object, create-only.
async fn copy_small(from: &dyn Sink, to: &dyn Sink, key: &str) -> Result<()> {
    let raw: Bytes = from.get_bytes(key).await?;
    match to.put(key, raw, PutOptions::create_only()).await {
        Ok(()) | Err(Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A stored WAL object is what its metadata says (unencrypted: decoded and
/// hashed; encrypted: its frame parses).
fn check_wal_object(key: &str, stored: &[u8]) -> Result<()> {
    let bad = |why: String| Error::verification("mirror", format!("{key}: {why}: not copied"));
    let meta = crate::wal::read_meta(stored).map_err(bad)?;
    if meta.encryption.is_some() {
        // No key here: the frame parses and an age stream follows it; the
        // rest is checked when the file is fetched.
        let (_, rest) = crate::codec::split_metadata(stored).map_err(bad)?;
        return if rest.starts_with(b"age-encryption.org/v1") {
            Ok(())
        } else {
            Err(bad("its payload is not age".into()))
        };
    }
    crate::wal::open_object(stored, None)
        .map(|_| ())
        .map_err(bad)
}

/// Copy the objects below `prefix` that B lacks (small records).
async fn copy_missing(
    from: &dyn Sink,
    to: &dyn Sink,
    prefix: &str,
    dry_run: bool,
) -> Result<(usize, u64)> {
    let theirs: HashSet<String> = to.list(prefix).await?.into_iter().map(|o| o.key).collect();
    let missing: Vec<_> = from
        .list(prefix)
        .await?
        .into_iter()
        .filter(|o| !theirs.contains(&o.key) && !layout::file_name(&o.key).starts_with('.'))
        .collect();
    let bytes = missing.iter().map(|o| o.size).sum();
    if dry_run {
        return Ok((missing.len(), bytes));
    }
    for batch in missing.chunks(PARALLEL) {
        for r in futures::future::join_all(batch.iter().map(|o| copy_small(from, to, &o.key))).await
        {
            r?;
        }
    }
    Ok((missing.len(), bytes))
}
