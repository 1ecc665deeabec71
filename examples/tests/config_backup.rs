//! The `config-backup` example does what `lifeboat backup --config` does,
//! through `backup_core::ops` alone: the same backup, metrics file and
//! retention after the backup, and the same exit codes.

use std::process::Command;

#[test]
fn the_example_backs_up_writes_metrics_and_applies_retention_like_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    backup_core::source::sqlite::write_sample_database(&db, 2000).unwrap();
    let config = dir.path().join("lifeboat.toml");
    std::fs::write(
        &config,
        format!(
            "source = \"sqlite://{db}\"\nsink = \"file://{d}/backups\"\nlock_dir = \"{d}\"\n\
             [metrics]\ntextfile_dir = \"{d}/metrics\"\n\
             [retention]\nkeep_last = 1\nafter_backup = true\n\
             [retries]\nattempts = 2\ninterval = \"1s\"\n",
            db = db.display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("metrics")).unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_config-backup"))
            .arg(&config)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let second = run();
    assert!(second.status.success(), "{second:?}");
    let line = String::from_utf8_lossy(&second.stdout);
    assert!(line.starts_with("app "), "{line}");
    let id2 = line.split_whitespace().nth(1).unwrap().to_string();
    // Retention after the backup kept only the newest.
    let listing = backup_core::Catalog::new(std::sync::Arc::new(
        backup_core::LocalSink::new(dir.path().join("backups")).unwrap(),
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let l = rt.block_on(listing.list(None)).unwrap();
    let ids: Vec<_> = l
        .complete
        .iter()
        .map(|b| b.manifest.backup_id.clone())
        .collect();
    assert_eq!(
        ids,
        vec![id2],
        "retention after the backup keeps the newest only"
    );
    // The metrics textfile names the source and a success.
    let metrics = std::fs::read_dir(dir.path().join("metrics"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        metrics.contains("lifeboat_last_run_success{source=\"app\"} 1"),
        "{metrics}"
    );
    // A bad config exits 78 as the CLI does.
    std::fs::write(&config, "sink = 5\n").unwrap();
    let bad = run();
    assert_eq!(bad.status.code(), Some(78), "{bad:?}");
}
