//! PostgreSQL through the `lifeboat` binary, on ephemeral clusters: round
//! trips, exact fingerprints, version safety, secrets, drills, bad input.

mod common;

use common::{error_line, lifeboat, run};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat_tests::pg::{PgCluster, other_major_bin, sample_fingerprint, sample_schema};
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
fn backup_verify_restore_round_trip_preserves_every_row() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 3000);
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lifeboat(dir.path()).args(["backup", &pg.url("shop"), "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pg-toc:pass"), "{out}");
    assert!(out.contains("pg-rows:pass"), "{out}");
    let m = manifest(&dir.path().join("b"));
    assert_eq!(
        table_rows(&m),
        vec![
            ("audit.events".into(), 300),
            ("public.categories".into(), 5),
            ("public.items".into(), 3000)
        ]
    );
    let d = &m["fingerprint"]["details"];
    assert_eq!(d["server_major"], pg.major());
    assert!(
        d["pg_dump_version"]
            .as_str()
            .unwrap()
            .starts_with(&pg.major().to_string())
    );
    assert_eq!(m["source"]["kind"], "postgres");
    // The archive's row chunks were merged, and it holds the counted rows.
    assert_eq!(d["archive"]["chunks_merged"], true, "{d}");
    assert!(
        d["archive"]["chunks_out"].as_u64().unwrap() * 10
            < d["archive"]["chunks_in"].as_u64().unwrap()
    );
    let rows = m["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["verifier"] == "pg-rows")
        .expect("a pg-rows verdict");
    assert_eq!(rows["passed"], true);
    assert!(
        rows["detail"].as_str().unwrap().contains("3 tables"),
        "{rows}"
    );

    let (code, out, err) = run(lifeboat(dir.path()).args(["verify", "--from", "b", "--latest"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pg-toc") && out.contains("3 tables"), "{out}");

    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--latest",
        "--to",
        &pg.url("shop_copy"),
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sample_fingerprint(&pg, "shop"),
        sample_fingerprint(&pg, "shop_copy")
    );

    // Replacing needs --force, and the replaced database is gone afterwards.
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["restore", "--from", "b", "--to", &pg.url("shop_copy")]));
    assert_eq!(code, 5, "{err}");
    assert!(error_line(&err).contains("--force"), "{err}");
    pg.psql("shop_copy", "DELETE FROM audit.events");
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--to",
        &pg.url("shop_copy"),
        "--force",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sample_fingerprint(&pg, "shop"),
        sample_fingerprint(&pg, "shop_copy")
    );
    let dbs = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%lifeboat%'",
    );
    assert!(dbs.is_empty(), "staging or aside databases left: {dbs}");
}

#[test]
fn fingerprint_counts_match_the_dump_while_writers_commit() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "busy", 20_000);
    let dir = tempfile::tempdir().unwrap();
    // A writer commits batches of 100 rows throughout the backup.
    let url = pg.url("busy");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let psql = pg.bin_dir().join("psql");
    let writer = std::thread::spawn(move || {
        let mut batches = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let ok = Command::new(&psql)
                .args(["-X", "-q", "-d", &url, "-c"])
                .arg("INSERT INTO audit.events (item_id, action, at) SELECT g, 'update', now() FROM generate_series(1,100) g")
                .status()
                .unwrap()
                .success();
            assert!(ok);
            batches += 1;
        }
        batches
    });
    std::thread::sleep(Duration::from_millis(200));
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &pg.url("busy"), "--to", "b"]));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = writer.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(batches > 1, "the writer ran during the backup");
    let m = manifest(&dir.path().join("b"));
    let events = table_rows(&m)
        .into_iter()
        .find(|(n, _)| n == "audit.events")
        .unwrap()
        .1;
    assert_eq!(
        (events - 2000) % 100,
        0,
        "counts from a torn snapshot: {events}"
    );
    // The restore re-counts every table and refuses a mismatch with the fingerprint.
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["restore", "--from", "b", "--to", &pg.url("busy_copy")]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        pg.psql("busy_copy", "SELECT count(*) FROM audit.events"),
        events.to_string()
    );
}

