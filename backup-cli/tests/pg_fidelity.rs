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

use lifeboat_tests::pg::{PgCluster, database_properties, sample_schema, table_contents};
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

/// Roles the database-level tests use (cluster-wide, so created once).
fn app_roles(pg: &PgCluster) {
    pg.psql(
        "postgres",
        "CREATE ROLE appowner NOLOGIN; CREATE ROLE reader NOLOGIN; CREATE ROLE r NOLOGIN;",
    );
}

/// A LATIN1 / C database with a non-default owner, a comment, a database
/// ACL, database and role-in-database settings, one of which
/// (`default_transaction_read_only`) would break a load that applied it
/// first.
fn app_database(pg: &PgCluster, db: &str) {
    let q = lifeboat_tests::pg::quote_ident(db);
    pg.psql(
        "postgres",
        &format!(
            "CREATE DATABASE {q} OWNER appowner ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
             COMMENT ON DATABASE {q} IS 'the app''s database: é';
             REVOKE ALL ON DATABASE {q} FROM PUBLIC;
             GRANT CONNECT ON DATABASE {q} TO reader;
             ALTER DATABASE {q} SET search_path = app, public;
             ALTER DATABASE {q} SET timezone = 'Asia/Tokyo';
             ALTER ROLE r IN DATABASE {q} SET work_mem = '8MB';"
        ),
    );
    pg.psql(
        db,
        "CREATE SCHEMA app AUTHORIZATION appowner;
         CREATE TABLE app.notes (id int PRIMARY KEY, body text, at timestamptz);
         INSERT INTO app.notes SELECT i, 'café n° ' || i, timestamptz '2024-01-01 00:00+00' + i * interval '1 hour'
         FROM generate_series(1, 200) i;
         ALTER TABLE app.notes OWNER TO appowner;",
    );
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {q} SET default_transaction_read_only = on"),
    );
}

/// What an application connecting to `db` sees of its settings.
fn session_view(pg: &PgCluster, db: &str) -> String {
    pg.psql(
        db,
        "SELECT current_setting('search_path') || ' | ' || current_setting('TimeZone') || ' | ' \
         || current_setting('default_transaction_read_only') || ' | ' || (SELECT count(*) FROM notes) \
         || ' | ' || (SELECT to_char(at, 'YYYY-MM-DD HH24:MI TZ') FROM notes WHERE id = 1)",
    )
}

