//! Retention: which backups to keep, and deleting the rest safely.
//!
//! Rules, all optional and combined (a backup is kept if *any* rule keeps
//! it):
//!
//! - `keep_last = N`: the N newest complete backups;
//! - `keep_days = D`: every backup started in the last D days;
//! - `keep_daily`, `keep_weekly`, `keep_monthly = N`: the newest backup of
//!   each of the N most recent days, ISO weeks or months that have one
//!   (grandfather-father-son).
//!
//! Safety rules, not configurable:
//!
//! - the newest *verified* backup is never deleted;
//! - with no rule configured nothing is deleted;
//! - if the listing fails, nothing is deleted (a listing error is never an
//!   empty list);
//! - backups are ordered by the start time recorded in their manifests,
//!   never by key names;
//! - an incomplete backup (no manifest object at all) is removed only once
//!   its newest object is older than the grace period, so a running backup
//!   is never touched;
//! - a backup whose manifest exists but cannot be read (a newer format, a
//!   garbled body) is never deleted: it may be good, and this build cannot
//!   tell;
//! - a backup is deleted manifest first, so a half-deleted backup is
//!   incomplete, never a corrupt "complete" one;
//! - what interrupted writes left (open multipart uploads, hidden partial
//!   files) goes with the same grace period as incomplete backups;
//! - archived WAL (`<source>/wal/`) goes only when it is older than the
//!   start of every kept physical base backup; with no physical base
//!   backup kept, none goes. `keep_pitr = "7d"` keeps the base backup the
//!   window starts from, and so the WAL after it.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{BackupEntry, Catalog, Listing};
use crate::error::{Error, Result};
use crate::layout;
use crate::sink::Sink;
use crate::source::postgres::physical::{PHYSICAL_KIND, PhysicalDetails, parse_lsn};

/// A retention policy. In `lifeboat.toml`, a profile's `[retention]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Keep the N newest backups.
    pub keep_last: Option<u32>,
    /// Keep every backup of the last D days.
    pub keep_days: Option<u32>,
    /// Keep the newest backup of each of the last N days that have one.
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    pub keep_monthly: Option<u32>,
    /// Incomplete backups older than this (`"24h"`, or seconds) are removed.
    #[serde(deserialize_with = "crate::units::opt_duration::deserialize")]
    pub incomplete_grace: Option<u64>,
    /// Prune after every successful backup.
    pub after_backup: bool,
    /// Keep what point-in-time recovery to any moment of this window needs
    /// (`"7d"`, or seconds): the newest physical base backup that ended
    /// before the window starts, and the WAL from its start on.
    #[serde(deserialize_with = "crate::units::opt_duration::deserialize")]
    pub keep_pitr: Option<u64>,
}

/// Default grace period for incomplete backups.
pub const DEFAULT_INCOMPLETE_GRACE: Duration = Duration::from_secs(24 * 3600);

impl RetentionPolicy {
    /// Whether any keep rule is set.
    pub fn has_rules(&self) -> bool {
        self.keep_last.is_some()
            || self.keep_days.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_pitr.is_some()
    }

    /// Check the numbers: a count or a span past a century is a mistake,
    /// and would overflow date arithmetic.
    ///
    /// # Errors
    /// A message naming the key and the range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        use crate::units::check_range;
        for (what, v) in [
            ("keep_last", self.keep_last),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
        ] {
            if let Some(n) = v {
                check_range(what, n, 1..=1_000_000)?;
            }
        }
        if let Some(d) = self.keep_days {
            check_range("keep_days", d, 1..=36_500)?;
        }
        if let Some(w) = self.keep_pitr {
            crate::units::check_duration(w).map_err(|e| format!("keep_pitr: {e}"))?;
        }
        if let Some(g) = self.incomplete_grace {
            crate::units::check_duration(g).map_err(|e| format!("incomplete_grace: {e}"))?;
        }
        Ok(())
    }

    fn grace(&self) -> chrono::Duration {
        chrono::Duration::seconds(
            self.incomplete_grace
                .unwrap_or(DEFAULT_INCOMPLETE_GRACE.as_secs()) as i64,
        )
    }
}

/// The fate of one backup.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Decision {
    /// The backup id.
    pub backup_id: String,
    /// Its directory in the sink.
    pub dir: String,
    /// When it started (from its manifest), or its newest object's time for
    /// an incomplete one.
    pub started_at: DateTime<Utc>,
    /// Whether it stays.
    pub keep: bool,
    /// The rules that keep it, or the reason it goes.
    pub reasons: Vec<String>,
    /// Whether it is an incomplete backup (no manifest).
    pub incomplete: bool,
    /// Whether its manifest exists but cannot be read.
    pub unreadable: bool,
}

