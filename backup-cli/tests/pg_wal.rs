//! WAL archiving on real clusters: `lifeboat wal push` as the server's
//! `archive_command`, `lifeboat wal fetch` as a recovering server's
//! `restore_command`.

mod common;

use common::{lifeboat, run};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use lifeboat_tests::pg::{PgCluster, chown_to_server_user, default_bin, other_major_bin};
use lifeboat_tests::support::{age_keygen, all_files, fake_segment};

/// A directory the server user can write (archive_command runs as it).
fn server_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_to_server_user(d.path());
    d
}

/// Hand what lifeboat wrote as root to the server's user (`chown -R`): a
/// restored data directory, or an archive its `wal fetch` reads.
fn give_to_server(paths: &[&Path]) {
    let status = std::process::Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .args(paths)
        .status()
        .unwrap();
    assert!(status.success());
}

fn archive_conf(sink: &str, name: &str) -> String {
    format!(
        "archive_mode = on\narchive_command = '{} wal push %p --to {sink} --name {name}'\n",
        env!("CARGO_BIN_EXE_lifeboat")
    )
}

fn restore_conf(sink: &str, name: &str) -> String {
    format!(
        "restore_command = '{} wal fetch %f %p --from {sink} --name {name}'\n",
        env!("CARGO_BIN_EXE_lifeboat")
    )
}