#[test]
fn exclusions_are_honoured_and_recorded_and_globals_are_stored() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 100);
    pg.psql("postgres", "CREATE ROLE lifeboat_reporter NOLOGIN");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("shop"),
        "--to",
        "b",
        "--exclude-schema",
        "audit",
        "--exclude-table",
        "public.categor*",
        "--globals",
    ]));
    // `items` references the excluded `categories`: the dump cannot be
    // restored cleanly, and the default restore drill says so. The backup
    // is committed (its data matches the snapshot), but not verified.
    assert_eq!(code, 4, "{err}");
    assert!(
        error_line(&err).contains("pg-drill") && error_line(&err).contains("public.categories"),
        "{err}"
    );
    let m = manifest(&dir.path().join("b"));
    assert!(
        m["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["verifier"] == "pg-drill" && v["passed"] == false),
        "the failed drill is in the manifest"
    );
    assert_eq!(table_rows(&m), vec![("public.items".to_string(), 100)]);
    let excluded = &m["fingerprint"]["details"]["excluded"];
    assert_eq!(excluded["schemas"], serde_json::json!(["audit"]));
    assert_eq!(excluded["tables"], serde_json::json!(["public.categor*"]));
    let globals = all_files(&dir.path().join("b"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("globals.sql.zst"))
        .expect("globals stored beside the dump");
    let sql = String::from_utf8(zstd_decode(&std::fs::read(globals).unwrap())).unwrap();
    assert!(sql.contains("CREATE ROLE lifeboat_reporter"), "{sql}");
    assert_eq!(m["attachments"][0]["name"], "globals");
}

fn zstd_decode(data: &[u8]) -> Vec<u8> {
    let out = Command::new("zstd")
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

#[test]
fn several_databases_back_up_in_one_run() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "one", 50);
    sample_schema(&pg, "two", 70);
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url("one").replace("/one", "/one,two");
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &url, "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(lifeboat(dir.path()).args(["list", "--from", "b"]));
    assert_eq!(code, 0);
    assert!(out.contains("one ") && out.contains("two "), "{out}");
}

#[test]
fn the_password_reaches_pg_dump_only_through_a_private_passfile() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 100);
    let secret = "Sup3r-secret-pw";
    pg.psql(
        "shop",
        "CREATE ROLE backup_user LOGIN; GRANT pg_read_all_data TO backup_user;",
    );
    pg.require_password("backup_user", secret);
    let dir = tempfile::tempdir().unwrap();
    // The command prefix records what each tool sees, then runs it.
    let log = dir.path().join("seen.log");
    let bin = pg15_bin();
    // Like `docker exec -i db`: the prefix gets the tool name and its arguments.
    let wrapper = script(
        dir.path(),
        "spy",
        &format!(
            "{{ echo \"ARGV: $*\"; echo \"PGPASSWORD=${{PGPASSWORD:-unset}}\"; \
               [ -n \"$PGPASSFILE\" ] && stat -c 'PASSFILE_MODE=%a' \"$PGPASSFILE\"; }} >> {log}\n\
             tool=$1; shift; exec {bin}/$tool \"$@\"",
            log = log.display(),
            bin = bin.display()
        ),
    );
    let url = pg
        .url_as("backup_user", "shop")
        .replace("backup_user@", &format!("backup_user:{secret}@"));
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "-v",
        "backup",
        &url,
        "--to",
        "b",
        "--command-prefix",
        &wrapper.display().to_string(),
    ]));
    let seen = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "{err}\n{seen}");
    assert!(seen.contains("pg_dump"), "{seen}");
    assert!(
        !seen.contains(secret),
        "password on a command line or in the environment: {seen}"
    );
    assert!(seen.contains("PGPASSWORD=unset"), "{seen}");
    assert!(seen.contains("PASSFILE_MODE=600"), "{seen}");
    assert!(
        !err.contains(secret) && !out.contains(secret),
        "password in the output"
    );
    let m = std::fs::read_to_string(
        all_files(&dir.path().join("b"))
            .into_iter()
            .find(|p| p.ends_with("manifest.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(!m.contains(secret), "password in the manifest");
}

#[test]
fn wrong_password_unreachable_server_and_missing_database_exit_2() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    pg.require_password("postgres", "right-password");
    let dir = tempfile::tempdir().unwrap();
    let wrong = pg
        .url("postgres")
        .replace("postgres@", "postgres:wrong-password@");
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &wrong, "--to", "b"]));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("authentication failed"), "{err}");
    assert!(!err.contains("wrong-password"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        "--to",
        "b",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("unreachable"), "{err}");

    let missing = pg
        .url("nosuchdb")
        .replace("postgres@", "postgres:right-password@");
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup", &missing, "--to", "b"]));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("does not exist"), "{err}");
    assert!(all_files(&dir.path().join("b")).is_empty());
}