#[test]
fn restores_keep_the_database_its_owner_locale_comment_acl_and_settings() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    app_roles(&pg);
    app_database(&pg, "app");
    // ICU: another collation order than C.
    pg.psql(
        "postgres",
        "CREATE DATABASE icu_app LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8' TEMPLATE template0",
    );
    pg.psql(
        "icu_app",
        "CREATE TABLE words (w text); INSERT INTO words VALUES ('zebra'), ('Äpfel'), ('apple'), ('Zoo'), ('ärger');",
    );
    let order = "SELECT string_agg(w, ',' ORDER BY w) FROM words";
    let icu_order = pg.psql("icu_app", order);
    assert_eq!(
        icu_order, "Äpfel,apple,ärger,zebra,Zoo",
        "ICU de-DE order, not C's"
    );

    let before = database_properties(&pg, "app");
    assert!(
        before.contains("encoding=LATIN1") && before.contains("owner=appowner"),
        "{before}"
    );
    let view = session_view(&pg, "app");
    assert_eq!(
        view,
        "app, public | Asia/Tokyo | on | 200 | 2024-01-01 10:00 JST"
    );

    let dir = tempfile::tempdir().unwrap();
    let url = pg.url("app").replace("/app", "/app,icu_app");
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &url, "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    let b = dir.path().join("b");
    let manifests: Vec<serde_json::Value> = all_files(&b)
        .into_iter()
        .filter(|p| p.ends_with("manifest.json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    let db_of = |name: &str| {
        manifests
            .iter()
            .find(|m| m["source"]["name"] == name)
            .map(|m| m["fingerprint"]["details"]["database"].clone())
            .unwrap()
    };
    assert_eq!(
        db_of("app"),
        serde_json::json!({"name": "app", "encoding": "LATIN1", "collate": "C", "ctype": "C",
                           "locale_provider": "libc", "owner": "appowner"})
    );
    let icu = db_of("icu_app");
    assert_eq!(icu["locale_provider"], "icu", "{icu}");
    assert_eq!(icu["icu_locale"], "de-DE", "{icu}");
    assert_eq!(icu["encoding"], "UTF8", "{icu}");

    // A drill restores the same way, and checks the properties too.
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "verify",
        "--from",
        "b",
        "--source",
        "app",
        "--drill-server",
        &pg.url("postgres"),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restore drill OK"), "{out}");

    // Under a new name: everything but the name comes back.
    let restore = |source: &str, to: &str, extra: &[&str]| {
        let mut cmd = lifeboat(dir.path());
        cmd.args([
            "restore",
            "--from",
            "b",
            "--source",
            source,
            "--to",
            &pg.url(to),
        ])
        .args(extra);
        run(&mut cmd)
    };
    let (code, _, err) = restore("app", "app_copy", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(database_properties(&pg, "app_copy"), before);
    assert_eq!(session_view(&pg, "app_copy"), view);
    assert_eq!(table_contents(&pg, "app_copy"), table_contents(&pg, "app"));

    // Over the same name, with --force.
    let (code, _, err) = restore("app", "app", &["--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(database_properties(&pg, "app"), before);
    assert_eq!(session_view(&pg, "app"), view);
    let left = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%lifeboat%'",
    );
    assert!(left.is_empty(), "staging or aside databases left: {left}");

    // ICU: the provider, its locale and so the order come back.
    let icu_before = database_properties(&pg, "icu_app");
    let (code, _, err) = restore("icu_app", "icu_copy", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(database_properties(&pg, "icu_copy"), icu_before);
    assert_eq!(pg.psql("icu_copy", order), icu_order);

    // --no-owner: no owner and no ACL from the archive; the rest stays.
    let (code, _, err) = restore("app", "app_plain", &["--no-owner"]);
    assert_eq!(code, 0, "{err}");
    let plain = database_properties(&pg, "app_plain");
    assert!(
        plain.contains("owner=postgres") && plain.contains("acl=-"),
        "{plain}"
    );
    assert!(
        plain.contains("encoding=LATIN1") && plain.contains("comment=the app's database: é"),
        "{plain}"
    );
    assert!(plain.contains("search_path=app, public"), "{plain}");
    assert_eq!(session_view(&pg, "app_plain"), view);
}

#[test]
fn a_server_without_the_backups_locale_is_refused_before_any_data_is_loaded() {
    let Some(bin) = lifeboat_tests::pg::default_bin() else {
        return;
    };
    // A source server that has a locale this machine does not.
    let locales = tempfile::tempdir().unwrap();
    std::fs::set_permissions(locales.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let made = std::process::Command::new("localedef")
        .args(["-i", "de_DE", "-f", "ISO-8859-1"])
        .arg(locales.path().join("de_DE.ISO-8859-1"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        assert!(
            !lifeboat_tests::support::servers_required(),
            "localedef cannot build de_DE.ISO-8859-1: install Debian's locales package (scripts/test does)"
        );
        eprintln!("SKIPPED: localedef cannot build de_DE.ISO-8859-1 (Debian package locales)");
        return;
    }
    let locpath = locales.path().display().to_string();
    let source = PgCluster::start_with_env(&bin, "", &[("LOCPATH", &locpath)]);
    source.psql(
        "postgres",
        "CREATE DATABASE de ENCODING 'LATIN1' LOCALE 'de_DE.ISO-8859-1' TEMPLATE template0",
    );
    source.psql(
        "de",
        "CREATE TABLE t (w text); INSERT INTO t VALUES ('Straße')",
    );
    let target = PgCluster::start(&bin);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &source.url("de"), "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["restore", "--from", "b", "--to", &target.url("de")]));
    assert_eq!(code, 5, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("cannot create the database as the backup had it")
            && line.contains("de_DE.ISO-8859-1"),
        "{line}"
    );
    assert!(
        !err.contains("pg_restore done"),
        "no data may be loaded: {err}"
    );
    let dbs = target.psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')",
    );
    assert!(dbs.is_empty(), "nothing created on the target: {dbs}");
}

fn zstd_decode(data: &[u8]) -> Vec<u8> {
    let out = std::process::Command::new("zstd")
        .args(["-d", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .expect("zstd CLI (scripts/test installs it)");
    out.stdout
}

fn rolpassword(pg: &PgCluster, role: &str) -> String {
    pg.psql(
        "postgres",
        &format!(
            "SELECT coalesce(rolpassword, '-') FROM pg_authid WHERE rolname = {}",
            lifeboat_tests::pg::quote_literal(role)
        ),
    )
}

#[test]
fn globals_create_the_missing_roles_and_leave_existing_ones_alone() {
    let Some(source) = PgCluster::start_default() else {
        return;
    };
    let ts_dir = tempfile::tempdir().unwrap();
    lifeboat_tests::pg::chown_to_server_user(ts_dir.path());
    source.psql(
        "postgres",
        &format!(
            "CREATE ROLE appowner LOGIN PASSWORD 'owner-pw';
             CREATE ROLE reader LOGIN PASSWORD 'reader-pw';
             CREATE ROLE grp NOLOGIN;
             CREATE ROLE \"Weird \"\"Role\"\"\" NOLOGIN CONNECTION LIMIT 3;
             COMMENT ON ROLE grp IS 'a group; with a semicolon';
             GRANT grp TO reader;
             GRANT grp TO \"Weird \"\"Role\"\"\" WITH ADMIN OPTION;
             ALTER ROLE appowner SET statement_timeout = '5s';
             CREATE TABLESPACE spare LOCATION '{}';",
            ts_dir.path().display()
        ),
    );
    sample_schema(&source, "shop", 100);
    source.psql(
        "shop",
        "ALTER TABLE public.items OWNER TO appowner; GRANT SELECT ON public.items TO reader;",
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["backup", &source.url("shop"), "--to", "b", "--globals"]));
    assert_eq!(code, 0, "{err}");
    let m = manifest(&dir.path().join("b"));
    assert_eq!(
        m["fingerprint"]["details"]["globals"]["role_passwords"], true,
        "{m}"
    );
    let owner_pw = rolpassword(&source, "appowner");
    // The tablespace's directory is free again for the other cluster.
    source.psql("postgres", "DROP TABLESPACE spare");

    let target = PgCluster::start(&pg15_bin());
    // An existing role with other attributes and another password.
    target.psql(
        "postgres",
        "CREATE ROLE reader LOGIN CREATEDB PASSWORD 'other-pw'",
    );
    let reader_before = target.psql(
        "postgres",
        "SELECT rolcreatedb::text || rolpassword FROM pg_authid WHERE rolname = 'reader'",
    );

    // Without --globals: refused before anything is created, naming the roles.
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["restore", "--from", "b", "--to", &target.url("shop")]));
    assert_eq!(code, 5, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("needs roles this server does not have: appowner;")
            && line.contains("--globals")
            && line.contains("--no-owner"),
        "{line}"
    );
    let dbs = target.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop%'",
    );
    assert_eq!(dbs, "0");

    // A drill on that server creates no roles: it fails, naming them.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "verify",
        "--from",
        "b",
        "--drill-server",
        &target.url("postgres"),
    ]));
    assert_eq!(code, 4, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("appowner") && line.contains("--drill-cluster"),
        "{line}"
    );
    // A throwaway cluster gets the stored roles.
    let (code, out, err) =
        run(lifeboat(dir.path()).args(["verify", "--from", "b", "--drill-cluster"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restore drill OK"), "{out}");
    let evidence = all_files(&dir.path().join("b"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/drills/"))
        .map(|p| serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap())
        .find(|e| e["passed"] == true)
        .expect("evidence of the passed drill");
    assert!(
        evidence["roles_created"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("appowner")),
        "{evidence}"
    );

    let (code, out, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &target.url("shop"),
        "--globals",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    let g = &out["globals"];
    let names = |v: &serde_json::Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&g["roles_created"]),
        vec!["Weird \"Role\"", "appowner", "grp"],
        "{g}"
    );
    assert_eq!(
        names(&g["roles_skipped"]),
        vec!["postgres", "reader"],
        "{g}"
    );
    assert_eq!(names(&g["tablespaces_created"]), vec!["spare"], "{g}");
    assert_eq!(g["errors"], serde_json::json!([]), "{g}");
    assert!(err.contains("left as they are"), "{err}");
    // Created as they were: password, setting, comment, new members.
    assert_eq!(rolpassword(&target, "appowner"), owner_pw);
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'appowner'"
        ),
        "statement_timeout=5s"
    );
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT rolconnlimit || ' ' || pg_has_role('Weird \"Role\"', 'grp', 'MEMBER') FROM pg_roles WHERE rolname = 'Weird \"Role\"'"
        ),
        "3 true"
    );
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT shobj_description('grp'::regrole, 'pg_authid')"
        ),
        "a group; with a semicolon"
    );
    // The existing role is untouched: attributes, password, memberships.
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT rolcreatedb::text || rolpassword FROM pg_authid WHERE rolname = 'reader'"
        ),
        reader_before
    );
    assert_eq!(
        target.psql("postgres", "SELECT pg_has_role('reader', 'grp', 'MEMBER')"),
        "f"
    );
    // And the data came with its owner and grants.
    assert_eq!(
        target.psql(
            "shop",
            "SELECT tableowner || ' ' || has_table_privilege('reader', 'public.items', 'SELECT') FROM pg_tables WHERE tablename = 'items'"
        ),
        "appowner true"
    );
    assert_eq!(
        table_contents(&source, "shop"),
        table_contents(&target, "shop")
    );
}

