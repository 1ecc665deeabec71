//! SQLite end to end on the local sink: live writers, corruption, restore
//! safety, size floor.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use backup_core::{BackupJob, ErrorKind, LocalSink, RestoreJob, Selector, SqliteSource, VerifyJob};
use lifeboat_tests::support::{all_files, sample_db};

/// A separate process that inserts rows in small transactions until killed.
fn start_writer(db: &Path, journal_mode: &str) -> Child {
    let script = format!(
        r#"
import sqlite3, sys, time
c = sqlite3.connect({db:?}, timeout=60, isolation_level=None)
c.execute("PRAGMA journal_mode={journal_mode}")
c.execute("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, body TEXT, n INTEGER)")
print("ready", flush=True)
i = 0
while True:
    c.execute("BEGIN IMMEDIATE")
    for _ in range(50):
        c.execute("INSERT INTO log (body, n) VALUES (?, ?)", ("written while the backup runs " * 4, i))
        i += 1
    c.execute("COMMIT")
"#,
        db = db.to_str().unwrap()
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the writer");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

async fn backups_during_writes(journal_mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    sample_db(&db, 20_000);
    if journal_mode != "wal" {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", journal_mode).unwrap();
    }
    let mut writer = start_writer(&db, journal_mode);
    let sink = Arc::new(LocalSink::new(dir.path().join("backups")).unwrap());
    let mut counts = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let report = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink.clone())
            .lock_dir(dir.path())
            .run()
            .await
            .expect("backup while another process writes");
        let log = report
            .manifest
            .fingerprint
            .tables
            .iter()
            .find(|t| t.name == "log")
            .map(|t| t.rows);
        counts.push((report.manifest.backup_id.clone(), log.unwrap_or(0)));
    }
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert!(
        counts.windows(2).all(|w| w[0].1 <= w[1].1) && counts[2].1 > counts[0].1,
        "the writer kept writing between backups: {counts:?}"
    );
    for (id, rows) in &counts {
        let target = dir.path().join(format!("restored-{id}.db"));
        let r = RestoreJob::new(sink.clone(), Arc::new(SqliteSource::new(&target)))
            .select(Selector::Id(id.clone()))
            .lock_dir(dir.path())
            .run()
            .await
            .expect("restore");
        let restored_log = r
            .outcome
            .fingerprint
            .tables
            .iter()
            .find(|t| t.name == "log")
            .unwrap();
        assert_eq!(restored_log.rows, *rows);
        let c = rusqlite::Connection::open(&target).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        // Every 50-row transaction is either wholly in the snapshot or not.
        assert_eq!(rows % 50, 0, "a torn transaction in the snapshot: {rows}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_another_process_writes_in_wal_mode() {
    backups_during_writes("wal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_another_process_writes_in_rollback_journal_mode() {
    backups_during_writes("delete").await;
}

fn stored_data_file(dir: &Path) -> std::path::PathBuf {
    all_files(dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("data.sqlite.zst"))
        .expect("a stored data file")
}

/// A sample database of `rows` rows in a temp dir, backed up once to the
/// local sink `<dir>/b`.
async fn backed_up(rows: usize) -> (tempfile::TempDir, Arc<LocalSink>, backup_core::BackupReport) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sample_db(&db, rows);
    let sink = Arc::new(LocalSink::new(dir.path().join("b")).unwrap());
    let report = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink.clone())
        .lock_dir(dir.path())
        .run()
        .await
        .unwrap();
    (dir, sink, report)
}

#[tokio::test]
async fn corrupted_backup_fails_verify_and_restore_leaves_target_untouched() {
    let (dir, sink, _) = backed_up(3_000).await;
    // Flip one byte in the middle of the stored object.
    let data = stored_data_file(&dir.path().join("b"));
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let err = VerifyJob::new(sink.clone()).run().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");

    // A forced restore over an existing database keeps the old one intact.
    let target = dir.path().join("live.db");
    sample_db(&target, 10);
    let before = std::fs::read(&target).unwrap();
    let err = RestoreJob::new(sink.clone(), Arc::new(SqliteSource::new(&target)))
        .force(true)
        .lock_dir(dir.path())
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Restore, "{err}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "old database changed"
    );
    let leftovers: Vec<_> = all_files(dir.path())
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.contains("lifeboat-restore") || s.contains("lifeboat-old")
        })
        .collect();
    assert!(leftovers.is_empty(), "staging files left: {leftovers:?}");
}