#[test]
fn pg_dump_killed_midway_leaves_no_backup() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "big", 50_000);
    let dir = tempfile::tempdir().unwrap();
    let bin = pg15_bin();
    // Versions pass through; a dump dies of SIGPIPE after its first 200 kB.
    let killer = script(
        dir.path(),
        "killer",
        &format!(
            "tool=$1; shift\n\
             if [[ \" $* \" == *\" --version \"* || \"$tool\" != pg_dump ]]; then exec {bin}/$tool \"$@\"; fi\n\
             set -o pipefail\n\
             {bin}/$tool \"$@\" | head -c 200000",
            bin = bin.display()
        ),
    );
    let prefix = killer.display().to_string();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("big"),
        "--to",
        "b",
        "--command-prefix",
        &prefix,
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("pg_dump"), "{err}");
    let left = all_files(&dir.path().join("b"));
    assert!(left.is_empty(), "visible after a killed dump: {left:?}");
}

#[test]
fn an_older_pg_dump_is_refused_before_upload_and_a_newer_one_works() {
    let Some(pg17) = other_major_bin() else {
        return;
    };
    let Some(pg15) = PgCluster::start_default() else {
        return;
    };
    let new_server = PgCluster::start(&pg17);
    sample_schema(&new_server, "shop", 100);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &new_server.url("shop"),
        "--to",
        "b",
        "--pg-bin-dir",
        &pg15_bin().display().to_string(),
    ]));
    assert_eq!(code, 2, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("17.") && line.contains("15."),
        "both versions named: {line}"
    );
    assert!(
        all_files(&dir.path().join("b")).is_empty(),
        "nothing uploaded"
    );

    // pg_dump 17 against the 15 server works, and the manifest says so.
    sample_schema(&pg15, "old", 100);
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg15.url("old"),
        "--to",
        "b17",
        "--pg-bin-dir",
        &pg17.display().to_string(),
    ]));
    assert_eq!(code, 0, "{err}");
    let m = manifest(&dir.path().join("b17"));
    assert_eq!(m["fingerprint"]["details"]["pg_dump_major"], 17);
    assert_eq!(m["fingerprint"]["details"]["server_major"], 15);
    // Restoring that archive with pg_restore 15 is refused clearly, not a corrupt-looking failure.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b17",
        "--to",
        &pg15.url("old_copy"),
        "--pg-bin-dir",
        &pg15_bin().display().to_string(),
    ]));
    assert_eq!(code, 5, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("pg_dump 17") && line.contains("15."),
        "{line}"
    );
    // With pg_restore 17 it restores.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b17",
        "--to",
        &pg15.url("old_copy"),
        "--pg-bin-dir",
        &pg17.display().to_string(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sample_fingerprint(&pg15, "old"),
        sample_fingerprint(&pg15, "old_copy")
    );
}