/// Decide, without touching anything, which backups of one listing stay.
/// `listing` must hold one source's backups.
pub fn plan(listing: &Listing, policy: &RetentionPolicy, now: DateTime<Utc>) -> Vec<Decision> {
    let mut newest_first: Vec<&BackupEntry> = listing.complete.iter().collect();
    newest_first.sort_by(|a, b| {
        (b.manifest.started_at, &b.manifest.backup_id)
            .cmp(&(a.manifest.started_at, &a.manifest.backup_id))
    });
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); newest_first.len()];
    if !policy.has_rules() {
        for r in &mut reasons {
            r.push("no retention rule configured".into());
        }
    }
    if let Some(n) = policy.keep_last {
        for (i, r) in reasons.iter_mut().enumerate().take(n as usize) {
            r.push(format!("keep_last {n} (#{})", i + 1));
        }
    }
    if let Some(d) = policy.keep_days {
        let cutoff = now - chrono::Duration::days(d as i64);
        for (b, r) in newest_first.iter().zip(reasons.iter_mut()) {
            if b.manifest.started_at >= cutoff {
                r.push(format!("keep_days {d}"));
            }
        }
    }
    let mut bucketed =
        |n: Option<u32>, rule: &str, key: &dyn Fn(DateTime<Utc>) -> (i32, u32, u32)| {
            let Some(n) = n else { return };
            let mut seen = BTreeSet::new();
            for (b, r) in newest_first.iter().zip(reasons.iter_mut()) {
                if seen.len() >= n as usize {
                    break;
                }
                let k = key(b.manifest.started_at);
                if seen.insert(k) {
                    r.push(format!("{rule} {n} ({})", describe_bucket(rule, k)));
                }
            }
        };
    bucketed(policy.keep_daily, "keep_daily", &|t| {
        (t.year(), t.month(), t.day())
    });
    bucketed(policy.keep_weekly, "keep_weekly", &|t| {
        let w = t.iso_week();
        (w.year(), w.week(), 0)
    });
    bucketed(policy.keep_monthly, "keep_monthly", &|t| {
        (t.year(), t.month(), 0)
    });
    // The base backup a PITR window starts from.
    if let Some(w) = policy.keep_pitr {
        let cutoff = now - chrono::Duration::seconds(w as i64);
        let physical: Vec<usize> = newest_first
            .iter()
            .enumerate()
            .filter(|(_, b)| b.manifest.source.kind == PHYSICAL_KIND && b.manifest.verified())
            .map(|(i, _)| i)
            .collect();
        let ended = |i: usize| {
            PhysicalDetails::from_fingerprint(&newest_first[i].manifest.fingerprint)
                .stopped_at
                .unwrap_or(newest_first[i].manifest.finished_at)
        };
        let starts_window = physical.iter().copied().find(|&i| ended(i) <= cutoff);
        match starts_window {
            Some(i) => reasons[i].push(format!(
                "keep_pitr {}: the base backup recovery to the start of the window needs",
                crate::health::human_secs(w as i64)
            )),
            // The archive is younger than the window: its oldest base.
            None => {
                if let Some(&i) = physical.last() {
                    reasons[i].push(format!(
                        "keep_pitr {}: the oldest base backup (the window is not full yet)",
                        crate::health::human_secs(w as i64)
                    ));
                }
            }
        }
    }
    // Never the newest verified backup.
    if let Some(i) = newest_first.iter().position(|b| b.manifest.verified()) {
        reasons[i].push("newest verified backup".into());
    }
    let mut out: Vec<Decision> = newest_first
        .iter()
        .zip(reasons)
        .map(|(b, reasons)| {
            let keep = !reasons.is_empty();
            Decision {
                backup_id: b.manifest.backup_id.clone(),
                dir: b.dir.clone(),
                started_at: b.manifest.started_at,
                keep,
                reasons: if keep {
                    reasons
                } else {
                    vec!["no rule keeps it".into()]
                },
                incomplete: false,
                unreadable: false,
            }
        })
        .collect();
    for u in &listing.unreadable {
        out.push(Decision {
            backup_id: u.backup_id.clone(),
            dir: u.dir.clone(),
            started_at: u.last_modified,
            keep: true,
            reasons: vec![format!(
                "manifest unreadable ({}): never pruned; inspect it, or upgrade lifeboat",
                u.reason
            )],
            incomplete: false,
            unreadable: true,
        });
    }
    let grace = policy.grace();
    for inc in &listing.incomplete {
        let old = inc.last_modified + grace <= now;
        out.push(Decision {
            backup_id: inc.backup_id.clone(),
            dir: inc.dir.clone(),
            started_at: inc.last_modified,
            keep: !old,
            reasons: vec![if old {
                format!(
                    "incomplete ({}) for longer than the grace period",
                    inc.reason
                )
            } else {
                format!(
                    "incomplete ({}) but within the grace period (may still be running)",
                    inc.reason
                )
            }],
            incomplete: true,
            unreadable: false,
        });
    }
    out
}