#[test]
fn a_backup_with_globals_by_a_role_that_cannot_read_passwords_warns_and_drops_them() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 100);
    pg.psql(
        "shop",
        "CREATE ROLE backup_user LOGIN;
         CREATE ROLE app LOGIN PASSWORD 'app-pw';
         GRANT USAGE ON SCHEMA audit TO backup_user;
         GRANT SELECT ON ALL TABLES IN SCHEMA public, audit TO backup_user;
         GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, audit TO backup_user;",
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url_as("backup_user", "shop"),
        "--to",
        "b",
        "--globals",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("WARN") && err.contains("--no-role-passwords"),
        "{err}"
    );
    let m = manifest(&dir.path().join("b"));
    let g = &m["fingerprint"]["details"]["globals"];
    assert_eq!(g["role_passwords"], false, "{m}");
    assert!(
        g["warning"].as_str().unwrap().contains("permission denied"),
        "{g}"
    );
    let stored = all_files(&dir.path().join("b"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("globals.sql.zst"))
        .unwrap();
    let sql = String::from_utf8(zstd_decode(&std::fs::read(stored).unwrap())).unwrap();
    assert!(
        sql.starts_with("-- lifeboat: dumped with --no-role-passwords"),
        "{sql}"
    );
    assert!(
        sql.contains("CREATE ROLE app;") && !sql.contains("PASSWORD"),
        "{sql}"
    );

    // Those roles come back, without passwords, and the output says so.
    let target = PgCluster::start(&pg15_bin());
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &target.url("shop"),
        "--globals",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["globals"]["without_passwords"], true, "{out}");
    assert_eq!(rolpassword(&target, "app"), "-");
}