/// Switch to a new segment and wait until the server has archived the one
/// it left (or failed to, then panic with the log).
fn switch_and_wait(c: &PgCluster) -> String {
    let seg = c.psql(
        "postgres",
        // A WAL record first: a switch out of an empty segment does nothing.
        "SELECT pg_walfile_name(pg_current_wal_insert_lsn()) FROM (SELECT pg_logical_emit_message(false, 'test', 'switch')) m; SELECT pg_switch_wal();",
    );
    let seg = seg.lines().next().unwrap().trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = c.psql(
            "postgres",
            &format!("SELECT coalesce(last_archived_wal >= '{seg}', false) FROM pg_stat_archiver"),
        );
        if done.trim() == "t" {
            return seg;
        }
        assert!(
            Instant::now() < deadline,
            "{seg} was not archived in 60 s\n{}",
            c.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn archived_names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = all_files(root)
        .iter()
        .filter(|p| p.to_string_lossy().contains("/wal/"))
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn wait_promoted(c: &PgCluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.psql("postgres", "SELECT pg_is_in_recovery()").trim() != "f" {
        assert!(
            Instant::now() < deadline,
            "recovery did not end in 60 s\n{}",
            c.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server archives through `wal push`; a base backup with no WAL of its
/// own recovers through `wal fetch` to a restore point: rows before it are
/// there, rows after it are not. Re-pushing a file is accepted, a changed
/// one or another cluster's is refused, and fetching a missing file is
/// exit 1.
#[test]
fn archived_wal_recovers_a_base_backup_to_a_restore_point() {
    let Some(bin) = default_bin() else { return };
    archived_wal_recovers(&bin);
}

/// The same on PostgreSQL 17 (another WAL page magic, 0xD116).
#[test]
fn archived_wal_recovers_a_base_backup_to_a_restore_point_on_17() {
    let Some(bin) = other_major_bin() else { return };
    archived_wal_recovers(&bin);
}

fn archived_wal_recovers(bin: &Path) {
    let bin = bin.to_path_buf();
    let dir = server_dir();
    let root = dir.path().join("archive");
    let sink = format!("file://{}", root.display());
    let primary = PgCluster::start_with_conf(&bin, &archive_conf(&sink, "app"));
    primary.psql(
        "postgres",
        "CREATE TABLE marker (id int PRIMARY KEY); INSERT INTO marker VALUES (1);",
    );
    // seed 001's "verify within ~60 s" step as one command.
    let work0 = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lifeboat(work0.path()).args([
        "wal",
        "setup",
        "--check",
        &primary.url("postgres"),
        "--to",
        &sink,
        "--name",
        "app",
        "--json",
    ]));
    // archive_timeout is 0 on the test cluster: the one problem named.
    assert_eq!(code, 6, "{out}{err}");
    let setup: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(setup["archived_in_ms"].is_u64(), "{setup}");
    let problems = setup["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{setup}");
    assert!(
        problems[0].as_str().unwrap().contains("archive_timeout"),
        "{setup}"
    );
    let mut restored = PgCluster::base_backup_of(&primary, false);
    // A few segments to replay: wal fetch reads ahead.
    for _ in 0..3 {
        switch_and_wait(&primary);
    }
    primary.psql(
        "postgres",
        "INSERT INTO marker VALUES (2); SELECT pg_create_restore_point('before_3'); INSERT INTO marker VALUES (3);",
    );
    let last = switch_and_wait(&primary);
    assert_eq!(
        primary
            .psql("postgres", "SELECT failed_count FROM pg_stat_archiver")
            .trim(),
        "0",
        "{}",
        primary.log_tail(30)
    );
    let names = archived_names(&root);
    assert!(names.contains(&format!("{last}.zst")), "{names:?}");
    assert!(names.contains(&"archive.json".to_string()), "{names:?}");
    // Objects are created 0600 by the server user.
    for p in all_files(&root) {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }

    restored
        .start_recovery(&format!(
            "{}recovery_target_name = 'before_3'\nrecovery_target_action = 'promote'\n",
            restore_conf(&sink, "app")
        ))
        .unwrap_or_else(|e| panic!("recovery failed: {e}"));
    wait_promoted(&restored);
    assert_eq!(
        restored.psql(
            "postgres",
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM marker"
        ),
        "1,2"
    );
    // Some segments were served from what an earlier call fetched ahead.
    let log = std::fs::read_to_string(restored.log_path()).unwrap();
    assert!(log.contains("prefetched=true"), "{log}");

    // By hand: fetch an archived segment, push it again (accepted, nothing
    // written), then a changed copy (refused, the stored one unchanged).
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join(&last);
    let (code, out, err) = run(lifeboat(work.path()).args([
        "wal",
        "fetch",
        &last,
        copy.to_str().unwrap(),
        "--from",
        &sink,
        "--name",
        "app",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let fetched: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fetched["size"], 16 << 20);
    let (code, out, err) = run(lifeboat(work.path()).args([
        "wal",
        "push",
        copy.to_str().unwrap(),
        "--to",
        &sink,
        "--name",
        "app",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let pushed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pushed["already_archived"], true, "{out}");
    assert_eq!(pushed["sha256"], fetched["sha256"]);

    let key = root.join(format!("app/wal/{}/{last}.zst", &last[..8]));
    let stored_before = std::fs::read(&key).unwrap();
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[1 << 20] ^= 0xff;
    std::fs::write(&copy, &bytes).unwrap();
    let (code, _, err) = run(lifeboat(work.path()).args([
        "wal",
        "push",
        copy.to_str().unwrap(),
        "--to",
        &sink,
        "--name",
        "app",
    ]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("never overwritten"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), stored_before);

    // Not in the archive: exit 1, PostgreSQL's "no such file".
    let (code, _, err) = run(lifeboat(work.path()).args([
        "wal",
        "fetch",
        "00000009.history",
        work.path().join("h").to_str().unwrap(),
        "--from",
        &sink,
        "--name",
        "app",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(!work.path().join("h").exists());

    // Another cluster archiving under the same name: every push refused,
    // nothing of it stored.
    let before = archived_names(&root);
    let other = PgCluster::start_with_conf(&bin, &archive_conf(&sink, "app"));
    other.psql(
        "postgres",
        "CREATE TABLE t (x int); SELECT pg_switch_wal();",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while other
        .psql("postgres", "SELECT failed_count FROM pg_stat_archiver")
        .trim()
        == "0"
    {
        assert!(Instant::now() < deadline, "{}", other.log_tail(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(other.log_path()).unwrap();
    assert!(log.contains("system identifier"), "{log}");
    assert_eq!(
        other
            .psql(
                "postgres",
                "SELECT last_archived_wal IS NULL FROM pg_stat_archiver"
            )
            .trim(),
        "t"
    );
    let after = archived_names(&root);
    // The first cluster's own files are all still there, unchanged in number
    // except for what the first cluster archived meanwhile.
    assert!(before.iter().all(|n| after.contains(n)));
    assert_eq!(std::fs::read(&key).unwrap(), stored_before);
}

/// A sink that fails during recovery stops it (exit 200, above 125:
/// PostgreSQL's "fatal"), instead of being taken for the end of the archive
/// and promoting early without the rows the archive holds.
#[test]
fn a_failing_sink_stops_recovery_instead_of_promoting_early() {
    let Some(bin) = default_bin() else { return };
    let dir = server_dir();
    let root = dir.path().join("archive");
    let sink = format!("file://{}", root.display());
    let primary = PgCluster::start_with_conf(&bin, &archive_conf(&sink, "app"));
    primary.psql(
        "postgres",
        "CREATE TABLE marker (id int); INSERT INTO marker VALUES (1);",
    );
    // With its own WAL: it reaches a consistent state without the archive,
    // so only the later segments come from it.
    let mut restored = PgCluster::base_backup_of(&primary, true);
    primary.psql(
        "postgres",
        "INSERT INTO marker VALUES (2); SELECT pg_create_restore_point('after_2');",
    );
    switch_and_wait(&primary);
    drop(primary);

    // The archive cannot be read by the server user now.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o000)).unwrap();
    let started = restored.start_recovery(&format!(
        "{}recovery_target_name = 'after_2'\nrecovery_target_action = 'promote'\n",
        restore_conf(&sink, "app")
    ));
    // pg_ctl may see the server up (consistent) before the fatal fetch, or
    // not: either way it must go down without promoting.
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = std::fs::read_to_string(restored.log_path()).unwrap_or_default();
        if log.contains("exit code 200") && restored.postmaster_pid().is_none() {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "recovery did not stop (started: {:?})\n{log}",
            started.is_ok()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!log.contains("selected new timeline ID"), "{log}");
    assert!(!log.contains("archive recovery complete"), "{log}");
}

/// `backup --physical` takes a base backup (proven with pg_verifybackup
/// before the commit); `restore --to pgdata://… --target-time T` picks it,
/// writes the data directory with a restore_command through `wal fetch`,
/// and the server recovers to T: the row before T is there, the one after
/// is not. Targets outside the window and a non-empty directory are
/// refused, naming why.
#[test]
fn a_physical_backup_and_the_archive_restore_to_a_point_in_time() {
    let Some(bin) = default_bin() else { return };
    let dir = server_dir();
    let root = dir.path().join("archive");
    let sink = format!("file://{}", root.display());
    let primary = PgCluster::start_with_conf(&bin, &archive_conf(&sink, "app"));
    primary.psql(
        "postgres",
        "CREATE TABLE marker (id int PRIMARY KEY); INSERT INTO marker VALUES (1);",
    );
    // The server creates the archive's directories as its own user first.
    switch_and_wait(&primary);
    let before_backup = primary.psql("postgres", "SELECT now()");
    std::thread::sleep(Duration::from_millis(1100));

    let work = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lifeboat(work.path()).args([
        "backup",
        &primary.url("postgres"),
        "--physical",
        "--to",
        &sink,
        "--name",
        "app",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &out[0]["manifest"];
    assert_eq!(m["source"]["kind"], "postgres-physical", "{m}");
    // Server-compressed and not encrypted: checked as it streamed to the
    // sink, with the read-back SHA-256 proving the sink holds those
    // bytes, and not decompressed a second time.
    let check = manifest_check_verdict(m);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .starts_with("checked as it was stored: "),
        "{check}"
    );
    assert!(err.contains("no second read"), "{err}");
    assert!(m["fingerprint"]["details"]["stop_lsn"].is_string(), "{m}");
    // A role pg_basebackup cannot use: its own message, not the relay's
    // view of a stream that never came.
    primary.psql("postgres", "CREATE ROLE no_repl LOGIN");
    let (code, _, err) = run(lifeboat(work.path()).args([
        "backup",
        &primary.url_as("no_repl", "postgres"),
        "--physical",
        "--to",
        &sink,
        "--name",
        "app",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("pg_basebackup exited with status 1")
            && err.contains("replication")
            && !err.contains("base.tar.zst"),
        "{err}"
    );
    // PostgreSQL 15 compressed it on the server: backup_manifest follows
    // the server's end-of-archive blocks, which plain `tar -t` stops at
    // and `--ignore-zeros` reads past (the manual restore says so).
    assert!(err.contains("compress_on=\"server\""), "{err}");
    assert!(
        !tar_listing(&root, false)
            .lines()
            .any(|l| l == "backup_manifest")
    );
    let listing = tar_listing(&root, true);
    assert!(listing.lines().any(|l| l == "backup_manifest"), "{listing}");
    assert!(listing.lines().any(|l| l == "PG_VERSION"), "{listing}");

    primary.psql("postgres", "INSERT INTO marker VALUES (2);");
    std::thread::sleep(Duration::from_millis(1100));
    let target = primary.psql("postgres", "SELECT now()");
    std::thread::sleep(Duration::from_millis(1100));
    primary.psql("postgres", "INSERT INTO marker VALUES (3);");
    switch_and_wait(&primary);

    // Verify again later, from the sink.
    let (code, _, err) =
        run(lifeboat(work.path()).args(["verify", "--from", &sink, "--source", "app", "--latest"]));
    assert_eq!(code, 0, "{err}");
    a_changed_file_fails_the_manifest_check(&root, work.path());

    // Outside the window: refused, naming the bounds.
    let restored = PgCluster::empty(&bin);
    let data = restored.data_dir();
    let to = format!("pgdata://{}", data.display());
    let (code, _, err) = run(lifeboat(work.path()).args([
        "restore",
        "--from",
        &sink,
        "--source",
        "app",
        "--to",
        &to,
        "--target-time",
        &before_backup,
    ]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("oldest recoverable point"), "{err}");
    let (code, _, err) = run(lifeboat(work.path()).args([
        "restore",
        "--from",
        &sink,
        "--source",
        "app",
        "--to",
        &to,
        "--target-time",
        "2999-01-01 00:00:00+00",
    ]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("after the newest archived WAL"), "{err}");
    assert!(!data.exists());
    // A time without a zone is a usage error.
    let (code, _, err) = run(lifeboat(work.path()).args([
        "restore",
        "--from",
        &sink,
        "--source",
        "app",
        "--to",
        &to,
        "--target-time",
        "2026-12-03 05:00:00",
    ]));
    assert_eq!(code, 64, "{err}");

    // --port is the port of the server --start starts.
    let (code, _, err) = run(lifeboat(work.path()).args([
        "restore", "--from", &sink, "--source", "app", "--to", &to, "--port", "5999",
    ]));
    assert_eq!(code, 64, "{err}");
    // --start: lifeboat starts the server (as the postgres user: the tests
    // run as root), waits until recovery reaches the target and reports
    // the point reached. The copied postgresql.conf listens on 127.0.0.1;
    // --port gives it this cluster's port.
    let mut restored = restored;
    let port = restored.pick_port().to_string();
    let (code, out, err) = run(lifeboat(work.path()).args([
        "restore",
        "--from",
        &sink,
        "--source",
        "app",
        "--to",
        &to,
        "--target-time",
        &target,
        "--target-action",
        "promote",
        "--start",
        "--port",
        &port,
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["backup_id"], m["backup_id"]);
    let auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("wal fetch %f %p"), "{auto}");
    let started = &out["started"];
    assert_eq!(started["state"], "promoted", "{out}");
    assert!(
        started["point_reached"]
            .as_str()
            .unwrap()
            .starts_with("recovery stopping before commit"),
        "{out}"
    );
    assert_eq!(started["timeline"], 2, "{out}");
    assert_eq!(
        restored
            .try_psql_tcp(
                "postgres",
                None,
                "postgres",
                "SELECT string_agg(id::text, ',' ORDER BY id) FROM marker"
            )
            .unwrap(),
        "1,2"
    );
    // The copy runs beside its live original with archive_mode off: its
    // timeline 2 is not in the original's archive, where the later drill
    // from a newer base backup would otherwise have to follow it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !archived_names(&root)
            .iter()
            .any(|n| n.starts_with("00000002")),
        "{:?}",
        archived_names(&root)
    );

    // status sees the archive: fresh, no gaps, healthy.
    let (code, out, err) = run(lifeboat(work.path()).args([
        "status", "--from", &sink, "--source", "app", "--format", "json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    let wal = &st[0]["wal"];
    assert!(wal["files"].as_u64().unwrap() >= 3, "{st}");
    assert_eq!(wal["gaps"], serde_json::json!([]), "{st}");

    // Retention: a second base backup, then keep only it. The dry run
    // names every WAL file before its start, and nothing after; the prune
    // deletes exactly those, oldest first, and the archive has no gap
    // from the kept backup on.
    let (code, _, err) = run(lifeboat(work.path()).args([
        "backup",
        &primary.url("postgres"),
        "--physical",
        "--to",
        &sink,
        "--name",
        "app",
    ]));
    assert_eq!(code, 0, "{err}");
    switch_and_wait(&primary);
    // keep_pitr: a window older than the archive keeps the oldest base
    // backup too (and so all WAL from its start).
    let (code, out, err) = run(lifeboat(work.path()).args([
        "prune",
        "--from",
        &sink,
        "--source",
        "app",
        "--keep-pitr",
        "1h",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let pitr: serde_json::Value = serde_json::from_str(&out).unwrap();
    let decisions = pitr["decisions"].as_array().unwrap();
    assert!(decisions.iter().all(|d| d["keep"] == true), "{pitr}");
    assert!(
        decisions
            .iter()
            .any(|d| d["reasons"].to_string().contains("keep_pitr")),
        "{pitr}"
    );
    // WAL goes only from before the oldest kept base backup's start.
    let oldest = decisions.last().unwrap()["backup_id"].as_str().unwrap();
    assert!(
        pitr["wal"]["reason"].as_str().unwrap().contains(oldest),
        "{pitr}"
    );
    let (code, out, err) = run(lifeboat(work.path()).args([
        "prune",
        "--from",
        &sink,
        "--source",
        "app",
        "--keep-last",
        "1",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keep_from = plan["wal"]["keep_from"].as_str().unwrap().to_string();
    let going: Vec<String> = plan["wal"]["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap().to_string())
        .collect();
    assert!(!going.is_empty(), "{plan}");
    for k in &going {
        let file = k.rsplit('/').next().unwrap();
        assert!(file[8..24] < *keep_from, "{file} is not before {keep_from}");
    }
    let before = archived_names(&root);
    let (code, _, err) = run(lifeboat(work.path()).args([
        "prune",
        "--from",
        &sink,
        "--source",
        "app",
        "--keep-last",
        "1",
    ]));
    assert_eq!(code, 0, "{err}");
    let after = archived_names(&root);
    assert_eq!(
        before.len() - after.len(),
        going.len(),
        "{before:?}\n{after:?}"
    );
    for name in &after {
        if name.len() >= 24 && name.chars().take(24).all(|c| c.is_ascii_hexdigit()) {
            assert!(name[8..24] >= *keep_from, "{name} kept before {keep_from}");
        }
    }
    let (code, out, err) = run(lifeboat(work.path()).args([
        "status", "--from", &sink, "--source", "app", "--format", "json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st[0]["wal"]["gaps"], serde_json::json!([]), "{st}");
    assert_eq!(st[0]["backups"], 1, "{st}");
    // Connected, status reads the server's pg_stat_archiver too.
    let (code, out, err) = run(lifeboat(work.path()).args([
        "status",
        "--from",
        &sink,
        "--source",
        "app",
        "--server",
        &primary.url("postgres"),
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        st[0]["wal"]["archiver"]["archived_count"].as_i64().unwrap() > 0,
        "{st}"
    );

    // A point-in-time drill at a random time of the window: restored into
    // a throwaway cluster through wal fetch, recovered, checked, recorded.
    primary.psql("postgres", "INSERT INTO marker VALUES (4);");
    switch_and_wait(&primary);
    let (code, out, err) = run(lifeboat(work.path()).args([
        "drill", "--pitr", "--from", &sink, "--source", "app", "--json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    let v = &d["verdicts"][0];
    assert_eq!(v["verifier"], "pitr-drill", "{d}");
    assert_eq!(v["passed"], true, "{d}");
    assert!(
        v["detail"].as_str().unwrap().contains("recovery stopping"),
        "{d}"
    );
    assert!(v["detail"].as_str().unwrap().contains("pg_amcheck"), "{d}");
    let records: Vec<_> = all_files(&root)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("/drills/") && p.to_string_lossy().contains("-pitr-")
        })
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records[0]).unwrap()).unwrap();
    assert_eq!(rec["passed"], true, "{rec}");
    assert!(rec["rto_ms"].as_u64().unwrap() > 0, "{rec}");
    // A time outside the window is refused before anything is restored.
    let (code, _, err) = run(lifeboat(work.path()).args([
        "drill",
        "--pitr",
        "--from",
        &sink,
        "--source",
        "app",
        "--target-time",
        "2999-01-01 00:00:00+00",
    ]));
    assert_eq!(code, 5, "{err}");

    // A data directory is never overwritten.
    let (code, _, err) =
        run(lifeboat(work.path())
            .args(["restore", "--from", &sink, "--source", "app", "--to", &to]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not empty"), "{err}");

    // archive_command starts failing: status, connected, says so (exit 6),
    // and so does the Prometheus gauge the WalArchiveFailing alert reads.
    primary.psql(
        "postgres",
        "ALTER SYSTEM SET archive_command = 'false'; SELECT pg_reload_conf();",
    );
    std::thread::sleep(Duration::from_millis(300));
    primary.psql(
        "postgres",
        "SELECT pg_logical_emit_message(false, 'test', 'x'); SELECT pg_switch_wal();",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while primary.psql(
        "postgres",
        "SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) FROM pg_stat_archiver",
    ) != "t"
    {
        assert!(Instant::now() < deadline, "archive_command did not fail");
        std::thread::sleep(Duration::from_millis(200));
    }
    let server = primary.url("postgres");
    let status = |format: &str| {
        run(lifeboat(work.path()).args([
            "status", "--from", &sink, "--source", "app", "--server", &server, "--format", format,
        ]))
    };
    let (code, out, err) = status("json");
    assert_eq!(code, 6, "{out}{err}");
    assert!(
        err.contains("archive_command on") && err.contains("is failing"),
        "{err}"
    );
    let (_, prom, _) = status("prometheus");
    assert!(
        prom.contains("lifeboat_wal_archiver_failing{source=\"app\"} 1"),
        "{prom}"
    );
}

/// `wal setup --check` on a server that does not archive: exit 6, each
/// setting named, and the lines to add printed; nothing is switched.
#[test]
fn wal_setup_check_names_what_a_server_lacks() {
    let Some(bin) = default_bin() else { return };
    let c = PgCluster::start(&bin);
    let work = tempfile::tempdir().unwrap();
    let sink = format!("file://{}", work.path().join("archive").display());
    let (code, out, err) = run(lifeboat(work.path()).args([
        "wal",
        "setup",
        "--check",
        &c.url("postgres"),
        "--to",
        &sink,
        "--name",
        "app",
    ]));
    assert_eq!(code, 6, "{out}{err}");
    assert!(out.contains("FIX  archive_mode"), "{out}");
    assert!(out.contains("FIX  archive_command"), "{out}");
    assert!(
        out.contains(&format!(
            "archive_command = 'lifeboat wal push %p --to {sink} --name app'"
        )),
        "{out}"
    );
    assert!(!out.contains("reached the sink"), "{out}");
    // Without --check: the lines only, exit 0.
    let (code, out, _) = run(lifeboat(work.path()).args([
        "wal",
        "setup",
        &c.url("postgres"),
        "--to",
        &sink,
        "--name",
        "app",
    ]));
    assert_eq!(code, 0);
    assert!(out.contains("archive_mode = on"), "{out}");
}

/// A burst of segments: `wal push` starts a background pusher for the next
/// ready ones (at most four at once), PostgreSQL's later calls for them
/// return from the spool marker, and every segment is in the archive, in
/// order, with no failure.
#[test]
fn a_burst_of_segments_is_pushed_ahead_and_none_is_lost() {
    let Some(bin) = default_bin() else { return };
    let dir = server_dir();
    let root = dir.path().join("archive");
    let sink = format!("file://{}", root.display());
    let spool = dir.path().join("spool");
    let conf = format!(
        "archive_mode = on\narchive_command = '{} wal push %p --to {sink} --name burst --spool-dir {}'\n",
        env!("CARGO_BIN_EXE_lifeboat"),
        spool.display()
    );
    let c = PgCluster::start_with_conf(&bin, &conf);
    // Twelve segments as fast as the server can switch: the archiver finds
    // several ready at once.
    let mut sql = String::from("CREATE TABLE t (x int);");
    for i in 0..12 {
        sql.push_str(&format!(
            "INSERT INTO t VALUES ({i}); SELECT pg_switch_wal();"
        ));
    }
    c.psql("postgres", &sql);
    let last = switch_and_wait(&c);
    assert_eq!(
        c.psql("postgres", "SELECT failed_count FROM pg_stat_archiver")
            .trim(),
        "0",
        "{}",
        c.log_tail(30)
    );
    let names: Vec<String> = archived_names(&root)
        .into_iter()
        .filter(|n| n.len() == 28 && n.ends_with(".zst"))
        .collect();
    let expected: Vec<String> = (1..=u32::from_str_radix(&last[16..], 16).unwrap())
        .map(|n| format!("{}{:08X}.zst", &last[..16], n))
        .collect();
    assert_eq!(names, expected, "a segment is missing");
    let log = std::fs::read_to_string(c.log_path()).unwrap();
    assert!(log.contains("started a background pusher"), "{log}");
    assert!(log.contains("pushed ahead earlier, byte for byte"), "{log}");
    // Every marker was used up but the newest few at most.
    wait_for_no_pusher(&spool);
    let left = std::fs::read_dir(&spool)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pushed"))
                .count()
        })
        .unwrap_or(0);
    assert!(left <= 3, "{left} markers left");
}

/// A point-in-time restore promotes onto timeline 2 and archives there too
/// (its history file and segments, accepted: same cluster); a second
/// recovery of the same base backup, to the latest point, follows the
/// history file onto timeline 2: it has the row written there, not the
/// row timeline 1 wrote after the branch point.
#[test]
fn a_second_recovery_follows_the_new_timeline() {
    let Some(bin) = default_bin() else { return };
    let dir = server_dir();
    let root = dir.path().join("archive");
    let sink = format!("file://{}", root.display());
    let primary = PgCluster::start_with_conf(&bin, &archive_conf(&sink, "tl"));
    primary.psql(
        "postgres",
        "CREATE TABLE marker (id int PRIMARY KEY); INSERT INTO marker VALUES (1);",
    );
    switch_and_wait(&primary);
    let work = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(work.path()).args([
        "backup",
        &primary.url("postgres"),
        "--physical",
        "--to",
        &sink,
        "--name",
        "tl",
    ]));
    assert_eq!(code, 0, "{err}");
    primary.psql(
        "postgres",
        "INSERT INTO marker VALUES (2); SELECT pg_create_restore_point('branch'); INSERT INTO marker VALUES (3);",
    );
    switch_and_wait(&primary);
    drop(primary);

    let restore = |extra: &[&str]| {
        let c = PgCluster::empty(&bin);
        let to = format!("pgdata://{}", c.data_dir().display());
        let mut args = vec![
            "restore",
            "--from",
            &sink,
            "--source",
            "tl",
            "--to",
            &to,
            "--target-action",
            "promote",
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = run(lifeboat(work.path()).args(&args));
        assert_eq!(code, 0, "{err}");
        give_to_server(&[&c.data_dir()]);
        c
    };
    // To the branch point, promoted onto timeline 2, archiving as "tl":
    // it replaces the primary (--keep-archiving).
    let mut a = restore(&["--target-name", "branch", "--keep-archiving"]);
    a.start_recovery(&archive_conf(&sink, "tl"))
        .unwrap_or_else(|e| panic!("{e}"));
    wait_promoted(&a);
    assert_eq!(
        a.psql(
            "postgres",
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM marker"
        ),
        "1,2"
    );
    a.psql("postgres", "INSERT INTO marker VALUES (20);");
    switch_and_wait(&a);
    let names = archived_names(&root);
    assert!(
        names.contains(&"00000002.history.zst".to_string()),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("00000002") && n.len() == 28),
        "{names:?}"
    );
    drop(a);

    // The latest point: along timeline 2.
    let mut b = restore(&[]);
    b.start_recovery("").unwrap_or_else(|e| panic!("{e}"));
    wait_promoted(&b);
    assert_eq!(
        b.psql(
            "postgres",
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM marker"
        ),
        "1,2,20"
    );
    assert_eq!(
        b.psql(
            "postgres",
            "SELECT timeline_id FROM pg_control_checkpoint()"
        ),
        "3"
    );

    // Retention after a new base backup (on timeline 3): the older
    // segments go, timeline history files stay.
    let (code, _, err) = run(lifeboat(work.path()).args([
        "backup",
        &b.url("postgres"),
        "--physical",
        "--to",
        &sink,
        "--name",
        "tl",
    ]));
    assert_eq!(code, 0, "{err}");
    let before = archived_names(&root);
    let (code, out, err) = run(lifeboat(work.path()).args([
        "prune",
        "--from",
        &sink,
        "--source",
        "tl",
        "--keep-last",
        "1",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let after = archived_names(&root);
    assert!(after.len() < before.len(), "nothing pruned: {out}");
    assert!(
        after.contains(&"00000002.history.zst".to_string()),
        "{after:?}\n{out}"
    );
    assert!(
        !after
            .iter()
            .any(|n| n.starts_with("00000001") && n.len() == 28),
        "timeline 1 segments before the kept backup stayed: {after:?}"
    );
}

/// `kill -9` at every step of a push (after the archive's first record,
/// before the commit, after it, and after a segment pushed ahead): nothing
/// half-written is ever visible, and the retry PostgreSQL makes lands the
/// same bytes (or finds them there) and exits 0.
#[test]
fn a_push_killed_at_any_point_leaves_nothing_half_visible_and_the_retry_lands() {
    use std::os::unix::process::ExitStatusExt;
    for point in [
        "wal-push:archive-info-written",
        "wal-push:before-commit",
        "wal-push:committed",
        "wal-push:ahead-committed",
    ] {
        let work = tempfile::tempdir().unwrap();
        let pg_wal = work.path().join("pg_wal");
        std::fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
        let segs = ["000000010000000000000003", "000000010000000000000004"];
        for s in segs {
            std::fs::write(pg_wal.join(s), fake_segment(s, 77)).unwrap();
            std::fs::write(pg_wal.join("archive_status").join(format!("{s}.ready")), "").unwrap();
        }
        let root = work.path().join("archive");
        let sink = format!("file://{}", root.display());
        let spool = work.path().join("spool");
        let push = |seg: &str, fail: Option<&str>| {
            let mut c = lifeboat(work.path());
            c.args(["wal", "push"])
                .arg(pg_wal.join(seg))
                .args(["--to", &sink, "--name", "app", "--spool-dir"])
                .arg(&spool);
            if let Some(f) = fail {
                c.env("LIFEBOAT_FAILPOINTS", f);
            }
            c.output().unwrap()
        };
        let out = push(segs[0], Some(point));
        if point == "wal-push:ahead-committed" {
            // Only the background pusher passes there: the call for the
            // first segment lands it; the pusher dies with the second
            // committed and its marker unwritten.
            assert!(out.status.success(), "{point}: {out:?}");
            let second = root.join(format!("app/wal/00000001/{}.zst", segs[1]));
            let deadline = Instant::now() + Duration::from_secs(60);
            while !second.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(second.exists(), "the pusher did not push {}", segs[1]);
            wait_for_no_pusher(&spool);
            assert!(!spool.join(format!("{}.pushed", segs[1])).exists());
        } else if point == "wal-push:archive-info-written" {
            // The call and the background pusher it started race to write
            // the archive's first record: whichever writes it is killed
            // there, and the other goes on against that record.
            assert!(
                out.status.signal() == Some(9) || out.status.success(),
                "{point}: {out:?}"
            );
            wait_for_no_pusher(&spool);
        } else {
            assert_eq!(out.status.signal(), Some(9), "{point}: {out:?}");
            wait_for_no_pusher(&spool);
        }
        // Only whole objects are visible: every WAL object under its name
        // reads back as the segment it names. (A killed writer may leave a
        // hidden `.<name>.<tag>.partial`; listings skip those, and prune
        // removes them after the grace period.)
        for p in all_files(&root) {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                assert!(name.ends_with(".partial"), "{point}: {name}");
                continue;
            }
            if let Some(seg) = name.strip_suffix(".zst") {
                // The standard tool reads it, metadata frame and all.
                let out = std::process::Command::new("zstd")
                    .args(["-d", "-c", "-q"])
                    .arg(&p)
                    .output()
                    .expect("the zstd command-line tool");
                assert!(out.status.success(), "{point}: zstd -d {name}: {out:?}");
                let bytes = out.stdout;
                assert_eq!(bytes, fake_segment(seg, 77), "{point}: {name}");
            }
        }
        // PostgreSQL's retries of both segments exit 0, and both fetch back.
        for s in segs {
            let out = push(s, None);
            assert!(out.status.success(), "{point}: {s}: {out:?}");
            let dest = work.path().join(format!("{s}.fetched"));
            let (code, _, err) = run(lifeboat(work.path()).args([
                "wal",
                "fetch",
                s,
                dest.to_str().unwrap(),
                "--from",
                &sink,
                "--name",
                "app",
            ]));
            assert_eq!(code, 0, "{point}: {err}");
            assert_eq!(
                std::fs::read(&dest).unwrap(),
                fake_segment(s, 77),
                "{point}"
            );
        }
        wait_for_no_pusher(&spool);
    }
}

/// An encrypted physical backup: the server compresses, Lifeboat encrypts
/// what the server sent. The pre-commit check decrypts it with the run's
/// own key; `verify` needs the identity (exit 78 without it) and passes
/// with it; a restore with it writes the data directory, backup_manifest
/// included; the stored bytes are no zstd stream without the key.
#[test]
fn an_encrypted_physical_backup_is_checked_verified_and_restored() {
    let Some(bin) = default_bin() else { return };
    let c = PgCluster::start(&bin);
    c.psql(
        "postgres",
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    let work = tempfile::tempdir().unwrap();
    let (public, key) = age_keygen(work.path(), "key.txt");
    let sink = format!("file://{}", work.path().join("b").display());
    let (code, out, err) = run(lifeboat(work.path()).args([
        "backup",
        &c.url("postgres"),
        "--physical",
        "--to",
        &sink,
        "--name",
        "enc",
        "--recipient",
        &public,
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("compress_on=\"server\""), "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &out[0]["manifest"];
    assert!(m["artifact"]["encryption"].is_object(), "{m}");
    // Checked on its way, and read back too: that proves the stored
    // copy decrypts (with the run's own key).
    let checks: Vec<&str> = m["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["verifier"] == "pg-backup-manifest" && v["passed"] == true)
        .map(|v| v["detail"].as_str().unwrap())
        .collect();
    assert_eq!(checks.len(), 2, "{m}");
    assert!(checks[0].starts_with("checked as it was stored: "), "{m}");
    assert!(checks[1].starts_with("read back from the sink: "), "{m}");
    assert!(!err.contains("no second read"), "{err}");
    let data = all_files(&work.path().join("b"))
        .into_iter()
        .find(|p| p.ends_with("data.tar.zst"))
        .expect("the artifact");
    let raw = std::fs::read(&data).unwrap();
    assert!(
        !raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "stored in the clear"
    );

    let verify = |extra: &[&str]| {
        run(lifeboat(work.path())
            .args(["verify", "--from", &sink, "--source", "enc", "--latest"])
            .args(extra))
    };
    let (code, _, err) = verify(&[]);
    assert_eq!(code, 78, "{err}");
    let (code, _, err) = verify(&["--identity", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("verifier=pg-backup-manifest passed=true"),
        "{err}"
    );

    let restored = work.path().join("restored");
    let (code, _, err) = run(lifeboat(work.path()).args([
        "restore",
        "--from",
        &sink,
        "--source",
        "enc",
        "--to",
        &format!("pgdata://{}", restored.display()),
        "--identity",
        key.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(restored.join("backup_manifest").is_file());
    assert!(restored.join("PG_VERSION").is_file());
}

/// `kill -9` in the middle of a physical base backup (data uploaded, no
/// manifest yet): no backup is listed, and the next one commits.
#[test]
fn a_physical_backup_killed_before_its_commit_is_never_listed() {
    let Some(bin) = default_bin() else { return };
    let c = PgCluster::start(&bin);
    let work = tempfile::tempdir().unwrap();
    let sink = format!("file://{}", work.path().join("b").display());
    let backup = |fail: Option<&str>| {
        let mut cmd = lifeboat(work.path());
        cmd.args([
            "backup",
            &c.url("postgres"),
            "--physical",
            "--to",
            &sink,
            "--name",
            "phys",
        ]);
        if let Some(f) = fail {
            cmd.env("LIFEBOAT_FAILPOINTS", f);
        }
        cmd.output().unwrap()
    };
    for point in ["backup:uploaded", "backup:before-commit"] {
        let out = backup(Some(point));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{point}"
        );
        let (code, out, err) = run(lifeboat(work.path()).args(["list", "--from", &sink, "--json"]));
        assert_eq!(code, 0, "{err}");
        let l: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(l["complete"], serde_json::json!([]), "{point}: {l}");
    }
    let out = backup(None);
    assert!(out.status.success(), "{out:?}");
    let (_, out, _) = run(lifeboat(work.path()).args(["list", "--from", &sink, "--json"]));
    let l: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(l["complete"].as_array().unwrap().len(), 1, "{l}");
}

/// A physical base backup taken from a hot standby restores on its own
/// (its WAL to the end point is inside it; the archive is empty here).
#[test]
fn a_physical_backup_from_a_standby_restores() {
    let Some(bin) = default_bin() else { return };
    let primary = PgCluster::start(&bin);
    primary.psql(
        "postgres",
        "CREATE TABLE marker (id int); INSERT INTO marker SELECT generate_series(1, 1000);",
    );
    let standby = PgCluster::start_standby_of(&primary);
    let deadline = Instant::now() + Duration::from_secs(60);
    while standby
        .try_psql("postgres", "SELECT count(*) FROM marker")
        .as_deref()
        != Ok("1000")
    {
        assert!(Instant::now() < deadline, "the standby did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = server_dir();
    let sink = format!("file://{}", dir.path().join("archive").display());
    let work = tempfile::tempdir().unwrap();
    // `mode = "physical"` in lifeboat.toml asks what `--physical` asks.
    std::fs::write(
        work.path().join("lifeboat.toml"),
        "[postgres]\nmode = \"physical\"\nschemas = [\"public\"]\n",
    )
    .unwrap();
    let backup = |extra: &[&str]| {
        let mut cmd = lifeboat(work.path());
        cmd.args(["backup", &standby.url("postgres"), "--to", &sink])
            .args(["--name", "sb", "--json"])
            .args(extra);
        run(&mut cmd)
    };
    // A schema filter is for logical dumps: refused, naming both.
    let (code, _, err) = backup(&[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("mode = \"physical\"") && err.contains("schemas"),
        "{err}"
    );
    // Compressed here rather than on the server, as asked: the artifact
    // is one tar, backup_manifest before its end.
    std::fs::write(
        work.path().join("lifeboat.toml"),
        "[postgres]\nmode = \"physical\"\ncompress_on = \"client\"\n",
    )
    .unwrap();
    let (code, out, err) = backup(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("compress_on=\"client\""), "{err}");
    let listing = tar_listing(Path::new(&sink["file://".len()..]), false);
    assert!(listing.lines().any(|l| l == "backup_manifest"), "{listing}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        out[0]["manifest"]["source"]["kind"], "postgres-physical",
        "{out}"
    );
    // Compressed here: the copy is read back from the sink and checked.
    let check = manifest_check_verdict(&out[0]["manifest"]);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .starts_with("read back from the sink: "),
        "{check}"
    );
    let mut restored = PgCluster::empty(&bin);
    let to = format!("pgdata://{}", restored.data_dir().display());
    let (code, _, err) = run(
        lifeboat(work.path()).args(["restore", "--from", &sink, "--source", "sb", "--to", &to])
    );
    assert_eq!(code, 0, "{err}");
    // The server reads the archive as its own user (`wal fetch`): the
    // archive lifeboat wrote as root must be readable by it.
    give_to_server(&[&restored.data_dir(), &dir.path().join("archive")]);
    // The standby's standby.signal and primary_conninfo did not come
    // along: the restored server recovers and becomes a primary, instead of
    // streaming from the old primary.
    assert!(!restored.data_dir().join("standby.signal").exists());
    let auto = std::fs::read_to_string(restored.data_dir().join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("primary_conninfo = ''"), "{auto}");
    restored
        .start_recovery("")
        .unwrap_or_else(|e| panic!("{e}"));
    wait_promoted(&restored);
    assert_eq!(
        restored.psql("postgres", "SELECT count(*) FROM marker"),
        "1000"
    );
}

/// Until the background pusher of `spool` (if one started) has ended: its
/// lock file is free (`flock -n` from util-linux). Panics after a minute.
fn wait_for_no_pusher(spool: &Path) {
    let lock = spool.join(".push.lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let free = !lock.exists()
            || std::process::Command::new("flock")
                .arg("-n")
                .arg(&lock)
                .arg("true")
                .status()
                .expect("flock (util-linux)")
                .success();
        if free {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the background pusher still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A backlog, as PostgreSQL's archiver sees it: the first call starts a
/// background pusher and returns with its own file stored; the pusher
/// pushes every other ready segment and leaves a marker for each; the calls
/// that follow (each after the previous file is marked done) return from
/// the markers ("pushed ahead earlier", not a second push that finds the
/// object); every segment fetches back as it was.
#[test]
fn a_background_pusher_pushes_the_backlog_and_the_calls_that_follow_use_its_markers() {
    let work = tempfile::tempdir().unwrap();
    let pg_wal = work.path().join("pg_wal");
    let status = pg_wal.join("archive_status");
    std::fs::create_dir_all(&status).unwrap();
    let segs: Vec<String> = (0x10..0x16)
        .map(|n| format!("0000000100000000000000{n:02X}"))
        .collect();
    for s in &segs {
        std::fs::write(pg_wal.join(s), fake_segment(s, 81)).unwrap();
        std::fs::write(status.join(format!("{s}.ready")), "").unwrap();
    }
    let root = work.path().join("archive");
    let sink = format!("file://{}", root.display());
    let spool = work.path().join("spool");
    let push = |seg: &str| {
        run(lifeboat(work.path())
            .args(["wal", "push"])
            .arg(pg_wal.join(seg))
            .args(["--to", &sink, "--name", "app", "--json", "--spool-dir"])
            .arg(&spool))
    };
    let object = |seg: &str| root.join(format!("app/wal/00000001/{seg}.zst"));
    let (code, out, err) = push(&segs[0]);
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(first["already_archived"], false, "{out}");
    assert!(object(&segs[0]).exists());
    // The pusher works on after the call returned.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !segs
        .iter()
        .all(|s| spool.join(format!("{s}.pushed")).exists() || s == &segs[0])
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_no_pusher(&spool);
    for s in &segs[1..] {
        assert!(object(s).exists(), "{s} was not pushed ahead");
        assert!(
            spool.join(format!("{s}.pushed")).exists(),
            "{s} has no marker"
        );
    }
    assert!(!spool.join(format!("{}.pushed", segs[0])).exists());
    std::fs::rename(
        status.join(format!("{}.ready", segs[0])),
        status.join(format!("{}.done", segs[0])),
    )
    .unwrap();
    for s in &segs[1..] {
        let (code, out, err) = push(s);
        assert_eq!(code, 0, "{s}: {err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["already_archived"], true, "{s}: {out}");
        assert!(
            err.contains("pushed ahead earlier, byte for byte"),
            "{s}: {err}"
        );
        assert!(
            !spool.join(format!("{s}.pushed")).exists(),
            "{s}: marker not used up"
        );
        std::fs::rename(
            status.join(format!("{s}.ready")),
            status.join(format!("{s}.done")),
        )
        .unwrap();
    }
    // Every segment fetches back as it was.
    for s in &segs {
        let dest = work.path().join(format!("{s}.fetched"));
        let (code, _, err) = run(lifeboat(work.path()).args([
            "wal",
            "fetch",
            s,
            dest.to_str().unwrap(),
            "--from",
            &sink,
            "--name",
            "app",
        ]));
        assert_eq!(code, 0, "{s}: {err}");
        assert_eq!(std::fs::read(&dest).unwrap(), fake_segment(s, 81), "{s}");
    }
}

/// A marker vouches only for the sink it was written for: after
/// `archive_command` moves to another sink with the same spool, the
/// segments pushed ahead into the old one are pushed into the new one,
/// not passed off as archived there.
#[test]
fn a_marker_for_another_sink_does_not_vouch() {
    let work = tempfile::tempdir().unwrap();
    let pg_wal = work.path().join("pg_wal");
    let status = pg_wal.join("archive_status");
    std::fs::create_dir_all(&status).unwrap();
    let segs = ["000000010000000000000031", "000000010000000000000032"];
    for s in segs {
        std::fs::write(pg_wal.join(s), fake_segment(s, 83)).unwrap();
        std::fs::write(status.join(format!("{s}.ready")), "").unwrap();
    }
    let spool = work.path().join("spool");
    let push = |seg: &str, root: &Path| {
        run(lifeboat(work.path())
            .args(["wal", "push"])
            .arg(pg_wal.join(seg))
            .arg("--to")
            .arg(format!("file://{}", root.display()))
            .args(["--name", "app", "--json", "--spool-dir"])
            .arg(&spool))
    };
    let (old, new) = (work.path().join("old"), work.path().join("new"));
    let (code, _, err) = push(segs[0], &old);
    assert_eq!(code, 0, "{err}");
    let marker = spool.join(format!("{}.pushed", segs[1]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_no_pusher(&spool);
    assert!(marker.exists(), "the pusher left no marker");
    let (code, out, err) = push(segs[1], &new);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["already_archived"], false, "{out}");
    assert!(
        new.join(format!("app/wal/00000001/{}.zst", segs[1]))
            .exists()
    );
    assert!(!marker.exists(), "the marker for the old sink stayed");
}

/// The background pusher's setting, found in the server's environment by
/// mistake, fails the push (exit 64, naming it) and never passes for an
/// archived file: the file asked for is not stored.
#[test]
fn a_stray_pusher_setting_fails_the_push_and_stores_nothing_of_its_file() {
    let work = tempfile::tempdir().unwrap();
    let pg_wal = work.path().join("pg_wal");
    std::fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
    let seg = "000000010000000000000021";
    std::fs::write(pg_wal.join(seg), fake_segment(seg, 82)).unwrap();
    let root = work.path().join("archive");
    let sink = format!("file://{}", root.display());
    let (code, _, err) = run(lifeboat(work.path())
        .env("LIFEBOAT_WAL_PUSHER", "1")
        .args(["wal", "push"])
        .arg(pg_wal.join(seg))
        .args(["--to", &sink, "--name", "app", "--spool-dir"])
        .arg(work.path().join("spool")));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("LIFEBOAT_WAL_PUSHER is set"), "{err}");
    assert!(!root.join(format!("app/wal/00000001/{seg}.zst")).exists());
}

/// The background pusher's protocol, with a pusher started by hand (as a
/// call starts one: a one-time ticket in the spool): it pushes the ready
/// segment after its starting file and not that file; a call for the
/// segment it is pushing waits for its marker instead of pushing it again
/// (the pusher is held after the commit, before the marker); the pusher
/// exits 0; its ticket is used up, so the same setting again is refused.
#[test]
fn a_call_waits_for_the_pusher_that_has_its_segment_and_the_pusher_exits_0() {
    let work = tempfile::tempdir().unwrap();
    let pg_wal = work.path().join("pg_wal");
    let status = pg_wal.join("archive_status");
    std::fs::create_dir_all(&status).unwrap();
    let segs = ["000000010000000000000041", "000000010000000000000042"];
    for s in segs {
        std::fs::write(pg_wal.join(s), fake_segment(s, 84)).unwrap();
        std::fs::write(status.join(format!("{s}.ready")), "").unwrap();
    }
    let root = work.path().join("archive");
    let sink = format!("file://{}", root.display());
    let spool = work.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700)).unwrap();
    let nonce = "0123456789abcdef";
    std::fs::write(spool.join(format!(".ticket-{nonce}")), "").unwrap();
    let cmd = |seg: &str| {
        let mut c = lifeboat(work.path());
        c.args(["wal", "push"])
            .arg(pg_wal.join(seg))
            .args(["--to", &sink, "--name", "app", "--json", "--spool-dir"])
            .arg(&spool);
        c
    };
    let mut pusher = cmd(segs[0])
        .env("LIFEBOAT_WAL_PUSHER", nonce)
        .env("LIFEBOAT_FAILPOINTS", "wal-push:ahead-committed=pause")
        .spawn()
        .unwrap();
    let second = root.join(format!("app/wal/00000001/{}.zst", segs[1]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !second.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(second.exists(), "the pusher did not push {}", segs[1]);
    assert!(!spool.join(format!("{}.pushed", segs[1])).exists());
    // Committed, held before its marker: the call waits for the marker.
    let (code, out, err) = run(&mut cmd(segs[1]));
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["already_archived"], true, "{out}");
    assert!(err.contains("pushed ahead earlier, byte for byte"), "{err}");
    assert_eq!(pusher.wait().unwrap().code(), Some(0));
    // It never archived its starting file.
    assert!(
        !root
            .join(format!("app/wal/00000001/{}.zst", segs[0]))
            .exists()
    );
    assert!(!spool.join(format!(".ticket-{nonce}")).exists());
    let (code, _, err) = run(cmd(segs[0]).env("LIFEBOAT_WAL_PUSHER", nonce));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not started by Lifeboat"), "{err}");
}

/// The fetch filler's setting, found in the environment by mistake, fails
/// `wal fetch` with exit 200 (PostgreSQL stops recovery) and writes
/// nothing to %p: it never passes for a file that is not in the archive.
#[test]
fn a_stray_filler_setting_fails_the_fetch_with_200() {
    let work = tempfile::tempdir().unwrap();
    let seg = "000000010000000000000051";
    let src = work.path().join(seg);
    std::fs::write(&src, fake_segment(seg, 85)).unwrap();
    let sink = format!("file://{}", work.path().join("archive").display());
    let (code, _, err) = run(lifeboat(work.path()).args(["wal", "push"]).arg(&src).args([
        "--to",
        &sink,
        "--name",
        "app",
        "--parallel",
        "1",
    ]));
    assert_eq!(code, 0, "{err}");
    let dest = work.path().join("restored");
    let (code, _, err) = run(lifeboat(work.path())
        .env("LIFEBOAT_WAL_FETCH_FILLER", "1")
        .args(["wal", "fetch", seg])
        .arg(&dest)
        .args(["--from", &sink, "--name", "app", "--spool-dir"])
        .arg(work.path().join("spool")));
    assert_eq!(code, 200, "{err}");
    assert!(err.contains("LIFEBOAT_WAL_FETCH_FILLER is set"), "{err}");
    assert!(!dest.exists());
}

/// A spool directory that cannot be used (another user's) never fails a
/// push: the look-ahead is turned off with a warning, and the file lands.
#[test]
fn an_unusable_spool_only_turns_the_look_ahead_off() {
    let work = tempfile::tempdir().unwrap();
    let pg_wal = work.path().join("pg_wal");
    std::fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
    let seg = "000000010000000000000007";
    std::fs::write(pg_wal.join(seg), fake_segment(seg, 78)).unwrap();
    let spool = work.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    // Owned by the server user: not ours when the tests run as root.
    chown_to_server_user(&spool);
    let root = work.path().join("archive");
    let sink = format!("file://{}", root.display());
    let (code, _, err) = run(lifeboat(work.path())
        .args(["wal", "push"])
        .arg(pg_wal.join(seg))
        .args(["--to", &sink, "--name", "app", "--spool-dir"])
        .arg(&spool));
    assert_eq!(code, 0, "{err}");
    let owned_by_other = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&spool).unwrap())
        != std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    if owned_by_other {
        assert!(err.contains("cannot be used"), "{err}");
    }
    assert!(root.join(format!("app/wal/00000001/{seg}.zst")).exists());
}

/// A cluster with tablespaces (one holding a table, one a whole database)
/// is backed up physically through pg_basebackup's file per tablespace,
/// proven by pg_verifybackup, restored with its tablespaces moved by
/// `--tablespace-map` (refused where the originals still are, without
/// leaving anything behind), and drilled to a point in time with the
/// tablespaces inside the throwaway cluster.
#[test]
fn a_cluster_with_tablespaces_is_backed_up_restored_and_drilled() {
    let Some(bin) = default_bin() else { return };
    tablespaces_round_trip(&bin);
}

/// The same on PostgreSQL 17 (its tablespace directory is PG_17_…).
#[test]
fn a_cluster_with_tablespaces_is_backed_up_restored_and_drilled_on_17() {
    let Some(bin) = other_major_bin() else { return };
    tablespaces_round_trip(&bin);
}

fn tablespaces_round_trip(bin: &Path) {
    let bin = bin.to_path_buf();
    let pg_bin = bin.to_str().unwrap().to_string();
    let dir = server_dir();
    let root = dir.path().join("archive");
    let sink = format!("file://{}", root.display());
    let primary = PgCluster::start_with_conf(&bin, &archive_conf(&sink, "ts"));
    let spaces = server_dir();
    let ts1 = spaces.path().join("ts1");
    let ts2 = spaces.path().join("ts two");
    for d in [&ts1, &ts2] {
        std::fs::create_dir(d).unwrap();
        chown_to_server_user(d);
    }
    primary.psql(
        "postgres",
        &format!("CREATE TABLESPACE ts1 LOCATION '{}'", ts1.display()),
    );
    primary.psql(
        "postgres",
        &format!("CREATE TABLESPACE ts2 LOCATION '{}'", ts2.display()),
    );
    primary.psql(
        "postgres",
        "CREATE TABLE inside (id int) TABLESPACE ts1; INSERT INTO inside SELECT generate_series(1, 5000);",
    );
    primary.psql("postgres", "CREATE DATABASE other TABLESPACE ts2");
    primary.psql(
        "other",
        "CREATE TABLE t (v text); INSERT INTO t SELECT md5(i::text) FROM generate_series(1, 3000) i;",
    );
    switch_and_wait(&primary);

    let work = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lifeboat(work.path()).args([
        "backup",
        &primary.url("postgres"),
        "--physical",
        "--to",
        &sink,
        "--name",
        "ts",
        "--json",
        "--pg-bin-dir",
        &pg_bin,
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &out[0]["manifest"];
    assert!(
        m["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["verifier"] == "pg-backup-manifest" && v["passed"] == true),
        "{m}"
    );
    let recorded = m["fingerprint"]["details"]["tablespaces"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = recorded
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ts1", "ts2"], "{m}");
    assert_eq!(recorded[1]["location"], ts2.to_str().unwrap(), "{m}");
    let oid1 = recorded[0]["oid"].as_u64().unwrap();
    primary.psql("postgres", "INSERT INTO inside VALUES (-1);");
    switch_and_wait(&primary);

    let restored = PgCluster::empty(&bin);
    let data = restored.data_dir();
    let to = format!("pgdata://{}", data.display());
    let restore = |extra: &[&str]| {
        run(lifeboat(work.path())
            .args(["restore", "--from", &sink, "--source", "ts", "--to", &to])
            .args(["--pg-bin-dir", &pg_bin])
            .args(extra))
    };
    // The original tablespace directories are in use: refused, naming the
    // way out, and nothing is left behind.
    let (code, _, err) = restore(&[]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("not empty") && err.contains("--tablespace-map"),
        "{err}"
    );
    assert!(
        !data.exists() || std::fs::read_dir(&data).unwrap().next().is_none(),
        "{data:?}"
    );
    // A relocation that names no tablespace of the backup.
    let (code, _, err) = restore(&["--tablespace-map", "/nowhere=/tmp/x"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("ts1 at"), "{err}");

    let moved = server_dir();
    let n1 = moved.path().join("one");
    let n2 = moved.path().join("two");
    // One destination does not exist (built beside it, then renamed), the
    // other is an empty directory, as a mount point is (built in it).
    std::fs::create_dir(&n2).unwrap();
    let (code, _, err) = restore(&[
        "--tablespace-map",
        &format!("{}={}", ts1.display(), n1.display()),
        "--tablespace-map",
        &format!("{}={}", ts2.display(), n2.display()),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_link(data.join("pg_tblspc").join(oid1.to_string())).unwrap(),
        n1
    );
    let map = std::fs::read_to_string(data.join("tablespace_map")).unwrap();
    assert!(map.contains(&format!("{oid1} {}\n", n1.display())), "{map}");
    // No staging directory stays beside the tablespaces.
    let left: Vec<_> = std::fs::read_dir(moved.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    give_to_server(&[&data, &n1, &n2, &root]);
    let mut restored = restored;
    restored
        .start_recovery(&restore_conf(&sink, "ts"))
        .unwrap_or_else(|e| panic!("{e}"));
    wait_promoted(&restored);
    // Recovered to the end of the archive: the row written into the
    // tablespace after the backup came back from the WAL.
    assert_eq!(
        restored.psql("postgres", "SELECT count(*) FROM inside"),
        "5001"
    );
    assert_eq!(restored.psql("other", "SELECT count(*) FROM t"), "3000");
    assert_eq!(
        restored.psql(
            "postgres",
            "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'"
        ),
        n1.to_str().unwrap()
    );
    // The originals were never touched.
    assert_eq!(
        primary.psql("postgres", "SELECT count(*) FROM inside"),
        "5001"
    );

    // A point-in-time drill: base backup and WAL into a throwaway cluster,
    // its tablespaces kept inside it.
    let (code, out, err) = run(lifeboat(work.path()).args([
        "drill",
        "--pitr",
        "--from",
        &sink,
        "--source",
        "ts",
        "--json",
        "--pg-bin-dir",
        &pg_bin,
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["verdicts"][0]["passed"], true, "{d}");
}

/// A copy of the archive at `root` whose base backup has one byte of a
/// file changed inside the tar, re-compressed, with the manifest's
/// checksum of the stored bytes made to match: only the check against
/// PostgreSQL's backup_manifest can see it, and `verify` fails on it
/// (exit 4), naming the file.
fn a_changed_file_fails_the_manifest_check(root: &Path, work: &Path) {
    let copy = work.join("tampered");
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(ok.success());
    let files = all_files(&copy);
    let data = files
        .iter()
        .find(|p| p.ends_with("data.tar.zst"))
        .expect("a base backup in the archive");
    let manifest = data.with_file_name("manifest.json");
    let shell = |script: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
        out.stdout
    };
    let mut tar = shell(&format!("zstd -dc '{}'", data.display()));
    let at = (0..tar.len())
        .step_by(512)
        .find(|&o| tar[o..].starts_with(b"PG_VERSION\0"))
        .expect("PG_VERSION in the tar");
    tar[at + 512] ^= 1;
    let plain = work.join("tampered.tar");
    std::fs::write(&plain, &tar).unwrap();
    shell(&format!(
        "zstd -q -f -o '{}' '{}'",
        data.display(),
        plain.display()
    ));
    let sum = String::from_utf8(shell(&format!("sha256sum '{}'", data.display()))).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["artifact"]["sha256"] = sum.split_whitespace().next().unwrap().into();
    m["artifact"]["stored_size"] = std::fs::metadata(data).unwrap().len().into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let sink = format!("file://{}", copy.display());
    let (code, out, err) = run(lifeboat(work).args([
        "verify", "--from", &sink, "--source", "app", "--latest", "--json",
    ]));
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        err.contains("pg-backup-manifest failed")
            && err.contains("PG_VERSION has checksum")
            && err.contains("verifier=checksum passed=true"),
        "{err}"
    );
}

/// The names in the base backup's tar under `root`, by GNU tar (with
/// `--ignore-zeros` or without).
/// The one passed `pg-backup-manifest` verdict of manifest `m`.
fn manifest_check_verdict(m: &serde_json::Value) -> &serde_json::Value {
    let checks: Vec<&serde_json::Value> = m["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["verifier"] == "pg-backup-manifest")
        .collect();
    assert_eq!(checks.len(), 1, "{m}");
    assert_eq!(checks[0]["passed"], true, "{m}");
    checks[0]
}

fn tar_listing(root: &Path, ignore_zeros: bool) -> String {
    let data = all_files(root)
        .into_iter()
        .find(|p| p.ends_with("data.tar.zst"))
        .expect("a base backup");
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "zstd -dc '{}' | tar -t {}",
                data.display(),
                if ignore_zeros { "--ignore-zeros" } else { "" }
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}