fn describe_bucket(rule: &str, k: (i32, u32, u32)) -> String {
    match rule {
        "keep_daily" => format!("{:04}-{:02}-{:02}", k.0, k.1, k.2),
        "keep_weekly" => format!("{:04}-W{:02}", k.0, k.1),
        _ => format!("{:04}-{:02}", k.0, k.1),
    }
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Every decision, complete backups newest first, then incomplete ones.
    pub decisions: Vec<Decision>,
    /// What interrupted writes left for this source (open multipart
    /// uploads, hidden partial files); the stale ones (older than the grace
    /// period) are removed unless dry.
    pub leftovers: Vec<crate::leftovers::Leftover>,
    /// How many leftovers were removed.
    pub leftovers_removed: usize,
    /// Backups deleted (none when dry).
    pub deleted: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The WAL archive's part, when the source has one.
    pub wal: Option<WalPrune>,
}

/// What a prune does to a source's WAL archive.
#[derive(Debug, Clone, Serialize)]
pub struct WalPrune {
    /// Archived files before pruning.
    pub files: usize,
    /// The oldest segment kept (older ones go), if any go.
    pub keep_from: Option<String>,
    /// Why the WAL from there on stays (or why all of it stays).
    pub reason: String,
    /// Every file that goes (or would go), with why.
    pub delete: Vec<WalDecision>,
    /// Files deleted (none when dry).
    pub deleted: usize,
}

/// One archived WAL file that goes.
#[derive(Debug, Clone, Serialize)]
pub struct WalDecision {
    /// Its key.
    pub key: String,
    /// Why it goes.
    pub reason: String,
}

/// Decide which archived WAL files of `source` go, given the backups that
/// stay.
async fn plan_wal(
    sink: &dyn Sink,
    source: &str,
    listing: &Listing,
    decisions: &[Decision],
) -> Result<Option<WalPrune>> {
    use crate::source::postgres::walfile::WalFileKind;
    use crate::wal::ArchiveListing;
    let Some(archive) = ArchiveListing::read(sink, source).await? else {
        return Ok(None);
    };
    let files: Vec<(String, crate::source::postgres::walfile::WalFileName)> =
        archive.files.into_iter().map(|f| (f.key, f.name)).collect();
    let Some(segment_size) = ArchiveListing::segment_size(sink, source).await? else {
        return Ok(Some(WalPrune {
            files: files.len(),
            keep_from: None,
            reason: "the archive's archive.json cannot be read: all WAL is kept".into(),
            delete: Vec::new(),
            deleted: 0,
        }));
    };
    let kept: std::collections::HashSet<&str> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.backup_id.as_str())
        .collect();
    // The oldest start among the kept physical base backups.
    let oldest = listing
        .complete
        .iter()
        .filter(|b| {
            b.manifest.source.kind == PHYSICAL_KIND && kept.contains(b.manifest.backup_id.as_str())
        })
        .filter_map(|b| {
            let d = PhysicalDetails::from_fingerprint(&b.manifest.fingerprint);
            let start = d.start_lsn.as_deref().and_then(parse_lsn)?;
            Some((
                start / u64::from(segment_size),
                b.manifest.backup_id.clone(),
            ))
        })
        .min();
    let Some((first_needed, backup_id)) = oldest else {
        return Ok(Some(WalPrune {
            files: files.len(),
            keep_from: None,
            reason: "no physical base backup is kept: all WAL is kept (it is of no use without one, and deleting it cannot be undone)".into(),
            delete: Vec::new(),
            deleted: 0,
        }));
    };
    let keep_from = crate::wal::segment_position_name(first_needed, segment_size);
    let mut delete: Vec<(u64, WalDecision)> = files
        .iter()
        .filter(|(_, n)| n.kind() != WalFileKind::History)
        .filter_map(|(key, n)| {
            let segno = n.segment_number(segment_size)?;
            (segno < first_needed).then(|| {
                (
                    segno,
                    WalDecision {
                        key: key.clone(),
                        reason: format!(
                            "before {keep_from}, where the oldest kept base backup ({backup_id}) starts"
                        ),
                    },
                )
            })
        })
        .collect();
    delete.sort_by_key(|(n, _)| *n);
    Ok(Some(WalPrune {
        files: files.len(),
        keep_from: Some(keep_from.clone()),
        reason: format!(
            "the oldest kept base backup ({backup_id}) starts in log/segment {keep_from}; timeline history files always stay"
        ),
        delete: delete.into_iter().map(|(_, d)| d).collect(),
        deleted: 0,
    }))
}

