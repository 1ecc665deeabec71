//! Retention with an injected clock: a sequence of dated backups, and exactly
//! which survive each policy.

use std::collections::BTreeSet;
use std::sync::Arc;

use backup_core::retention::{self, RetentionPolicy};
use backup_core::{BackupJob, ErrorKind, ObjectStoreSink, Sink, SqliteSource};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use lifeboat_tests::support::sample_db;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// The dated backups: (label, time).
fn schedule() -> Vec<(&'static str, DateTime<Utc>)> {
    vec![
        ("aug15", at(2026, 8, 15, 3)),
        ("aug31", at(2026, 8, 31, 3)),
        ("sep10", at(2026, 9, 10, 3)),
        ("sep28", at(2026, 9, 28, 3)),
        ("oct05", at(2026, 10, 5, 3)),
        ("oct12", at(2026, 10, 12, 3)),
        ("oct19", at(2026, 10, 19, 3)),
        ("oct26", at(2026, 10, 26, 3)),
        ("oct27", at(2026, 10, 27, 3)),
        ("oct28", at(2026, 10, 28, 3)),
        ("oct29", at(2026, 10, 29, 3)),
        ("oct30a", at(2026, 10, 30, 1)),
        ("oct30b", at(2026, 10, 30, 3)),
    ]
}

/// Take every dated backup into a fresh memory sink; returns the sink and
/// backup id → label.
async fn dated_backups() -> (Arc<dyn Sink>, Vec<(String, &'static str)>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sample_db(&db, 200);
    let sink: Arc<dyn Sink> = Arc::new(ObjectStoreSink::memory());
    let mut ids = Vec::new();
    for (label, t) in schedule() {
        let report = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink.clone())
            .name("app")
            .lock_dir(dir.path())
            .clock(Arc::new(move || t))
            .run()
            .await
            .unwrap();
        assert_eq!(report.manifest.started_at, t);
        ids.push((report.manifest.backup_id, label));
    }
    (sink, ids)
}

