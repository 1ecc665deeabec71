//! The restore drill runs before the commit: a drill that fails commits the
//! backup as failed (never verified), a drill that cannot run commits it as
//! checked, and a drill that passes marks it drilled. Real SQLite databases
//! on a local sink; the drill is the real SQLite drill, or one that cannot
//! set up its target.

use std::sync::Arc;

use async_trait::async_trait;
use backup_core::manifest::Assurance;
use backup_core::{BackupJob, Catalog, LocalSink, SqliteSource, Verdict};
use backup_core::{SqliteDrill, Verifier, VerifyInput};
use lifeboat_tests::support::sample_db;

/// A drill whose target cannot be set up (no server, no room).
#[derive(Debug)]
struct CannotRun;

#[async_trait]
impl Verifier for CannotRun {
    fn name(&self) -> &str {
        "pg-drill"
    }
    fn needs_local_copy(&self) -> bool {
        true
    }
    async fn verify(&self, _: &VerifyInput<'_>) -> backup_core::Result<Verdict> {
        Err(backup_core::Error::Config {
            origin: "restore drill".into(),
            message: "the restore drill could not run: no server".into(),
        })
    }
}

/// A drill that restores and finds the backup does not load.
#[derive(Debug)]
struct FailsToLoad;

#[async_trait]
impl Verifier for FailsToLoad {
    fn name(&self) -> &str {
        "pg-drill"
    }
    fn needs_local_copy(&self) -> bool {
        true
    }
    async fn verify(&self, input: &VerifyInput<'_>) -> backup_core::Result<Verdict> {
        assert!(input.local_copy.is_some_and(|p| p.exists()));
        // Before the commit: the manifest is not written yet.
        let manifest = input
            .manifest
            .artifact
            .key
            .rsplit_once('/')
            .map(|(dir, _)| format!("{dir}/manifest.json"))
            .unwrap();
        assert!(
            matches!(
                input.sink.head(&manifest).await,
                Err(backup_core::Error::NotFound { .. })
            ),
            "the drill runs before the commit"
        );
        Ok(Verdict {
            verifier: "pg-drill".into(),
            passed: false,
            detail: "restore drill failed: relation does not exist".into(),
            duration_ms: 1,
            checked_at: chrono::Utc::now(),
        })
    }
}

async fn backup_with(
    drill: Option<Arc<dyn Verifier>>,
) -> (tempfile::TempDir, backup_core::BackupReport) {
    let dir = tempfile::tempdir().unwrap();
    sample_db(&dir.path().join("app.db"), 2000);
    let source = Arc::new(SqliteSource::new(dir.path().join("app.db")));
    let sink = Arc::new(LocalSink::new(dir.path().join("b")).unwrap());
    let mut job = BackupJob::new(source, sink)
        .lock_dir(dir.path())
        .temp_dir(dir.path());
    if let Some(d) = drill {
        job = job.drill(d);
    }
    let report = job.run().await.expect("the backup is committed");
    (dir, report)
}

async fn listed(dir: &tempfile::TempDir) -> Vec<backup_core::Manifest> {
    let sink = Arc::new(LocalSink::new(dir.path().join("b")).unwrap());
    Catalog::new(sink)
        .list(None)
        .await
        .unwrap()
        .complete
        .into_iter()
        .map(|b| b.manifest)
        .collect()
}

#[tokio::test]
async fn a_passing_drill_marks_the_backup_drilled() {
    let (dir, report) = backup_with(Some(Arc::new(SqliteDrill))).await;
    assert!(report.drill_error.is_none());
    let m = &listed(&dir).await[0];
    assert_eq!(m.assurance(), Assurance::Drilled);
    let v = m
        .verdicts
        .iter()
        .find(|v| v.verifier == "sqlite-drill")
        .unwrap();
    assert!(
        v.passed && v.detail.contains("restore drill OK"),
        "{}",
        v.detail
    );
}

#[tokio::test]
async fn a_failed_drill_commits_the_backup_as_failed_never_verified() {
    let (dir, report) = backup_with(Some(Arc::new(FailsToLoad))).await;
    assert!(!report.manifest.verified());
    let all = listed(&dir).await;
    assert_eq!(all.len(), 1, "committed: its data matches the snapshot");
    assert_eq!(all[0].assurance(), Assurance::Failed);
    assert!(!all[0].verified());
}

#[tokio::test]
async fn a_drill_that_cannot_run_commits_the_backup_as_checked() {
    let (dir, report) = backup_with(Some(Arc::new(CannotRun))).await;
    assert!(
        report
            .drill_error
            .as_deref()
            .is_some_and(|e| e.contains("no server")),
        "{:?}",
        report.drill_error
    );
    let all = listed(&dir).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].assurance(), Assurance::Checked);
    assert!(all[0].verified());
    assert!(!all[0].verdicts.iter().any(|v| v.verifier == "pg-drill"));
}

#[tokio::test]
async fn without_a_drill_a_backup_is_checked() {
    let (dir, report) = backup_with(None).await;
    assert!(report.drill_error.is_none());
    assert_eq!(listed(&dir).await[0].assurance(), Assurance::Checked);
}

/// A drill named like a check the source ran on its snapshot (SQLite's
/// `sqlite-integrity`, before compression) is still run on the stored
/// copy: only a check made on the stored stream itself replaces it.
#[tokio::test]
async fn a_drill_named_like_the_snapshot_check_still_reads_the_stored_copy() {
    #[derive(Debug)]
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Verifier for Counting {
        fn name(&self) -> &str {
            "sqlite-integrity"
        }
        fn needs_local_copy(&self) -> bool {
            true
        }
        async fn verify(&self, input: &VerifyInput<'_>) -> backup_core::Result<Verdict> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            backup_core::SqliteIntegrity.verify(input).await
        }
    }

    let drill = Arc::new(Counting(Default::default()));
    let (dir, _) = backup_with(Some(drill.clone())).await;
    assert_eq!(drill.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    let m = &listed(&dir).await[0];
    let checks = m
        .verdicts
        .iter()
        .filter(|v| v.verifier == "sqlite-integrity" && v.passed)
        .count();
    assert_eq!(checks, 2, "{:?}", m.verdicts);
}
