//! The PostgreSQL test harness itself (tests/src/pg.rs): ephemeral clusters
//! start, run side by side, require passwords, stream to a standby, start
//! from another major version, and leave nothing behind. Also documents the
//! premise of the PostgreSQL source's version check: `pg_dump` refuses a
//! newer server ("server version mismatch") and handles older ones.
//!
//! Run: `cargo test -p lifeboat-tests --test pg_harness` (skips without the
//! binaries unless LIFEBOAT_REQUIRE_SERVERS=1; `scripts/test` provides both).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_tests::pg::{
    PgCluster, SAMPLE_CATEGORIES, chown_to_server_user, default_bin, other_major_bin, pid_alive,
    sample_fingerprint, sample_schema,
};

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn default_cluster_starts_and_psql_works() {
    let t0 = Instant::now();
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    eprintln!(
        "default cluster (PostgreSQL {}) started in {:?} (initdb + start {:?})",
        pg.major(),
        t0.elapsed(),
        pg.started_in()
    );
    assert!(listening(pg.port()));
    assert_eq!(
        pg.url("shop"),
        format!("postgres://postgres@127.0.0.1:{}/shop", pg.port())
    );
    let num: u32 = pg
        .psql("postgres", "SHOW server_version_num")
        .parse()
        .unwrap();
    assert_eq!(num / 10_000, pg.major());
    if std::env::var_os("LIFEBOAT_TEST_PG_BIN").is_none() {
        assert_eq!(pg.major(), 15, "Debian 12's server is PostgreSQL 15");
    }

    // Several statements, several result rows, -A -t formatting.
    let out = pg.psql(
        "postgres",
        "CREATE TABLE t (a int, b text); INSERT INTO t VALUES (1, 'x'), (2, 'y');
         SELECT a, b FROM t ORDER BY a; SELECT count(*) FROM t;",
    );
    assert_eq!(out, "1|x\n2|y\n2");
    // Settings the harness promises.
    assert_eq!(pg.psql("postgres", "SHOW fsync"), "off");
    assert_eq!(pg.psql("postgres", "SHOW wal_level"), "replica");
    assert_eq!(pg.psql("postgres", "SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(pg.psql("postgres", "SHOW server_encoding"), "UTF8");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT datcollate FROM pg_database WHERE datname = 'postgres'"
        ),
        "C.UTF-8"
    );
    // Errors stop the script and come back with the server's message.
    let err = pg
        .try_psql(
            "postgres",
            "SELECT 1; SELECT * FROM missing_table; SELECT 2;",
        )
        .unwrap_err();
    assert!(err.contains("missing_table"), "{err}");
    // TCP with trust auth, as the URL says.
    assert_eq!(
        pg.try_psql_tcp("postgres", None, "postgres", "SELECT current_user")
            .unwrap(),
        "postgres"
    );
    pg.create_db("shop");
    assert_eq!(
        pg.psql("shop", "SELECT current_database()"),
        "shop",
        "create_db"
    );
}