fn label_of(ids: &[(String, &'static str)], id: &str) -> &'static str {
    ids.iter().find(|(i, _)| i == id).map(|(_, l)| *l).unwrap()
}

async fn survivors(
    policy: RetentionPolicy,
    now: DateTime<Utc>,
) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let (sink, ids) = dated_backups().await;
    let report = retention::prune(&sink, "app", &policy, now, false)
        .await
        .unwrap();
    let kept: BTreeSet<_> = report
        .decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| label_of(&ids, &d.backup_id))
        .collect();
    // What the sink still lists agrees with the decisions.
    let listed: BTreeSet<_> = backup_core::Catalog::new(sink.clone())
        .list(Some("app"))
        .await
        .unwrap()
        .complete
        .iter()
        .map(|b| label_of(&ids, &b.manifest.backup_id))
        .collect();
    assert_eq!(kept, listed);
    let deleted: BTreeSet<_> = report.deleted.iter().map(|d| label_of(&ids, d)).collect();
    (kept, deleted)
}

fn set(labels: &[&'static str]) -> BTreeSet<&'static str> {
    labels.iter().copied().collect()
}

fn policy() -> RetentionPolicy {
    RetentionPolicy::default()
}

#[tokio::test]
async fn keep_last_keeps_the_newest_n_by_recorded_time() {
    let mut p = policy();
    p.keep_last = Some(3);
    let (kept, _) = survivors(p, at(2026, 10, 30, 12)).await;
    assert_eq!(kept, set(&["oct29", "oct30a", "oct30b"]));
}

#[tokio::test]
async fn keep_days_keeps_everything_inside_the_window() {
    let mut p = policy();
    p.keep_days = Some(30);
    // 30 days before 2026-10-30 12:00 is 2026-09-30 12:00.
    let (kept, deleted) = survivors(p, at(2026, 10, 30, 12)).await;
    assert_eq!(
        kept,
        set(&[
            "oct05", "oct12", "oct19", "oct26", "oct27", "oct28", "oct29", "oct30a", "oct30b"
        ])
    );
    assert_eq!(deleted, set(&["aug15", "aug31", "sep10", "sep28"]));
}

#[tokio::test]
async fn grandfather_father_son_keeps_the_newest_of_each_bucket() {
    let mut p = policy();
    p.keep_daily = Some(3);
    p.keep_weekly = Some(2);
    p.keep_monthly = Some(3);
    let (kept, _) = survivors(p, at(2026, 10, 30, 12)).await;
    // daily: Oct 30 (the 03:00 one), 29, 28; weekly: ISO week 44 → oct30b,
    // week 43 → oct19 (Mon 19 – Sun 25); monthly: Oct → oct30b, Sep → sep28,
    // Aug → aug31.
    assert_eq!(
        kept,
        set(&["aug31", "oct19", "oct28", "oct29", "oct30b", "sep28"])
    );
}

#[tokio::test]
async fn the_newest_verified_backup_always_survives() {
    let mut p = policy();
    p.keep_last = Some(0);
    let (kept, deleted) = survivors(p, at(2026, 10, 30, 12)).await;
    assert_eq!(kept, set(&["oct30b"]));
    assert_eq!(deleted.len(), 12);
}

#[tokio::test]
async fn dry_run_explains_each_deletion_and_deletes_nothing() {
    let (sink, ids) = dated_backups().await;
    let mut p = policy();
    p.keep_last = Some(2);
    let report = retention::prune(&sink, "app", &p, at(2026, 10, 30, 12), true)
        .await
        .unwrap();
    assert!(report.dry_run && report.deleted.is_empty());
    let going: Vec<_> = report.decisions.iter().filter(|d| !d.keep).collect();
    assert_eq!(going.len(), 11);
    assert!(
        going
            .iter()
            .all(|d| d.reasons == vec!["no rule keeps it".to_string()])
    );
    let keep_reasons = &report.decisions[0].reasons;
    assert!(
        keep_reasons.iter().any(|r| r.starts_with("keep_last 2")),
        "{keep_reasons:?}"
    );
    assert_eq!(label_of(&ids, &report.decisions[0].backup_id), "oct30b");
    assert_eq!(
        backup_core::Catalog::new(sink)
            .list(None)
            .await
            .unwrap()
            .complete
            .len(),
        13
    );
}

#[tokio::test]
async fn no_rule_means_nothing_is_deleted() {
    let (kept, deleted) = survivors(policy(), at(2026, 10, 30, 12)).await;
    assert_eq!(kept.len(), 13);
    assert!(deleted.is_empty());
}

#[tokio::test]
async fn incomplete_backups_go_only_after_the_grace_period() {
    let (sink, _) = dated_backups().await;
    // Two orphaned data objects with no manifest (interrupted runs).
    for id in ["20261029T000000Z-dead", "20261030T115900Z-live"] {
        sink.put(
            &format!("app/backups/2026/10/30/{id}/data.sqlite.zst"),
            Bytes::from_static(b"partial"),
            backup_core::PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let mut p = policy();
    p.keep_last = Some(20);
    // Both were written "now" (the memory sink stamps real time); with the
    // clock a day and a half later, both are past the default 24h grace.
    let report = retention::prune(
        &sink,
        "app",
        &p,
        Utc::now() + chrono::Duration::hours(36),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        report
            .decisions
            .iter()
            .filter(|d| d.incomplete && !d.keep)
            .count(),
        2
    );
    let (sink2, _) = dated_backups().await;
    sink2
        .put(
            "app/backups/2026/10/30/20261030T115900Z-live/data.sqlite.zst",
            Bytes::from_static(b"x"),
            Default::default(),
        )
        .await
        .unwrap();
    let report = retention::prune(&sink2, "app", &p, Utc::now(), false)
        .await
        .unwrap();
    let inc: Vec<_> = report.decisions.iter().filter(|d| d.incomplete).collect();
    assert_eq!(inc.len(), 1);
    assert!(
        inc[0].keep,
        "a backup that may still be running was deleted"
    );
}

/// A sink whose listing fails.
#[derive(Debug)]
struct BrokenList(Arc<dyn Sink>);

#[async_trait::async_trait]
impl Sink for BrokenList {
    fn location(&self) -> &str {
        "broken://"
    }
    async fn check(&self) -> backup_core::Result<()> {
        Ok(())
    }
    async fn put(&self, k: &str, d: Bytes, o: backup_core::PutOptions) -> backup_core::Result<()> {
        self.0.put(k, d, o).await
    }
    async fn upload(&self, k: &str) -> backup_core::Result<Box<dyn backup_core::Upload>> {
        self.0.upload(k).await
    }
    async fn get(&self, k: &str) -> backup_core::Result<backup_core::sink::ByteStream> {
        self.0.get(k).await
    }
    async fn head(&self, k: &str) -> backup_core::Result<backup_core::ObjectInfo> {
        self.0.head(k).await
    }
    fn list_stream(
        &self,
        _p: &str,
    ) -> futures::stream::BoxStream<'_, backup_core::Result<backup_core::ObjectInfo>> {
        Box::pin(futures::stream::once(async {
            Err(backup_core::Error::Sink {
                location: "broken://".into(),
                message: "listing timed out".into(),
                retryable: true,
                source: None,
            })
        }))
    }
    async fn delete(&self, _k: &str) -> backup_core::Result<()> {
        panic!("a prune whose listing failed must delete nothing");
    }
    async fn list_pending(&self, _p: &str) -> backup_core::Result<Vec<backup_core::PendingUpload>> {
        Err(backup_core::Error::Sink {
            location: "broken://".into(),
            message: "listing timed out".into(),
            retryable: true,
            source: None,
        })
    }
    async fn abort_pending(&self, _u: &backup_core::PendingUpload) -> backup_core::Result<()> {
        panic!("a prune whose listing failed must remove nothing");
    }
}

#[tokio::test]
async fn a_failed_listing_deletes_nothing() {
    let (sink, _) = dated_backups().await;
    let broken: Arc<dyn Sink> = Arc::new(BrokenList(sink.clone()));
    let mut p = policy();
    p.keep_last = Some(1);
    let err = retention::prune(&broken, "app", &p, at(2026, 10, 30, 12), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Sink);
    assert_eq!(
        backup_core::Catalog::new(sink)
            .list(None)
            .await
            .unwrap()
            .complete
            .len(),
        13
    );
}