#[test]
fn a_restored_database_is_analyzed_before_it_takes_the_name() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 2000);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &pg.url("shop"), "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    let stats = |db: &str| {
        pg.psql(
            db,
            "SELECT (SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'items') \
             || ' ' || (SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relid = 'public.items'::regclass)",
        )
    };
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &pg.url("shop_copy"),
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["analyzed"], true, "{out}");
    assert!(out["analyze_ms"].as_u64().is_some(), "{out}");
    assert!(err.contains("analyzed=true"), "the summary says so: {err}");
    assert_eq!(
        stats("shop_copy"),
        "12 true",
        "planner statistics for every column of items"
    );

    let (code, out, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &pg.url("shop_raw"),
        "--no-analyze",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("not analyzed"), "{out}");
    assert_eq!(stats("shop_raw"), "0 false");
}

/// pg_dump restores with an empty search_path: a CHECK constraint calling
/// a SQL function that names a table without its schema fails the COPY of
/// the table it guards.
fn unqualified_check(pg: &PgCluster, db: &str) {
    pg.create_db(db);
    pg.psql(
        db,
        "CREATE TABLE public.allowed_codes (code text PRIMARY KEY);
         INSERT INTO public.allowed_codes VALUES ('a'), ('b');
         CREATE FUNCTION public.code_ok(c text) RETURNS boolean LANGUAGE sql STABLE
           AS $$ SELECT EXISTS (SELECT 1 FROM allowed_codes WHERE code = c) $$;
         CREATE TABLE public.orders (id int PRIMARY KEY, code text CHECK (public.code_ok(code)));
         INSERT INTO public.orders VALUES (1, 'a'), (2, 'b'), (3, 'a');
         CREATE TABLE public.notes (id int PRIMARY KEY, body text);
         INSERT INTO public.notes SELECT i, 'note ' || i FROM generate_series(1, 50) i;",
    );
}