#[test]
fn sample_schema_has_the_expected_tables_and_counts() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    let t0 = Instant::now();
    sample_schema(&pg, "shop", 2_000);
    eprintln!("sample_schema(2000 rows) took {:?}", t0.elapsed());
    let counts = pg.psql(
        "shop",
        "SELECT (SELECT count(*) FROM public.categories),
                (SELECT count(*) FROM public.items),
                (SELECT count(*) FROM audit.events),
                (SELECT count(*) FROM public.category_totals)",
    );
    assert_eq!(
        counts,
        format!("{SAMPLE_CATEGORIES}|2000|200|{SAMPLE_CATEGORIES}")
    );
    let tables = pg.psql(
        "shop",
        "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname, tablename)
           FROM pg_tables WHERE schemaname IN ('public', 'audit')",
    );
    assert_eq!(tables, "audit.events,public.categories,public.items");
    let indexes = pg.psql(
        "shop",
        "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes
          WHERE tablename = 'items'",
    );
    assert_eq!(indexes, "items_color_idx,items_created_at_idx,items_pkey");
    // Awkward values are there: NULLs, JSON, arrays, escapes, non-ASCII.
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(*) FILTER (WHERE note IS NULL), count(*) FILTER (WHERE weight IS NULL),
                    count(*) FILTER (WHERE note LIKE '%日本%'),
                    count(*) FILTER (WHERE strpos(note, chr(9)) > 0 AND strpos(note, chr(10)) > 0
                                     AND strpos(note, chr(92)) > 0 AND strpos(note, '''') > 0)
               FROM public.items"
        ),
        "500|285|500|500"
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT attrs ->> 'color', attrs -> 'nested' ->> 'i', tags[1] FROM public.items WHERE id = 7"
        ),
        "green|7|tag7"
    );

    // Deterministic: a second database gets the same contents.
    sample_schema(&pg, "shop2", 2_000);
    let a = sample_fingerprint(&pg, "shop");
    assert_eq!(a, sample_fingerprint(&pg, "shop2"));
    assert_eq!(a.lines().count(), 4, "{a}");
    assert!(a.starts_with("public.categories|5|"), "{a}");
    // ... and a change shows in the fingerprint.
    pg.psql(
        "shop2",
        "UPDATE public.items SET quantity = quantity + 1 WHERE id = 1000",
    );
    assert_ne!(a, sample_fingerprint(&pg, "shop2"));
}

#[test]
fn start_with_conf_archives_wal_into_a_server_owned_dir() {
    let Some(bin) = default_bin() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("wal");
    std::fs::create_dir(&archive).unwrap();
    // archive_command runs as the server user: it needs to reach and write
    // the archive (tempdir() is root's and mode 700 when we are root).
    chown_to_server_user(tmp.path());
    chown_to_server_user(&archive);
    let pg = PgCluster::start_with_conf(
        &bin,
        &format!(
            "archive_mode = on\narchive_command = 'cp %p {}/%f'\narchive_timeout = 0",
            archive.display()
        ),
    );
    assert_eq!(pg.psql("postgres", "SHOW archive_mode"), "on");
    let segment = pg.psql(
        "postgres",
        "CREATE TABLE t AS SELECT 1 AS x; SELECT pg_walfile_name(pg_switch_wal())",
    );
    wait_until(
        "the switched segment in the archive",
        Duration::from_secs(30),
        || archive.join(&segment).exists(),
    );
    // restart() keeps port and settings.
    let port = pg.port();
    pg.restart();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM t"), "1");
}

#[test]
fn two_clusters_run_at_once_independently() {
    let Some(bin) = default_bin() else {
        return;
    };
    let t0 = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| PgCluster::start(&bin));
        let b = s.spawn(|| PgCluster::start(&bin));
        (a.join().unwrap(), b.join().unwrap())
    });
    eprintln!(
        "two clusters started in parallel in {:?} ({:?} and {:?} each)",
        t0.elapsed(),
        a.started_in(),
        b.started_in()
    );
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    assert!(listening(a.port()) && listening(b.port()));
    a.psql("postgres", "CREATE TABLE only_in_a (x int)");
    assert_eq!(
        a.psql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        ),
        "1"
    );
    assert_eq!(
        b.psql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        ),
        "0"
    );
    // Stopping one leaves the other running.
    let a_port = a.port();
    a.stop();
    assert!(!listening(a_port));
    assert_eq!(b.psql("postgres", "SELECT 1"), "1");
}

#[test]
fn drop_stops_the_server_and_removes_its_directory() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    let (port, dir, pid) = (
        pg.port(),
        pg.dir().to_path_buf(),
        pg.postmaster_pid().unwrap(),
    );
    assert!(pid_alive(pid));
    drop(pg);
    assert!(!pid_alive(pid), "postmaster {pid} survived drop");
    assert!(!listening(port));
    assert!(!dir.exists(), "{} left behind", dir.display());

    // Also when the test panics while the cluster is up.
    let seen = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        let pg = PgCluster::start_default().unwrap();
        *seen.lock().unwrap() = Some((pg.port(), pg.dir().to_path_buf(), pg.postmaster_pid()));
        panic!("a failing test");
    });
    assert!(r.is_err());
    let (port, dir, pid) = seen.into_inner().unwrap().unwrap();
    assert!(!pid_alive(pid.unwrap()));
    assert!(!listening(port));
    assert!(!dir.exists());
}

/// Helper for the next test, run in a child process of this test binary,
/// which the parent kills with SIGKILL (no Drop runs).
#[test]
#[ignore = "helper: run by watchdog_cleans_up_after_a_killed_test_process"]
fn watchdog_child_process() {
    if std::env::var_os("LIFEBOAT_PG_WATCHDOG_CHILD").is_none() {
        return;
    }
    let pg = PgCluster::start_default().expect("server binaries");
    println!(
        "CLUSTER {} {} {}",
        pg.port(),
        pg.postmaster_pid().unwrap(),
        pg.dir().display()
    );
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn watchdog_cleans_up_after_a_killed_test_process() {
    if default_bin().is_none() {
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "watchdog_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env("LIFEBOAT_PG_WATCHDOG_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(n > 0, "child exited without starting a cluster");
        // libtest prints "test NAME ... " without a newline first.
        if let Some(i) = line.find("CLUSTER ") {
            line.drain(..i);
            break;
        }
    }
    let f: Vec<&str> = line.split_whitespace().collect();
    let (port, pid, dir): (u16, u32, &Path) = (
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        Path::new(f[3]),
    );
    assert!(listening(port) && pid_alive(pid) && dir.exists());
    child.kill().unwrap(); // SIGKILL: no unwinding, no Drop
    child.wait().unwrap();
    let t0 = Instant::now();
    wait_until(
        "the watchdog to stop the orphaned postmaster",
        Duration::from_secs(15),
        || !pid_alive(pid) && !dir.exists(),
    );
    eprintln!("watchdog cleaned up {:?} after the kill", t0.elapsed());
    assert!(!listening(port));
}

#[test]
fn require_password_refuses_passwordless_logins() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 10);
    pg.require_password("alice", "s3cret pass'word");
    pg.require_password("postgres", "pg-pass");

    let err = pg
        .try_psql_tcp("alice", None, "shop", "SELECT 1")
        .unwrap_err();
    assert!(err.contains("no password supplied"), "{err}");
    let err = pg
        .try_psql_tcp("alice", Some("wrong"), "shop", "SELECT 1")
        .unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    assert_eq!(
        pg.try_psql_tcp(
            "alice",
            Some("s3cret pass'word"),
            "shop",
            "SELECT current_user"
        )
        .unwrap(),
        "alice"
    );
    let err = pg
        .try_psql_tcp("postgres", None, "shop", "SELECT 1")
        .unwrap_err();
    assert!(err.contains("no password supplied"), "{err}");
    assert_eq!(
        pg.try_psql_tcp(
            "postgres",
            Some("pg-pass"),
            "shop",
            "SELECT count(*) FROM public.items"
        )
        .unwrap(),
        "10"
    );
    // The Unix socket stays trust: the harness's own psql keeps working.
    assert_eq!(
        pg.psql("shop", "SELECT count(*) FROM public.categories"),
        "5"
    );

    // A passfile (the way the PostgreSQL source is configured) works too,
    // and pg_dump against the URL fails cleanly without one.
    let tmp = tempfile::tempdir().unwrap();
    let passfile = tmp.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:*:postgres:pg-pass\n", pg.port()),
    )
    .unwrap();
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let dump = |passfile: &Path| {
        pg.client_command("pg_dump")
            .args(["--schema-only", "-w", "-d", &pg.url("shop")])
            .env("PGPASSFILE", passfile)
            .output()
            .unwrap()
    };
    let ok = dump(&passfile);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("CREATE TABLE public.items"));
    let bad = dump(&tmp.path().join("missing"));
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no password supplied"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn standby_replays_what_the_primary_writes() {
    let Some(primary) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&primary, "shop", 1_000);
    let t0 = Instant::now();
    let standby = PgCluster::start_standby_of(&primary);
    eprintln!(
        "standby started in {:?} (pg_basebackup + start {:?})",
        t0.elapsed(),
        standby.started_in()
    );
    assert_ne!(standby.port(), primary.port());
    assert_eq!(standby.major(), primary.major());
    assert_eq!(standby.psql("postgres", "SELECT pg_is_in_recovery()"), "t");
    assert_eq!(primary.psql("postgres", "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(
        standby.psql("shop", "SELECT count(*) FROM public.items"),
        "1000"
    );
    wait_until("the standby to connect", Duration::from_secs(30), || {
        primary.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        ) == "1"
    });

    primary.psql(
        "shop",
        "INSERT INTO audit.events (item_id, action, at) SELECT i, 'update', now() FROM generate_series(1, 50) i",
    );
    let t1 = Instant::now();
    standby.wait_replayed(&primary);
    eprintln!("standby replayed the insert in {:?}", t1.elapsed());
    assert_eq!(
        standby.psql("shop", "SELECT count(*) FROM audit.events"),
        "150"
    );
    // Same rows. Not the same sequence position: sequences WAL-log 32
    // values ahead, so a standby (or a crash-recovered server) reads up to
    // 32 past the primary. pg_dump/pg_restore copies the exact position.
    let tables_only = |f: String| f.lines().take(3).collect::<Vec<_>>().join("\n");
    assert_eq!(
        tables_only(sample_fingerprint(&standby, "shop")),
        tables_only(sample_fingerprint(&primary, "shop"))
    );
    // Read-only, and reachable over TCP like any server.
    let err = standby
        .try_psql("shop", "INSERT INTO public.categories VALUES (99, 'x')")
        .unwrap_err();
    assert!(err.contains("read-only transaction"), "{err}");
    assert_eq!(
        standby
            .try_psql_tcp("postgres", None, "shop", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "t"
    );
}

#[test]
fn other_major_cluster_reports_17() {
    let Some(bin17) = other_major_bin() else {
        return;
    };
    let t0 = Instant::now();
    let pg = PgCluster::start(&bin17);
    eprintln!("PostgreSQL 17 cluster started in {:?}", t0.elapsed());
    assert_eq!(pg.major(), 17);
    let num: u32 = pg
        .psql("postgres", "SHOW server_version_num")
        .parse()
        .unwrap();
    assert_eq!(num / 10_000, 17);
    let dump = pg
        .client_command("pg_dump")
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&dump.stdout);
    assert!(version.starts_with("pg_dump (PostgreSQL) 17."), "{version}");
    sample_schema(&pg, "shop", 100);
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM public.items"), "100");
}

#[test]
fn pg_dump_15_refuses_a_17_server() {
    let (Some(bin15), Some(bin17)) = (default_bin(), other_major_bin()) else {
        return;
    };
    let pg17 = PgCluster::start(&bin17);
    let mut dump15 = Command::new(bin15.join("pg_dump"));
    dump15
        .args(["--schema-only", "-w", "-d", &pg17.url("postgres")])
        .env("LC_ALL", "C.UTF-8");
    let out = dump15.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("server version mismatch"), "{stderr}");
    assert!(stderr.contains("server version: 17."), "{stderr}");
}

#[test]
fn pg_dump_17_dumps_a_15_server_and_restores_into_17() {
    let (Some(bin15), Some(bin17)) = (default_bin(), other_major_bin()) else {
        return;
    };
    let (pg15, pg17) = std::thread::scope(|s| {
        let a = s.spawn(|| PgCluster::start(&bin15));
        let b = s.spawn(|| PgCluster::start(&bin17));
        (a.join().unwrap(), b.join().unwrap())
    });
    if pg15.major() >= 17 {
        eprintln!("SKIPPED: LIFEBOAT_TEST_PG_BIN is not older than 17");
        return;
    }
    sample_schema(&pg15, "shop", 1_000);
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("shop.dump");
    let out = pg17
        .client_command("pg_dump")
        .args(["-Fc", "-w", "-d", &pg15.url("shop"), "-f"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    pg17.create_db("shop");
    let out = pg17
        .client_command("pg_restore")
        .args(["--exit-on-error", "-w", "-d", &pg17.url("shop")])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The fingerprint is stable across major versions.
    assert_eq!(
        sample_fingerprint(&pg17, "shop"),
        sample_fingerprint(&pg15, "shop")
    );
}
