//! The custom-format repacker (`backup_core::source::postgres::archive`) on
//! real `pg_dump -Fc -Z0` archives: what `pg_restore` makes of the repacked
//! archive is byte for byte what it makes of pg_dump's own, a parallel
//! `pg_restore -j` of it restores every row, and its row counts are the
//! server's. For the PostgreSQL 15 tools and, when installed, the 17 ones
//! (archive versions 1.14 and 1.16).
//!
//! Run: `cargo test -p lifeboat-tests --test pg_archive` (skips without the
//! binaries unless LIFEBOAT_REQUIRE_SERVERS=1; `scripts/test` provides them).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use backup_core::source::postgres::archive::{ArchiveStats, CHUNK_TARGET, Repacker};
use lifeboat_tests::pg::{PgCluster, default_bin, other_major_bin, sample_schema};

/// Large objects, awkward text (tabs, newlines, backslashes, non-ASCII,
/// NULLs), an empty table and a table bigger than one merged chunk.
const EXTRAS: &str = r#"
CREATE TABLE public.awkward (id int PRIMARY KEY, body text, raw bytea);
INSERT INTO public.awkward
SELECT g, CASE WHEN g % 7 = 0 THEN NULL
               ELSE E'tab\there\nnewline \\ backslash é ' || repeat('x', g % 300) END,
       decode(md5(g::text), 'hex')
FROM generate_series(1, 3000) g;
CREATE TABLE public.empty_one (id int);
CREATE TABLE public.wide AS
SELECT g AS id, repeat(md5(g::text), 40) AS pad FROM generate_series(1, 2000) g;
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 20000), 'UTF8'));
SELECT lo_from_bytea(0, '\x00ff00ff'::bytea);
"#;

// `wide` (2000 rows of 1280 bytes) spans several merged chunks.
const _: () = assert!(CHUNK_TARGET < 2000 * 1280);

fn conn_args(pg: &PgCluster) -> Vec<String> {
    vec![
        "-h".into(),
        pg.socket_dir().display().to_string(),
        "-p".into(),
        pg.port().to_string(),
        "-U".into(),
        "postgres".into(),
    ]
}

fn tool(pg: &PgCluster, bin: &Path, name: &str) -> Command {
    let mut c = Command::new(bin.join(name));
    c.args(conn_args(pg)).env("PGCONNECT_TIMEOUT", "10");
    c
}

fn run(mut c: Command, stdin: Option<&[u8]>) -> Vec<u8> {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn repack(original: &[u8]) -> (Vec<u8>, ArchiveStats) {
    let (mut r, stats) = Repacker::new(original);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    let s = stats.lock().unwrap().clone();
    (out, s)
}

/// `restore`: also restore with these tools (pg_restore 17 sets
/// `transaction_timeout`, which a 15 server refuses).
fn check_with_tools(pg: &PgCluster, bin: &Path, expect_version: &str, restore: bool) {
    let original = run(
        {
            let mut c = tool(pg, bin, "pg_dump");
            c.args(["-Fc", "-Z0", "-d", "shop"]);
            c
        },
        None,
    );
    let (repacked, stats) = repack(&original);
    assert_eq!(stats.passthrough, None, "{stats:?}");
    assert!(stats.complete);
    assert!(
        stats
            .version
            .as_deref()
            .unwrap()
            .starts_with(expect_version),
        "{stats:?}"
    );
    assert!(repacked.len() < original.len());
    assert!(
        stats.chunks_out * 10 < stats.chunks_in,
        "chunks merged: {} → {}",
        stats.chunks_in,
        stats.chunks_out
    );
    eprintln!(
        "archive {}: {} → {} bytes, {} → {} chunks",
        stats.version.as_deref().unwrap(),
        original.len(),
        repacked.len(),
        stats.chunks_in,
        stats.chunks_out
    );

    // pg_restore's reading of both archives, as SQL text, is identical.
    let script = |archive: &[u8]| {
        let mut c = Command::new(bin.join("pg_restore"));
        c.args(["-f", "-"]);
        // Without the per-run random key of `\restrict` (15.14 and later).
        let text = run(c, Some(archive));
        let kept: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.starts_with(b"\\restrict ") && !l.starts_with(b"\\unrestrict "))
            .collect();
        kept.join(&b'\n')
    };
    let from_original = script(&original);
    let from_repacked = script(&repacked);
    assert!(from_original.len() > 500_000);
    assert!(
        from_original == from_repacked,
        "pg_restore -f - differs between pg_dump's archive and the repacked one"
    );

    // Row counts: the archive's against the server's.
    for (schema, table, rows) in &stats.tables {
        let n: u64 = pg
            .psql("shop", &format!("SELECT count(*) FROM {schema}.{table}"))
            .parse()
            .unwrap();
        assert_eq!(*rows, n, "{schema}.{table}");
    }
    let names: Vec<&str> = stats.tables.iter().map(|(_, t, _)| t.as_str()).collect();
    for t in ["awkward", "empty_one", "wide", "items"] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }

    if !restore {
        return;
    }
    // A parallel restore from a file (pg_restore -j needs one) has every row
    // and both large objects.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("repacked.dump");
    std::fs::write(&file, &repacked).unwrap();
    let target = format!("restored_{}", expect_version.replace('.', "_"));
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {target}"));
    pg.create_db(&target);
    let mut c = tool(pg, bin, "pg_restore");
    c.args(["-j", "2", "--exit-on-error", "-d", &target])
        .arg(&file);
    run(c, None);
    let q = "SELECT string_agg(relname || '=' || n, ',' ORDER BY relname) FROM ( \
             SELECT 'awkward' relname, count(*) n FROM awkward UNION ALL \
             SELECT 'items', count(*) FROM items UNION ALL \
             SELECT 'wide', count(*) FROM wide UNION ALL \
             SELECT 'lo', count(*) FROM pg_largeobject_metadata) x";
    assert_eq!(pg.psql(&target, q), pg.psql("shop", q));
    let sum = "SELECT md5(string_agg(body || encode(raw, 'hex'), '' ORDER BY id)) FROM awkward";
    assert_eq!(pg.psql(&target, sum), pg.psql("shop", sum));
    pg.psql("postgres", &format!("DROP DATABASE {target}"));
}

#[test]
fn repacked_archives_read_and_restore_as_pg_dumps_own() {
    let Some(bin) = default_bin() else { return };
    let pg = PgCluster::start(&bin);
    sample_schema(&pg, "shop", 20_000);
    pg.psql("shop", EXTRAS);
    check_with_tools(&pg, &bin, "1.14", true);
    if let Some(bin17) = other_major_bin() {
        // pg_dump 17 against the 15 server: archive version 1.16.
        check_with_tools(&pg, &bin17, "1.16", false);
    }
}