#[test]
fn partial_restores_recover_what_loads_and_list_what_did_not() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    unqualified_check(&pg, "shop");
    let dir = tempfile::tempdir().unwrap();
    // "Verified" means restorable: the default restore drill finds that this
    // archive does not load cleanly. The backup is committed (its data
    // matches the snapshot) but listed as failed, never as verified.
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &pg.url("shop"), "--to", "b"]));
    assert_eq!(code, 4, "{err}");
    assert!(error_line(&err).contains("allowed_codes"), "{err}");
    let (code, listed, _) = run(lifeboat(dir.path()).args(["list", "--from", "b"]));
    assert_eq!(code, 0);
    assert!(listed.contains("FAILED"), "{listed}");
    let (code, out, _) = run(lifeboat(dir.path()).args(["status", "--from", "b"]));
    assert_eq!(code, 6, "{out}");
    // The target holds something that must survive a failed restore.
    pg.create_db("target");
    pg.psql(
        "target",
        "CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42);",
    );

    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &pg.url("target"),
        "--force",
    ]));
    assert_eq!(code, 5, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("allowed_codes") && line.contains("--partial"),
        "{line}"
    );
    assert_eq!(
        pg.psql("target", "SELECT x FROM keep_me"),
        "42",
        "target untouched"
    );
    let left = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%lifeboat%'",
    );
    assert!(left.is_empty(), "{left}");

    let (code, out, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &pg.url("target"),
        "--force",
        "--partial",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["partial"], true, "{out}");
    let errors = out["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| {
            let e = e.as_str().unwrap();
            e.contains("orders") && e.contains("allowed_codes")
        }),
        "{out}"
    );
    assert_eq!(
        out["tables_differing"],
        serde_json::json!(["table public.orders has 0 rows, expected 3"]),
        "{out}"
    );
    assert!(err.contains("result=\"partial\""), "{err}");
    assert!(
        err.contains("WARN") && err.contains("allowed_codes"),
        "errors logged: {err}"
    );
    // Everything that loads is there, under the target name.
    assert_eq!(
        pg.psql(
            "target",
            "SELECT (SELECT count(*) FROM allowed_codes) || ' ' || (SELECT count(*) FROM notes) || ' ' || (SELECT count(*) FROM orders)"
        ),
        "2 50 0"
    );
    assert!(pg.try_psql("target", "SELECT 1 FROM keep_me").is_err());

    // The text output says it is not the whole backup.
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &pg.url("target2"),
        "--partial",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("NOT all of the backup") && out.contains("PARTIAL RESTORE"),
        "{out}"
    );
}