/// Apply `policy` to the backups of `source` in `sink` at time `now`.
///
/// # Errors
/// A listing failure deletes nothing. A failed delete stops the prune and is
/// returned; what was deleted before it is in the log.
pub async fn prune(
    sink: &std::sync::Arc<dyn Sink>,
    source: &str,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport> {
    let listing = Catalog::new(sink.clone()).list(Some(source)).await?;
    if listing
        .complete
        .iter()
        .any(|b| b.manifest.source.name != source)
    {
        return Err(Error::usage(format!(
            "listing of {source} returned other sources"
        )));
    }
    let mut decisions = plan(&listing, policy, now);
    // A backup another run is reading (a restore, a verify, a mirror) stays.
    for r in crate::lease::live_readers(&**sink, source).await? {
        if let Some(d) = decisions
            .iter_mut()
            .find(|d| !d.keep && Some(&d.backup_id) == r.backup_id.as_ref())
        {
            d.keep = true;
            d.reasons = vec![format!(
                "being read by {} on {} (pid {}) until {} at least",
                r.operation,
                r.host,
                r.pid,
                r.expires_at.to_rfc3339()
            )];
        }
    }
    // Hosts sharing the sink: one deletes at a time.
    let lease = if dry_run {
        None
    } else {
        Some(crate::lease::Lease::acquire(sink.clone(), source, "prune").await?)
    };
    let result = prune_held(
        sink,
        source,
        policy,
        now,
        dry_run,
        listing,
        decisions,
        lease.as_ref(),
    )
    .await;
    if let Some(l) = lease {
        l.release().await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn prune_held(
    sink: &std::sync::Arc<dyn Sink>,
    source: &str,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    dry_run: bool,
    listing: Listing,
    decisions: Vec<Decision>,
    lease: Option<&crate::lease::Lease>,
) -> Result<PruneReport> {
    let ensure = || lease.map(|l| l.ensure()).unwrap_or(Ok(()));
    let mut deleted = Vec::new();
    if !dry_run {
        let objects = sink.list(&layout::backups_prefix(source)).await?;
        for d in decisions.iter().filter(|d| !d.keep) {
            ensure()?;
            let prefix = format!("{}/", d.dir);
            let mut keys: Vec<&str> = objects
                .iter()
                .map(|o| o.key.as_str())
                .filter(|k| k.starts_with(&prefix))
                .collect();
            // The manifest goes first: from then on the rest is "incomplete".
            keys.sort_by_key(|k| !layout::is_manifest_key(k));
            for k in keys {
                sink.delete(k).await?;
                if layout::is_manifest_key(k) {
                    crate::failpoint::point("prune:manifest-deleted");
                }
            }
            tracing::info!(backup_id = %d.backup_id, reason = %d.reasons.join("; "), "pruned");
            deleted.push(d.backup_id.clone());
        }
    }
    let grace = std::time::Duration::from_secs(
        policy
            .incomplete_grace
            .unwrap_or(DEFAULT_INCOMPLETE_GRACE.as_secs()),
    );
    let mut wal = plan_wal(&**sink, source, &listing, &decisions).await?;
    if let Some(w) = wal.as_mut()
        && !dry_run
    {
        // Oldest first: an interrupted prune leaves a shorter archive, never
        // a gap.
        for d in &w.delete {
            ensure()?;
            sink.delete(&d.key).await?;
            w.deleted += 1;
        }
        if w.deleted > 0 {
            tracing::info!(source, deleted = w.deleted, keep_from = ?w.keep_from, "pruned archived WAL");
        }
    }
    let leftovers = crate::leftovers::find(&**sink, source, grace, now).await?;
    let leftovers_removed = if dry_run {
        0
    } else {
        crate::leftovers::remove(&**sink, &leftovers).await?
    };
    Ok(PruneReport {
        decisions,
        leftovers,
        leftovers_removed,
        deleted,
        dry_run,
        wal,
    })
}