#[test]
fn drills_on_a_server_and_a_throwaway_cluster_pass_and_leave_nothing() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 500);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run(lifeboat(dir.path()).args(["backup", &pg.url("shop"), "--to", "b", "--no-drill"])).0,
        0
    );
    let (_, listed, _) = run(lifeboat(dir.path()).args(["list", "--from", "b"]));
    assert!(listed.contains("checked"), "not drilled yet: {listed}");
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
    let scratch = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_drill_%'",
    );
    assert_eq!(scratch, "0", "scratch database left behind");
    let evidence: Vec<_> = all_files(&dir.path().join("b"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/drills/"))
        .collect();
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let ev: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&evidence[0]).unwrap()).unwrap();
    assert_eq!(ev["passed"], true);
    assert_eq!(ev["rows_checked"], 555);

    let (code, out, err) =
        run(lifeboat(dir.path()).args(["verify", "--from", "b", "--drill-cluster"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restore drill OK"), "{out}");

    // The drill verb: the same drill, with its evidence, on its own.
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "drill",
        "--from",
        "b",
        "--latest",
        "--drill-cluster",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["verifier"] == "pg-drill" && d["passed"] == true),
        "{v}"
    );
    let evidence = all_files(&dir.path().join("b"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/drills/"))
        .count();
    assert_eq!(evidence, 3, "one record per drill");
}

#[test]
fn drill_smoke_checks_exit_4_and_unusable_scratch_targets_exit_78() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 200);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lifeboat.toml"),
        format!(
            "source = \"{}\"\nsink = \"b\"\n[drill]\nserver = \"{}\"\nafter_backup = true\n\
             smoke = [{{ table = \"public.items\", min_rows = 100 }}, {{ sql = \"SELECT * FROM public.items WHERE price > 1000000\", min_rows = 1 }}]\n",
            pg.url("shop"),
            pg.url("postgres")
        ),
    )
    .unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args(["backup"]));
    assert_eq!(code, 4, "the second smoke check finds no rows: {err}");
    assert!(error_line(&err).contains("smoke check"), "{err}");
    // The backup itself was committed; only the drill failed.
    let (_, out, _) = run(lifeboat(dir.path()).args(["list"]));
    assert!(out.contains("shop"), "{out}");
    let scratch = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_drill_%'",
    );
    assert_eq!(scratch, "0");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A drill target that cannot be reached says nothing about the backup:
    // the run fails (exit 78), and no failed verdict is recorded.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "verify",
        "--latest",
        "--drill-server",
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
    ]));
    assert_eq!(code, 78, "{err}");
    assert!(error_line(&err).contains("could not run"), "{err}");
}

#[test]
fn a_lagging_standby_is_refused_or_warned_about() {
    let Some(primary) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&primary, "shop", 100);
    let standby = PgCluster::start_standby_of(&primary);
    // One replayed transaction gives the standby a replay timestamp.
    primary.psql(
        "shop",
        "INSERT INTO audit.events (item_id, action, at) VALUES (0, 'create', now())",
    );
    standby.wait_replayed(&primary);
    standby.psql("postgres", "SELECT pg_wal_replay_pause()");
    primary.psql(
        "shop",
        "INSERT INTO audit.events (item_id, action, at) VALUES (1, 'create', now())",
    );
    std::thread::sleep(Duration::from_millis(2500));
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &standby.url("shop"),
        "--to",
        "b",
        "--max-replica-lag",
        "1s",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("standby"), "{err}");
    assert!(all_files(&dir.path().join("b")).is_empty());
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &standby.url("shop"),
        "--to",
        "b",
        "--max-replica-lag",
        "1s",
        "--replica-lag-warn",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("WARN") && err.contains("standby"), "{err}");
}

#[test]
fn a_missing_pg_dump_exits_2_naming_what_to_install() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("emptybin")).unwrap();
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("postgres"),
        "--to",
        "b",
        "--pg-bin-dir",
        "emptybin",
    ]));
    assert_eq!(code, 2, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("pg_dump not found")
            && line.contains(&format!("postgresql-client-{}", pg.major())),
        "{line}"
    );
}