#[test]
fn a_restore_killed_mid_load_leaves_databases_the_next_run_cleans_up() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 60_000);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &pg.url("shop"), "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    // Mark the moment pg_restore starts loading data, then let it run.
    let marker = dir.path().join("loading");
    let bin = pg15_bin();
    let wrapper = script(
        dir.path(),
        "mark",
        &format!(
            "tool=$1; shift\n\
             if [[ \"$tool\" == pg_restore && \" $* \" == *\" --dbname=\"* ]]; then touch {}; fi\n\
             exec {}/$tool \"$@\"",
            marker.display(),
            bin.display()
        ),
    );
    let mut restore = lifeboat(dir.path())
        .args([
            "restore",
            "--from",
            "b",
            "--to",
            &pg.url("shop_copy"),
            "--command-prefix",
            &wrapper.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the restore never started loading"
        );
        assert!(
            restore.try_wait().unwrap().is_none(),
            "the restore ended early"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    restore.kill().unwrap(); // SIGKILL: no cleanup can run
    restore.wait().unwrap();
    let staging = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop_copy\\_\\_lifeboat\\_restore\\_%'",
    );
    assert_eq!(staging, "1", "the killed restore left its staging database");

    // What other killed runs would leave: a database moved aside whose name
    // is free again, one whose name was taken by the restored copy, and the
    // staging database of a run that is still alive.
    pg.create_db("app__lifeboat_old_0badc0de");
    pg.psql(
        "app__lifeboat_old_0badc0de",
        "CREATE TABLE precious (x int); INSERT INTO precious VALUES (7);",
    );
    pg.create_db("shop__lifeboat_old_00c0ffee");
    pg.create_db("live__lifeboat_restore_1234abcd");
    pg.create_db("lifeboat_drill_0000beef");
    let live = pg.session(
        "postgres",
        "SELECT pg_advisory_lock(hashtextextended('lifeboat:' || 'live__lifeboat_restore_1234abcd', 0));",
    );

    // `list --json` reports them (those of dead runs only) on the configured
    // source's server, touching nothing.
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        format!("source = \"{}\"\nsink = \"b\"\n", pg.url("shop")),
    )
    .unwrap();
    let (code, out, err) = run(lifeboat(dir.path()).args(["list", "--json"]));
    assert_eq!(code, 0, "{err}");
    let l: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut reported: Vec<&str> = l["leftovers"]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    reported.sort();
    assert_eq!(reported.len(), 4, "{reported:?}");
    assert!(
        !reported.contains(&"live__lifeboat_restore_1234abcd"),
        "{reported:?}"
    );
    assert!(
        reported
            .iter()
            .any(|d| d.starts_with("shop_copy__lifeboat_restore_")),
        "{reported:?}"
    );
    std::fs::remove_file(dir.path().join("lifeboat.toml")).unwrap();

    let (code, out, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &pg.url("shop_copy"),
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cleaned: Vec<&str> = out["leftovers_cleaned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cleaned.len(), 4, "{cleaned:?}");
    assert!(
        cleaned
            .iter()
            .any(|c| c.starts_with("renamed app__lifeboat_old_0badc0de back to app")),
        "{cleaned:?}"
    );
    assert!(
        err.contains("WARN") && err.contains("dropped shop_copy__lifeboat_restore_"),
        "logged: {err}"
    );
    assert_eq!(pg.psql("app", "SELECT x FROM precious"), "7");
    let dbs = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE '%lifeboat%'",
    );
    assert_eq!(
        dbs, "live__lifeboat_restore_1234abcd",
        "a live run's database stays"
    );
    assert_eq!(
        table_contents(&pg, "shop"),
        table_contents(&pg, "shop_copy")
    );
    live.close();
}