#[tokio::test]
async fn restore_refuses_existing_target_and_force_replaces_it_with_side_files() {
    let (dir, sink, _) = backed_up(1_000).await;
    let target = dir.path().join("target.db");
    sample_db(&target, 7);
    // A stale WAL beside the old database must not be applied to the new one.
    std::fs::write(dir.path().join("target.db-wal"), b"stale wal bytes").unwrap();
    let job =
        || RestoreJob::new(sink.clone(), Arc::new(SqliteSource::new(&target))).lock_dir(dir.path());
    let err = job().run().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Restore);
    assert_eq!(err.exit_code(), 5);
    assert!(err.to_string().contains("--force"), "{err}");

    let r = job().force(true).run().await.unwrap();
    assert!(r.outcome.replaced);
    assert!(
        !dir.path().join("target.db-wal").exists(),
        "old WAL kept beside the new db"
    );
    let c = rusqlite::Connection::open(&target).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1_000);
    let aside: Vec<_> = all_files(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("lifeboat-old"))
        .collect();
    assert!(
        aside.is_empty(),
        "old files not removed after success: {aside:?}"
    );
}

#[tokio::test]
async fn dump_below_the_size_floor_fails_and_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tiny.db");
    sample_db(&db, 10);
    let root = dir.path().join("b");
    let sink = Arc::new(LocalSink::new(&root).unwrap());
    let err = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink)
        .min_size(10 * 1024 * 1024)
        .lock_dir(dir.path())
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(err.to_string().contains("min-size"), "{err}");
    assert!(
        all_files(&root).is_empty(),
        "left behind: {:?}",
        all_files(&root)
    );
}

#[tokio::test]
async fn missing_database_is_a_source_error_and_is_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("absent.db");
    let root = dir.path().join("b");
    let err = BackupJob::new(
        Arc::new(SqliteSource::new(&db)),
        Arc::new(LocalSink::new(&root).unwrap()),
    )
    .lock_dir(dir.path())
    .run()
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Source);
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!db.exists(), "an empty database was created");
    assert!(all_files(&root).is_empty());
}

#[tokio::test]
async fn backup_survives_a_database_larger_than_the_channel_and_part_size() {
    // 30 MB of rows: several 8 MiB parts, many channel round trips.
    let (_dir, sink, report) = backed_up(300_000).await;
    assert!(report.manifest.artifact.raw_size > 20 * 1024 * 1024);
    assert!(report.manifest.artifact.stored_size < report.manifest.artifact.raw_size / 3);
    VerifyJob::new(sink).run().await.unwrap();
}

/// A local sink whose uploads are slow, to hold a backup in its streaming
/// phase while the test writes to the live database.
#[derive(Debug)]
struct SlowSink(LocalSink);

struct SlowUpload(Box<dyn backup_core::Upload>);

#[async_trait::async_trait]
impl backup_core::Upload for SlowUpload {
    async fn write(&mut self, data: bytes::Bytes) -> backup_core::Result<()> {
        tokio::time::sleep(Duration::from_millis(60)).await;
        self.0.write(data).await
    }
    async fn complete(self: Box<Self>) -> backup_core::Result<()> {
        self.0.complete().await
    }
    async fn abort(self: Box<Self>) -> backup_core::Result<()> {
        self.0.abort().await
    }
}

#[async_trait::async_trait]
impl backup_core::Sink for SlowSink {
    fn location(&self) -> &str {
        self.0.location()
    }
    async fn check(&self) -> backup_core::Result<()> {
        self.0.check().await
    }
    async fn put(
        &self,
        k: &str,
        d: bytes::Bytes,
        o: backup_core::PutOptions,
    ) -> backup_core::Result<()> {
        self.0.put(k, d, o).await
    }
    async fn upload(&self, k: &str) -> backup_core::Result<Box<dyn backup_core::Upload>> {
        Ok(Box::new(SlowUpload(self.0.upload(k).await?)))
    }
    async fn get(&self, k: &str) -> backup_core::Result<backup_core::sink::ByteStream> {
        self.0.get(k).await
    }
    async fn head(&self, k: &str) -> backup_core::Result<backup_core::ObjectInfo> {
        self.0.head(k).await
    }
    fn list_stream(
        &self,
        p: &str,
    ) -> futures::stream::BoxStream<'_, backup_core::Result<backup_core::ObjectInfo>> {
        self.0.list_stream(p)
    }
    async fn delete(&self, k: &str) -> backup_core::Result<()> {
        self.0.delete(k).await
    }
    async fn list_pending(&self, p: &str) -> backup_core::Result<Vec<backup_core::PendingUpload>> {
        self.0.list_pending(p).await
    }
    async fn abort_pending(&self, u: &backup_core::PendingUpload) -> backup_core::Result<()> {
        self.0.abort_pending(u).await
    }
}

/// Signals the test when the snapshot is taken and streaming begins, then
/// slows the reading of the snapshot down (progress is reported from the
/// compressor's thread after each 1 MiB read).
struct OnUpload(std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>);

