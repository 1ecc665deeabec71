//! PostgreSQL fidelity through the `lifeboat` binary, on ephemeral clusters:
//! lock waits, inheritance and partitions, database-level properties, roles,
//! ANALYZE, partial restores, leftovers of killed runs, sequences and large
//! objects.

mod common;

use common::{error_line, lifeboat, run};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_tests::pg::{PgCluster, sample_schema};
use lifeboat_tests::support::all_files;

/// An executable script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn pg15_bin() -> PathBuf {
    lifeboat_tests::pg::default_bin().expect("checked by start_default")
}

#[test]
fn a_table_held_access_exclusive_fails_the_backup_within_the_lock_wait() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 100);
    let dir = tempfile::tempdir().unwrap();
    let holder = pg.session(
        "shop",
        "BEGIN; LOCK TABLE public.items IN ACCESS EXCLUSIVE MODE;",
    );
    let t = Instant::now();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("shop"),
        "--to",
        "b",
        "--lock-wait",
        "2s",
    ]));
    let took = t.elapsed();
    assert_eq!(code, 2, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("table public.items is locked by another session")
            && line.contains("lock wait of 2s"),
        "{line}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        all_files(&dir.path().join("b")).is_empty(),
        "nothing may be left in the sink"
    );
    holder.close();

    // Released: the same backup goes through, and pg_dump got the lock wait too.
    let log = dir.path().join("argv.log");
    let bin = pg15_bin();
    let spy = script(
        dir.path(),
        "spy",
        &format!(
            "echo \"$*\" >> {}\ntool=$1; shift; exec {}/$tool \"$@\"",
            log.display(),
            bin.display()
        ),
    );
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("shop"),
        "--to",
        "b",
        "--lock-wait",
        "2s",
        "--command-prefix",
        &spy.display().to_string(),
    ]));
    assert_eq!(code, 0, "{err}");
    let argv = std::fs::read_to_string(&log).unwrap();
    assert!(
        argv.lines()
            .any(|l| l.starts_with("pg_dump ") && l.contains("--lock-wait-timeout=2000")),
        "{argv}"
    );
}

#[test]
fn pg_dump_queued_behind_a_lock_request_gives_up_and_names_the_table() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 100);
    let dir = tempfile::tempdir().unwrap();
    let bin = pg15_bin();
    // pg_dump starts late, so an ACCESS EXCLUSIVE request can queue between
    // Lifeboat's own lock and pg_dump's, and pg_dump's LOCK waits behind it.
    let slow = script(
        dir.path(),
        "slow",
        &format!(
            "tool=$1; shift\n\
             if [[ \"$tool\" == pg_dump && \" $* \" != *\" --version \"* ]]; then sleep 2; fi\n\
             exec {}/$tool \"$@\"",
            bin.display()
        ),
    );
    let backup = lifeboat(dir.path())
        .args([
            "backup",
            &pg.url("shop"),
            "--to",
            "b",
            "--lock-wait",
            "2s",
            "--command-prefix",
            &slow.display().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until Lifeboat's transaction holds its lock on items.
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg.psql(
        "shop",
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'lifeboat' AND l.relation = 'public.items'::regclass AND l.granted",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "lifeboat never locked items");
        std::thread::sleep(Duration::from_millis(20));
    }
    // An ALTER-like request now queues behind it (and ahead of pg_dump).
    let mut waiter = pg
        .client_command("psql")
        .arg("-h")
        .arg(pg.socket_dir())
        .args([
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "shop",
            "-X",
            "-q",
        ])
        .args([
            "-c",
            "BEGIN; LOCK TABLE public.items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = backup.wait_with_output().unwrap();
    let _ = waiter.kill();
    let _ = waiter.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("table public.items is locked by another session")
            && line.contains("lock wait of 2s"),
        "{line}"
    );
    assert!(all_files(&dir.path().join("b")).is_empty());
}

#[test]
fn lock_waits_out_of_range_are_usage_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "0",
        "99999999999999999999999",
        "18446744073709551615m",
        "100000h",
        "soon",
    ] {
        let (code, _, err) = run(lifeboat(dir.path()).args([
            "backup",
            "postgres://postgres@127.0.0.1:1/x",
            "--to",
            "b",
            "--lock-wait",
            bad,
        ]));
        assert_eq!(code, 64, "{bad}: {err}");
        assert!(error_line(&err).contains("--lock-wait"), "{err}");
    }
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        "source = \"postgres://postgres@127.0.0.1:1/x\"\nsink = \"b\"\n[postgres]\nlock_wait = \"100000h\"\n",
    )
    .unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 78, "{err}");
    assert!(error_line(&err).contains("lock wait"), "{err}");
}