#[test]
fn sequences_and_large_objects_are_fingerprinted_and_checked_at_restore_and_drill() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 300);
    pg.psql(
        "shop",
        "CREATE SEQUENCE public.fresh;
         CREATE SEQUENCE public.countdown INCREMENT BY -1 MINVALUE -100 MAXVALUE 0 START 0;
         SELECT nextval('public.countdown'), nextval('public.countdown'), nextval('public.countdown');
         CREATE TABLE public.tickets (id int GENERATED ALWAYS AS IDENTITY, t text);
         INSERT INTO public.tickets (t) SELECT 'x' FROM generate_series(1, 7);
         SELECT lo_from_bytea(0, convert_to(repeat('blob ', 10000), 'UTF8'));
         SELECT lo_from_bytea(0, '\\x00ff'::bytea);
         SELECT lo_create(0);",
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lifeboat(dir.path()).args(["backup", &pg.url("shop"), "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pg-rows:pass"), "{out}");
    let m = manifest(&dir.path().join("b"));
    let d = &m["fingerprint"]["details"];
    assert_eq!(d["large_objects"], 3, "{d}");
    let seqs = &d["sequences"];
    assert_eq!(
        seqs["audit.events_id_seq"],
        serde_json::json!({"last_value": 30, "is_called": true}),
        "{seqs}"
    );
    assert_eq!(
        seqs["public.fresh"],
        serde_json::json!({"last_value": 1, "is_called": false}),
        "{seqs}"
    );
    assert_eq!(
        seqs["public.countdown"],
        serde_json::json!({"last_value": -2, "is_called": true}),
        "{seqs}"
    );
    assert_eq!(
        seqs["public.tickets_id_seq"],
        serde_json::json!({"last_value": 7, "is_called": true}),
        "{seqs}"
    );
    let rows = m["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["verifier"] == "pg-rows")
        .unwrap()
        .clone();
    assert!(
        rows["detail"]
            .as_str()
            .unwrap()
            .contains("its 3 large objects"),
        "{rows}"
    );

    let (code, _, err) =
        run(lifeboat(dir.path()).args(["restore", "--from", "b", "--to", &pg.url("shop_copy")]));
    assert_eq!(code, 0, "{err}");
    let objects = |db: &str| {
        pg.psql(
            db,
            "SELECT (SELECT count(*) FROM pg_largeobject_metadata) || ' ' || \
             (SELECT last_value || '/' || is_called FROM public.countdown) || ' ' || \
             (SELECT last_value || '/' || is_called FROM public.fresh)",
        )
    };
    assert_eq!(objects("shop_copy"), objects("shop"));

    // A backup whose restore does not bring these back fails like a row count.
    let mpath = all_files(&dir.path().join("b"))
        .into_iter()
        .find(|p| p.ends_with("manifest.json"))
        .unwrap();
    let mut edited = m.clone();
    edited["fingerprint"]["details"]["sequences"]["public.countdown"]["last_value"] = (-3).into();
    edited["fingerprint"]["details"]["large_objects"] = 4.into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["restore", "--from", "b", "--to", &pg.url("shop_other")]));
    assert_eq!(code, 5, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("sequence public.countdown is at -2 (is_called true), expected -3")
            && line.contains("3 large objects, expected 4"),
        "{line}"
    );
    assert!(
        pg.try_psql("shop_other", "SELECT 1").is_err(),
        "nothing restored"
    );
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "verify",
        "--from",
        "b",
        "--drill-server",
        &pg.url("postgres"),
    ]));
    assert_eq!(code, 4, "{err}");
    assert!(
        error_line(&err).contains("sequence public.countdown"),
        "{err}"
    );
}

#[test]
fn the_new_restore_options_reach_the_core_through_the_bindings_door() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 50);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("shop"),
        "--to",
        "b",
        "--globals",
        "--lock-wait",
        "30s",
    ]));
    assert_eq!(code, 0, "{err}");
    let sink = dir.path().join("b").display().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The JSON options the Node and Python packages send, with the
    // PostgreSQL restore options; the same structs as the command line.
    let r = rt
        .block_on(backup_core::ops::json::call(
            "restore",
            serde_json::json!({
                "sink": sink,
                "target": pg.url("shop_copy"),
                "lock_dir": dir.path(),
                "globals": true,
                "partial": true,
                "no_analyze": true,
            }),
            None,
        ))
        .unwrap();
    assert_eq!(r["analyzed"], false, "{r}");
    assert_eq!(r["partial"], true, "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    assert!(
        r["globals"]["roles_skipped"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("postgres")),
        "{r}"
    );
    let err = rt
        .block_on(backup_core::ops::json::call(
            "backup",
            serde_json::json!({"source": pg.url("shop"), "sink": sink, "lock_wait": "100000h"}),
            None,
        ))
        .unwrap_err();
    assert_eq!(err.kind(), backup_core::ErrorKind::Usage, "{err}");
    // A backup's option is not a restore's: refused, not ignored.
    let err = rt
        .block_on(backup_core::ops::json::call(
            "restore",
            serde_json::json!({"sink": sink, "target": pg.url("shop_copy2"), "lock_wait": 30}),
            None,
        ))
        .unwrap_err();
    assert_eq!(err.kind(), backup_core::ErrorKind::Usage, "{err}");
}