impl backup_core::Progress for OnUpload {
    fn start(&self, phase: backup_core::Phase, _total: Option<u64>) {
        if phase == backup_core::Phase::Upload
            && let Some(tx) = self.0.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    }
    fn advance(&self, _bytes: u64) {
        std::thread::sleep(Duration::from_millis(120));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_checkpoints_during_a_direct_read_do_not_reach_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    sample_db(&db, 60_000);
    let sink = Arc::new(SlowSink(LocalSink::new(dir.path().join("b")).unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    let writer_db = db.clone();
    let writer = std::thread::spawn(move || {
        rx.recv().unwrap();
        let c = rusqlite::Connection::open(&writer_db).unwrap();
        c.busy_timeout(Duration::from_secs(30)).unwrap();
        let mut blocked = 0;
        for round in 0..20 {
            c.execute_batch(&format!(
                "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
                 INSERT INTO notes (body) SELECT 'late ' || i FROM n; \
                 UPDATE items SET name = 'changed {round}' WHERE id % 7 = 0; COMMIT;"
            ))
            .unwrap();
            // The checkpointer must not be able to write into the file
            // being read: a passive checkpoint backfills nothing meanwhile.
            let (_, log, done): (i64, i64, i64) = c
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
            if log > 0 && done < log {
                blocked += 1;
            }
        }
        blocked
    });
    let report = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink.clone())
        .lock_dir(dir.path())
        .progress(Arc::new(OnUpload(std::sync::Mutex::new(Some(tx)))))
        .run()
        .await
        .expect("backup");
    let blocked = writer.join().unwrap();
    assert!(blocked > 0, "no checkpoint ran while the snapshot was held");
    let m = &report.manifest;
    assert_eq!(m.fingerprint.details["snapshot_method"], "direct-read");
    assert_eq!(
        m.fingerprint
            .tables
            .iter()
            .map(|t| (t.name.as_str(), t.rows))
            .collect::<Vec<_>>(),
        vec![("items", 60_000), ("notes", 6_000)],
        "the snapshot is the database before the writer started"
    );
    // Restore proves integrity_check and the counts; the content is the old one.
    let target = dir.path().join("restored.db");
    RestoreJob::new(sink, Arc::new(SqliteSource::new(&target)))
        .lock_dir(dir.path())
        .run()
        .await
        .expect("restore of a direct-read snapshot");
    let c = rusqlite::Connection::open(&target).unwrap();
    let changed: i64 = c
        .query_row(
            "SELECT count(*) FROM items WHERE name LIKE 'changed%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(changed, 0, "a write made after the snapshot leaked into it");
    let live: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(live, 6_000 + 20 * 500, "the writer did write meanwhile");
}

#[tokio::test]
async fn rollback_journal_databases_are_copied_with_the_backup_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("classic.db");
    sample_db(&db, 100);
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "journal_mode", "delete")
        .unwrap();
    let sink = Arc::new(LocalSink::new(dir.path().join("b")).unwrap());
    let report = BackupJob::new(Arc::new(SqliteSource::new(&db)), sink)
        .lock_dir(dir.path())
        .run()
        .await
        .unwrap();
    assert_eq!(
        report.manifest.fingerprint.details["snapshot_method"],
        "backup-api"
    );
    assert_eq!(
        report.manifest.fingerprint.details["journal_mode"],
        "delete"
    );
}

/// A SQLite backup's manifest reads back typed (`SourceDetails::Sqlite`)
/// with what its snapshot recorded, and its manual restore steps are the
/// engine-free ones then SQLite's own, numbered in order.
#[tokio::test]
async fn a_sqlite_manifest_reads_typed_details_and_numbered_manual_steps() {
    let (_dir, _sink, report) = backed_up(500).await;
    let backup_core::SourceDetails::Sqlite(d) = backup_core::SourceDetails::of(&report.manifest)
    else {
        panic!(
            "not SQLite details: {:?}",
            report.manifest.fingerprint.details
        )
    };
    assert_eq!(d.journal_mode.as_deref(), Some("wal"));
    assert!(d.snapshot_method.is_some());
    assert!(
        d.page_size.unwrap() >= 512 && d.page_count.unwrap() > 0,
        "{d:?}"
    );
    let steps = report.manifest.storage.expect("storage").manual_restore;
    assert_eq!(steps.len(), 4, "{steps:?}");
    for (i, s) in steps.iter().enumerate() {
        assert!(s.starts_with(&format!("{}. ", i + 1)), "{steps:?}");
    }
    assert!(steps[0].starts_with("1. Fetch the data: cp "), "{steps:?}");
    assert!(steps[3].contains("PRAGMA integrity_check"), "{steps:?}");
}
