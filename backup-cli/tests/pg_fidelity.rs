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

use lifeboat_tests::pg::{PgCluster, sample_schema, table_contents};
use lifeboat_tests::support::all_files;

fn manifest(root: &Path) -> serde_json::Value {
    let m = all_files(root)
        .into_iter()
        .find(|p| p.ends_with("manifest.json"))
        .expect("a manifest");
    serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap()
}

fn table_rows(m: &serde_json::Value) -> Vec<(String, u64)> {
    m["fingerprint"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

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

/// Inheritance, range/list/sub-partitions with a default partition, and a
/// file_fdw foreign table.
fn inheritance_and_partitions(pg: &PgCluster, db: &str) {
    pg.create_db(db);
    let csv = pg.dir().join("rates.csv");
    std::fs::write(&csv, "EUR,1.08\nGBP,1.27\n").unwrap();
    std::fs::set_permissions(&csv, std::fs::Permissions::from_mode(0o644)).unwrap();
    pg.psql(
        db,
        &format!(
            r#"
CREATE TABLE public.vehicles (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.cars (doors int) INHERITS (public.vehicles);
CREATE TABLE public.trucks (axles int) INHERITS (public.vehicles);
INSERT INTO public.vehicles VALUES (1, 'generic'), (2, 'other');
INSERT INTO public.cars VALUES (10, 'mini', 3), (11, 'saloon', 5), (12, 'estate', 5);
INSERT INTO public.trucks VALUES (20, 'lorry', 3);

CREATE TABLE public.measurements (at date NOT NULL, region text NOT NULL, v numeric)
  PARTITION BY RANGE (at);
CREATE TABLE public.m_2023 PARTITION OF public.measurements
  FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE public.m_2024 PARTITION OF public.measurements
  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (region);
CREATE TABLE public.m_2024_eu PARTITION OF public.m_2024 FOR VALUES IN ('eu');
CREATE TABLE public.m_2024_us PARTITION OF public.m_2024 FOR VALUES IN ('us');
CREATE TABLE public.m_2024_other PARTITION OF public.m_2024 DEFAULT;
CREATE TABLE public.m_rest PARTITION OF public.measurements DEFAULT;
INSERT INTO public.measurements
SELECT date '2023-06-01' + (i % 700), (ARRAY['eu','us','apac'])[i % 3 + 1], i
FROM generate_series(1, 3000) i;

CREATE TABLE public.orders (id int, kind text NOT NULL, PRIMARY KEY (id, kind))
  PARTITION BY LIST (kind);
CREATE TABLE public.orders_web PARTITION OF public.orders FOR VALUES IN ('web');
CREATE TABLE public.orders_rest PARTITION OF public.orders DEFAULT;
INSERT INTO public.orders SELECT i, CASE WHEN i % 4 = 0 THEN 'web' ELSE 'shop' END
FROM generate_series(1, 400) i;

CREATE EXTENSION file_fdw;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE public.rates (currency text, rate numeric)
  SERVER files OPTIONS (filename '{}', format 'csv');
ANALYZE;
"#,
            csv.display()
        ),
    );
}

#[test]
fn inheritance_partitions_and_foreign_tables_back_up_verify_restore_and_drill() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    inheritance_and_partitions(&pg, "fleet");
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(lifeboat(dir.path()).args(["backup", &pg.url("fleet"), "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pg-rows:pass"), "{out}");
    let m = manifest(&dir.path().join("b"));
    let rows = table_rows(&m);
    // The parent's own rows, not its children's too.
    assert!(rows.contains(&("public.vehicles".into(), 2)), "{rows:?}");
    assert!(rows.contains(&("public.cars".into(), 3)), "{rows:?}");
    assert!(
        !rows
            .iter()
            .any(|(n, _)| n == "public.rates" || n == "public.measurements"),
        "foreign and partitioned tables hold no data of their own: {rows:?}"
    );
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "verify",
        "--from",
        "b",
        "--latest",
        "--drill-server",
        &pg.url("postgres"),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restore drill OK"), "{out}");
    let (code, out, err) =
        run(lifeboat(dir.path()).args(["verify", "--from", "b", "--drill-cluster"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restore drill OK"), "{out}");
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--latest",
        "--to",
        &pg.url("fleet_copy"),
    ]));
    assert_eq!(code, 0, "{err}");
    let (source, copy) = (
        table_contents(&pg, "fleet"),
        table_contents(&pg, "fleet_copy"),
    );
    assert_eq!(source, copy);
    assert!(source.contains("public.rates|f|2|"), "{source}");
    assert!(source.contains("public.vehicles|r|2|"), "{source}");
    assert!(source.contains("public.m_2024_other|r|"), "{source}");
    assert_eq!(
        pg.psql("fleet_copy", "SELECT count(*) FROM public.vehicles"),
        "6",
        "the children are still the parent's"
    );
}