#[test]
fn the_database_comes_back_on_a_newer_server_and_icu_is_refused_where_the_server_lacks_it() {
    let Some(pg17) = lifeboat_tests::pg::other_major_bin() else {
        return;
    };
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    app_roles(&pg);
    app_database(&pg, "app");
    pg.psql(
        "postgres",
        "CREATE DATABASE icu_app LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8' TEMPLATE template0",
    );
    pg.psql(
        "icu_app",
        "CREATE TABLE words (w text); INSERT INTO words VALUES ('b'), ('a');",
    );
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url("app").replace("/app", "/app,icu_app");
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &url, "--to", "b"]));
    assert_eq!(code, 0, "{err}");

    let newer = PgCluster::start(&pg17);
    app_roles(&newer);
    let bin17 = pg17.display().to_string();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--source",
        "app",
        "--to",
        &newer.url("app"),
        "--pg-bin-dir",
        &bin17,
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        database_properties(&newer, "app"),
        database_properties(&pg, "app")
    );
    assert_eq!(session_view(&newer, "app"), session_view(&pg, "app"));

    // This PostgreSQL 17 build has no ICU: refused before any data, saying why.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--source",
        "icu_app",
        "--to",
        &newer.url("icu_app"),
        "--pg-bin-dir",
        &bin17,
    ]));
    assert_eq!(code, 5, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("cannot create the database as the backup had it") && line.contains("ICU"),
        "{line}"
    );
    assert!(newer.try_psql("icu_app", "SELECT 1").is_err());
}

/// The bucket explains itself: a PostgreSQL backup with its globals
/// restores into a fresh server by following `storage.manual_restore` with
/// standard tools only (cp, sha256sum, zstd, psql, pg_restore --create), and
/// the database comes back with its owner, locale, comment, ACL and settings,
/// `default_transaction_read_only = on` included (which breaks a plain
/// `pg_restore --create`: the steps keep its sessions writable).
#[test]
fn a_postgres_backup_restores_by_hand_from_its_manifest() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    app_roles(&pg);
    app_database(&pg, "shop");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("shop"),
        "--to",
        "b",
        "--globals",
        "--no-drill",
    ]));
    assert_eq!(code, 0, "{err}");
    let m = manifest(&dir.path().join("b"));
    let steps: Vec<String> = m["storage"]["manual_restore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(
        steps
            .iter()
            .any(|s| s.contains("psql -d postgres -f globals.sql")),
        "{steps:#?}"
    );
    let create = steps
        .iter()
        .position(|s| s.contains("pg_restore --create"))
        .unwrap();
    let roles = steps
        .iter()
        .position(|s| s.contains("globals.sql"))
        .unwrap();
    assert!(roles < create, "roles before the database: {steps:#?}");

    let fresh = PgCluster::start(&pg15_bin());
    let work = tempfile::tempdir().unwrap();
    let sh = |cmd: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .current_dir(work.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    pg15_bin().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("PGHOST", fresh.socket_dir())
            .env("PGPORT", fresh.port().to_string())
            .env("PGUSER", "postgres")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for step in &steps {
        // Each step is a sentence ending in its command.
        let Some((_, cmd)) = step.rsplit_once(": ") else {
            continue;
        };
        let cmd = cmd.split(" (").next().unwrap();
        if let Some(args) = cmd.strip_prefix("sha256sum ") {
            let (file, rest) = args.split_once(" must print ").unwrap();
            let (ok, out, err) = sh(&format!("sha256sum {file}"));
            assert!(ok, "{err}");
            assert!(
                out.starts_with(rest.split(' ').next().unwrap()),
                "{out} vs {step}"
            );
        } else if cmd.starts_with("cp ") || cmd.starts_with("zstd ") || cmd.contains("; zstd ") {
            let (ok, _, err) = sh(cmd);
            assert!(ok, "{cmd}: {err}");
        } else if cmd.starts_with("psql ") {
            // Errors for roles that exist (postgres) are expected.
            sh(cmd);
        } else if cmd.contains("pg_restore --create") {
            let (ok, _, err) = sh(cmd);
            assert!(ok, "{cmd}: {err}");
        }
    }
    assert_eq!(
        table_contents(&fresh, "shop"),
        table_contents(&pg, "shop"),
        "the data came back"
    );
    assert_eq!(
        database_properties(&fresh, "shop"),
        database_properties(&pg, "shop"),
        "owner, locale, comment, ACL and settings came back"
    );
}