/// "Verified" means restorable: a PostgreSQL backup is restored in a
/// throwaway cluster before it is committed (by default, where local server
/// binaries can start one); `list` and `status` tell "drilled" from
/// "checked"; `--drill` alone picks a target; `--no-drill` turns it off.
#[test]
fn postgres_backups_are_drilled_by_default_and_drill_alone_picks_a_target() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 300);
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(lifeboat(dir.path()).args(["backup", &pg.url("shop"), "--to", "b"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pg-drill:pass") && out.contains("restore drill OK"),
        "{out}"
    );
    let (_, listed, _) = run(lifeboat(dir.path()).args(["list", "--from", "b"]));
    assert!(listed.contains("drilled"), "{listed}");
    let (code, out, _) =
        run(lifeboat(dir.path()).args(["status", "--from", "b", "--format", "json"]));
    assert_eq!(code, 0, "{out}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st[0]["newest"]["assurance"], "drilled", "{st}");

    // Off: committed as checked.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, out, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("shop"),
        "--to",
        "b",
        "--no-drill",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v[0]["manifest"]["backup_id"].as_str().unwrap().to_string();
    assert!(v[0]["drill"].is_null(), "{v}");
    let (_, out, _) = run(lifeboat(dir.path()).args(["list", "--from", "b", "--json"]));
    let l: serde_json::Value = serde_json::from_str(&out).unwrap();
    let newest = l["complete"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(newest["backup_id"], id.as_str());
    assert_eq!(newest["assurance"], "checked");
    let (code, out, _) =
        run(lifeboat(dir.path()).args(["status", "--from", "b", "--format", "json"]));
    assert_eq!(code, 0);
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st[0]["newest"]["assurance"], "checked", "{st}");

    // `--drill` alone: a throwaway cluster from the local binaries.
    let (code, out, err) =
        run(lifeboat(dir.path()).args(["verify", "--from", "b", "--latest", "--drill"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restore drill OK"), "{out}");
    let (_, out, _) = run(lifeboat(dir.path()).args(["status", "--from", "b", "--format", "json"]));
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        st[0]["newest"]["assurance"], "drilled",
        "a later drill proves it: {st}"
    );

    let (code, _, err) = run(lifeboat(dir.path()).args([
        "backup",
        &pg.url("shop"),
        "--to",
        "b",
        "--no-drill",
        "--drill",
    ]));
    assert_eq!(code, 64, "{err}");
    let left = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE '%lifeboat%'",
    );
    assert_eq!(left, "0");
}

/// A drill killed with -9 leaves its throwaway server running in its temp
/// dir: `list --json` reports the dir, and the next drill stops the server
/// and removes it.
#[test]
fn a_killed_drill_leaves_a_server_the_next_run_stops() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 20_000);
    let dir = tempfile::tempdir().unwrap();
    // A temp dir of its own: other tests' drills run at the same time,
    // and their clusters must not pass for this one's.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let lifeboat = |d: &Path| {
        let mut c = lifeboat(d);
        c.env("TMPDIR", &tmp);
        c
    };
    let (code, _, err) =
        run(lifeboat(dir.path()).args(["backup", &pg.url("shop"), "--to", "b", "--no-drill"]));
    assert_eq!(code, 0, "{err}");
    let before: std::collections::BTreeSet<_> = cluster_dirs(&tmp);
    // Held 10 s once its cluster runs, so that the kill below lands
    // while the server is up, however fast this machine drills.
    let mut child = lifeboat(dir.path())
        .args(["verify", "--from", "b", "--latest", "--drill-cluster"])
        .env("LIFEBOAT_FAILPOINTS", "drill:cluster-started=pause")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for its cluster's server to run, then kill the drill.
    let t0 = std::time::Instant::now();
    let pid_of = |d: &Path| -> Option<u32> {
        std::fs::read_to_string(d.join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let (ours, pid) = loop {
        let now = cluster_dirs(&tmp);
        if let Some((d, pid)) = now
            .difference(&before)
            .find_map(|d| pid_of(d).map(|p| (d.clone(), p)))
        {
            break (d, pid);
        }
        assert!(
            t0.elapsed().as_secs() < 60,
            "the drill's cluster never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        lifeboat_tests::pg::pid_alive(pid),
        "the orphaned server runs on"
    );
    let (code, out, _) = run(lifeboat(dir.path()).args(["list", "--from", "b", "--json"]));
    assert_eq!(code, 0);
    let l: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        l["leftovers"]["local"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["path"].as_str() == Some(ours.to_str().unwrap())),
        "{l}"
    );
    let (code, out, err) =
        run(lifeboat(dir.path()).args(["verify", "--from", "b", "--latest", "--drill-cluster"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restore drill OK"), "{out}");
    let t0 = std::time::Instant::now();
    while lifeboat_tests::pg::pid_alive(pid) && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !lifeboat_tests::pg::pid_alive(pid),
        "the orphaned server was stopped"
    );
    assert!(!ours.exists(), "its directory was removed");
}

/// The throwaway clusters' directories in `tmp`.
fn cluster_dirs(tmp: &Path) -> std::collections::BTreeSet<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lifeboat-drill-cluster-"))
        })
        .collect()
}
