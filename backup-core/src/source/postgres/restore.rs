//! Putting an archive back: what restores and drills share.
//!
//! A restore recreates the whole database, not only its contents: the
//! archive's `DATABASE` entries (what `pg_restore --create` runs) carry the
//! encoding, locale and provider, owner, comment, ACL and the
//! `ALTER DATABASE … SET` / `ALTER ROLE … IN DATABASE … SET` settings.
//! Lifeboat reads them with `pg_restore --create -L <those entries> -f -`,
//! renames the database in them token by token (never inside a literal),
//! creates the staging database with the archive's `CREATE DATABASE`, loads
//! the data, and applies the rest after the data and its proof, so a setting
//! like `default_transaction_read_only` cannot disturb the load.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::sql::{self, quote_ident};
use super::{PgConn, PostgresDetails, PostgresOptions, Tool, db_err};
use crate::rt::blocking;

/// The archive's database-level statements, as the bytes pg_restore wrote
/// (in the archive's encoding).
#[derive(Debug, Clone, Default)]
pub(crate) struct DbScript {
    /// The script's `client_encoding`.
    encoding: String,
    /// `CREATE DATABASE …` as pg_dump wrote it (encoding, locale, provider).
    create: Option<Vec<u8>>,
    /// Owner, comment, security labels, ACL and settings, in archive order.
    after: Vec<Vec<u8>>,
}

/// `pg_restore` with `args` on `archive`, writing a script to stdout; no
/// database connection.
async fn pg_restore_script(
    pg_restore: &Tool,
    args: &[&str],
    archive: &Path,
) -> Result<Vec<u8>, String> {
    let mut cmd = pg_restore.command();
    cmd.args(args)
        .arg(archive)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("pg_restore {}", args.join(" "));
    let out = blocking(move || Ok::<_, String>(cmd.output()))
        .await?
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// The `client_encoding` a script pg_restore or pg_dumpall wrote sets at
/// its top (UTF8 if none).
pub(crate) fn script_encoding(bytes: &[u8]) -> String {
    let head = bytes_as_chars(&bytes[..bytes.len().min(4096)]);
    sql::split_statements(&head)
        .iter()
        .map(|s| sql::tokenize(s))
        .find_map(|t| {
            (t.len() >= 4 && t[0].is("set") && t[1].is("client_encoding")).then(|| {
                match &t[3].kind {
                    sql::Kind::Str(v) | sql::Kind::Word(v) => v.clone(),
                    _ => String::new(),
                }
            })
        })
        .unwrap_or_else(|| "UTF8".into())
}

/// Bytes read one char per byte: lossless, and safe to lex, because every
/// server encoding keeps ASCII bytes out of its multibyte characters.
fn bytes_as_chars(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// The statements of a script, each as the bytes it was written in.
pub(crate) fn split_bytes(script: &[u8]) -> Vec<Vec<u8>> {
    sql::split_statements(&bytes_as_chars(script))
        .into_iter()
        .map(|s| s.chars().map(|c| c as u8).collect())
        .collect()
}

/// Text in `encoding`, as UTF-8. Anything but UTF-8 (and plain ASCII) is
/// converted by the server `client` is connected to, which knows every
/// encoding it has. On a connection to a database of that encoding this is
/// exactly what pg_restore does: the server stores the same bytes.
pub(crate) async fn decode(
    client: &tokio_postgres::Client,
    bytes: &[u8],
    encoding: &str,
) -> Result<String, String> {
    let norm = encoding.to_ascii_uppercase().replace(['-', '_'], "");
    if bytes.is_ascii() || matches!(norm.as_str(), "UTF8" | "UNICODE" | "SQLASCII") {
        return Ok(String::from_utf8_lossy(bytes).into_owned());
    }
    let row = client
        .query_one(
            "SELECT convert_from($1::bytea, $2::text::name)",
            &[&bytes, &encoding],
        )
        .await
        .map_err(|e| format!("cannot read text in {encoding}: {}", db_err(&e)))?;
    Ok(row.get(0))
}

/// Whether a `pg_restore --list` line is one of the database's own entries.
fn is_database_entry(line: &str) -> bool {
    // `<id>; <tableoid> <oid> <desc> <namespace> <tag> <owner>`
    let Some((_, rest)) = line.split_once("; ") else {
        return false;
    };
    let mut parts = rest.splitn(3, ' ');
    let (Some(_), Some(_), Some(entry)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    entry.starts_with("DATABASE - ")
        || entry.starts_with("DATABASE PROPERTIES - ")
        || entry.starts_with("COMMENT - DATABASE ")
        || entry.starts_with("SECURITY LABEL - DATABASE ")
        || entry.starts_with("ACL - DATABASE ")
}

impl DbScript {
    /// Read the archive's database entries. With `no_owner`, the owner and
    /// the ACL are left out (as `pg_restore --no-owner --no-privileges`).
    pub async fn read(
        pg_restore: &Tool,
        archive: &Path,
        work: &Path,
        no_owner: bool,
    ) -> Result<Self, String> {
        let listing = pg_restore_script(pg_restore, &["--list", "--create"], archive).await?;
        let listing = String::from_utf8_lossy(&listing);
        let entries: Vec<&str> = listing.lines().filter(|l| is_database_entry(l)).collect();
        if entries.is_empty() {
            return Ok(Self::default());
        }
        let list = work.join("database-entries.list");
        std::fs::write(&list, entries.join("\n") + "\n")
            .map_err(|e| format!("cannot write {}: {e}", list.display()))?;
        let list_arg = format!("--use-list={}", list.display());
        let mut args = vec!["--create", list_arg.as_str(), "--file=-"];
        if no_owner {
            args.extend(["--no-owner", "--no-privileges"]);
        }
        let script = pg_restore_script(pg_restore, &args, archive).await?;
        Ok(Self::parse(&script))
    }

    /// The statements of a `pg_restore --create` script of database entries.
    pub fn parse(script: &[u8]) -> Self {
        let mut me = Self {
            encoding: script_encoding(script),
            ..Self::default()
        };
        for stmt in split_bytes(script) {
            let t = sql::tokenize(&bytes_as_chars(&stmt));
            // Session settings for the script itself.
            if t.first().is_some_and(|f| f.is("set") || f.is("select")) {
                continue;
            }
            if sql::ident_after(&t, &["create", "database"]).is_some() {
                me.create = Some(stmt);
                continue;
            }
            me.after.push(stmt);
        }
        me
    }

    /// The database name and `CREATE DATABASE`, decoded on `client`.
    async fn create_text(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<Option<(String, String)>, String> {
        let Some(create) = &self.create else {
            return Ok(None);
        };
        let text = decode(client, create, &self.encoding).await?;
        let name = sql::ident_after(&sql::tokenize(&text), &["create", "database"])
            .unwrap_or_default()
            .to_string();
        Ok(Some((name, text)))
    }

    /// `CREATE DATABASE` for `db` with the archive's properties (decoded on
    /// `admin`).
    pub async fn create_sql(
        &self,
        admin: &tokio_postgres::Client,
        db: &str,
    ) -> Result<String, String> {
        Ok(match self.create_text(admin).await? {
            Some((name, create)) => sql::rename_database(&create, &name, db),
            None => format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(db)),
        })
    }

    /// The rest, for `db`, decoded on `client`, a connection to `db`.
    pub async fn after_sql(
        &self,
        client: &tokio_postgres::Client,
        db: &str,
    ) -> Result<Vec<String>, String> {
        let Some((name, _)) = self.create_text(client).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(self.after.len());
        for stmt in &self.after {
            let text = decode(client, stmt, &self.encoding).await?;
            out.push(sql::rename_database(&text, &name, db));
        }
        Ok(out)
    }

    /// What `CREATE DATABASE` says after `WITH`, for messages.
    fn create_options(&self) -> String {
        self.create
            .as_deref()
            .map(|c| String::from_utf8_lossy(c).to_string())
            .and_then(|c| c.split_once(" WITH ").map(|(_, w)| w.trim().to_string()))
            .unwrap_or_default()
    }
}

/// Create `db` as the archive's database was (encoding, locale, provider).
/// A server that cannot (a missing locale, no ICU) is refused here, before
/// any data is loaded.
pub(crate) async fn create_database(
    admin: &tokio_postgres::Client,
    script: &DbScript,
    db: &str,
) -> Result<(), String> {
    let create = script.create_sql(admin, db).await?;
    admin.batch_execute(&create).await.map_err(|e| {
        let detail = script.create_options();
        let hint = if detail.is_empty() {
            String::new()
        } else {
            format!(" (the archive's database has {detail})")
        };
        format!(
            "this server cannot create the database as the backup had it{hint}: {}; \
             install the locale (or use a server built with ICU) and retry",
            db_err(&e)
        )
    })
}

/// What loading the archive did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Loaded {
    pub took: Duration,
    /// pg_restore's errors, one per failed entry (only with `partial`:
    /// otherwise any error fails the load).
    pub errors: Vec<String>,
}

/// pg_restore's stderr as one message per error: the `from TOC entry` line
/// that names the entry, the error, and its continuation lines (`Command
/// was: …`, `LINE 1: …`), at most a few.
pub(crate) fn pg_restore_errors(stderr: &str) -> Vec<String> {
    const CONTINUATION: usize = 3;
    let mut out: Vec<String> = Vec::new();
    let mut entry: Option<&str> = None;
    let mut open = false;
    let mut extra = 0;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("pg_restore: ") {
            open = false;
            if let Some(toc) = rest.strip_prefix("from TOC entry ") {
                entry = Some(toc);
            } else if let Some(err) = rest.strip_prefix("error: ") {
                out.push(match entry.take() {
                    Some(toc) => format!("TOC entry {toc}: {err}"),
                    None => err.to_string(),
                });
                open = true;
                extra = 0;
            } else {
                entry = None;
            }
        } else if open && !line.trim().is_empty() && extra < CONTINUATION {
            let last = out.last_mut().expect("an open error");
            last.push_str(" / ");
            last.push_str(line.trim());
            extra += 1;
        }
    }
    out
}

/// `pg_restore` the archive into the existing database `conn.dbname`, in
/// parallel. Any error fails the load, unless `opts.partial`: then
/// pg_restore goes on past errors and they are returned.
pub(crate) async fn load(
    conn: &PgConn,
    pg_restore: &Tool,
    archive: &Path,
    opts: &PostgresOptions,
    secrets: &Path,
) -> Result<Loaded, String> {
    let mut cmd = pg_restore.command();
    cmd.args(["--no-password"])
        .arg(format!("--jobs={}", opts.jobs().max(1)))
        .arg(format!("--dbname={}", conn.dbname));
    if opts.no_owner {
        cmd.args(["--no-owner", "--no-privileges"]);
    }
    if opts.no_tablespaces {
        cmd.arg("--no-tablespaces");
    }
    cmd.arg(archive)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    conn.configure_child(&mut cmd, secrets)
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let out = blocking(move || {
        cmd.output()
            .map_err(|e| format!("cannot run pg_restore: {e}"))
    })
    .await?;
    let mut loaded = Loaded::default();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // A newer pg_restore sets parameters an older server does not know
        // (`SET transaction_timeout` from 17 into 15): harmless, and the row
        // counts checked afterwards prove the data.
        let (harmless, errors): (Vec<String>, Vec<String>) = pg_restore_errors(&err)
            .into_iter()
            .partition(|e| e.contains("unrecognized configuration parameter"));
        if !harmless.is_empty() {
            tracing::warn!(errors = %harmless.join(" / "), "pg_restore reported settings this server does not know; ignored (row counts are checked next)");
        }
        if errors.is_empty() && harmless.is_empty() {
            // Failed without saying so in the usual form: keep its words.
            let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            return Err(format!(
                "pg_restore failed ({}): {}",
                out.status,
                lines[lines.len().saturating_sub(4)..].join(" / ")
            ));
        }
        if !errors.is_empty() {
            if !opts.partial {
                let n = errors.len();
                return Err(format!(
                    "pg_restore failed with {n} error{}: {}; nothing was replaced (--partial restores what loads and lists what did not)",
                    if n == 1 { "" } else { "s" },
                    errors
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            for e in &errors {
                tracing::warn!(error = %e, "pg_restore error (--partial: going on)");
            }
            loaded.errors = errors;
        }
    }
    loaded.took = t.elapsed();
    tracing::info!(database = %conn.dbname, ms = loaded.took.as_millis() as u64, jobs = opts.jobs(), errors = loaded.errors.len(), "pg_restore done");
    Ok(loaded)
}

/// Apply the archive's owner, comment, ACL and settings to `conn.dbname`,
/// after its data is in and proven. They run on a connection to that
/// database, as pg_restore runs them: its encoding is the archive's, so
/// text in shared catalogs (the comment) keeps its bytes.
///
/// With `skip_missing_roles` (`--no-owner`), a statement for a role this
/// server lacks (`ALTER ROLE r IN DATABASE … SET`) is skipped, logged and
/// returned, instead of failing the restore. With `keep_going`
/// (`--partial`), a failing statement is returned as an error and the rest
/// still runs.
pub(crate) async fn apply_after(
    conn: &PgConn,
    script: &DbScript,
    skip_missing_roles: bool,
    keep_going: bool,
) -> Result<AfterReport, String> {
    let mut report = AfterReport::default();
    if script.after.is_empty() {
        return Ok(report);
    }
    let client = conn.connect().await.map_err(|e| e.to_string())?;
    let roles = if skip_missing_roles {
        super::globals::existing_roles(&client).await?
    } else {
        BTreeSet::new()
    };
    for stmt in script.after_sql(&client, &conn.dbname).await? {
        if skip_missing_roles
            && let Some(r) = sql::roles_needed(&stmt)
                .into_iter()
                .find(|r| !roles.contains(r))
        {
            tracing::warn!(role = %r, statement = %stmt, "role does not exist here: database setting skipped (--no-owner)");
            report
                .skipped
                .push(format!("{stmt} (role {r} does not exist)"));
            continue;
        }
        if let Err(e) = client.batch_execute(&stmt).await {
            let msg = format!(
                "cannot apply the database's properties ({stmt}): {}",
                db_err(&e)
            );
            if !keep_going {
                return Err(msg);
            }
            tracing::warn!(error = %msg, "--partial: going on");
            report.errors.push(msg);
        }
    }
    Ok(report)
}

/// What [`apply_after`] skipped, and (with `keep_going`) what failed.
#[derive(Debug, Clone, Default)]
pub(crate) struct AfterReport {
    pub skipped: Vec<String>,
    pub errors: Vec<String>,
}

/// Every role the restore will need: owners, grantees, grantors, policy
/// roles, user mappings and role settings, in the schema as pg_restore will
/// run it (so `--no-owner` drops owners and privileges) and in the
/// database's own entries (with `--no-owner`, role settings of missing roles
/// are skipped instead, see [`apply_after`]).
pub(crate) async fn roles_needed(
    pg_restore: &Tool,
    archive: &Path,
    no_owner: bool,
    script: &DbScript,
) -> Result<BTreeSet<String>, String> {
    let mut args = vec!["--schema-only", "--file=-"];
    if no_owner {
        args.extend(["--no-owner", "--no-privileges"]);
    }
    let schema = pg_restore_script(pg_restore, &args, archive).await?;
    let mut out = BTreeSet::new();
    let may_name_roles = |s: &str| {
        let head: String = s.chars().take(40).collect::<String>().to_ascii_uppercase();
        [
            "ALTER ",
            "GRANT ",
            "REVOKE ",
            "CREATE POLICY",
            "CREATE USER MAPPING",
            "SET SESSION",
        ]
        .iter()
        .any(|p| head.starts_with(p))
    };
    for stmt in split_bytes(&schema) {
        let text = String::from_utf8_lossy(&stmt);
        if may_name_roles(&text) {
            out.extend(sql::roles_needed(&text));
        }
    }
    if !no_owner {
        for stmt in &script.after {
            out.extend(sql::roles_needed(&String::from_utf8_lossy(stmt)));
        }
    }
    Ok(out)
}

/// The database's own properties: encoding, locale and provider, owner.
/// Recorded at backup as the fingerprint's `database`, compared at restore.
pub(crate) async fn database_facts(
    client: &tokio_postgres::Client,
    db: &str,
    server_major: u32,
) -> Result<serde_json::Value, String> {
    // The columns moved: datlocprovider/daticulocale from 15, datlocale
    // (ICU or builtin) from 17.
    let (provider, locale) = match server_major {
        0..=14 => ("'c'", "NULL"),
        15 | 16 => ("d.datlocprovider", "d.daticulocale"),
        _ => ("d.datlocprovider", "d.datlocale"),
    };
    let row = client
        .query_one(
            &format!(
                "SELECT pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text, \
                 {provider}::text, {locale}::text, pg_get_userbyid(d.datdba)::text \
                 FROM pg_database d WHERE d.datname = $1"
            ),
            &[&db],
        )
        .await
        .map_err(|e| format!("cannot read the database's properties: {}", db_err(&e)))?;
    let provider: String = row.get(3);
    let provider = match provider.as_str() {
        "i" => "icu",
        "b" => "builtin",
        _ => "libc",
    };
    let mut facts = serde_json::json!({
        "name": db,
        "encoding": row.get::<_, String>(0),
        "collate": row.get::<_, String>(1),
        "ctype": row.get::<_, String>(2),
        "locale_provider": provider,
        "owner": row.get::<_, String>(5),
    });
    if let Some(l) = row.get::<_, Option<String>>(4) {
        let key = if provider == "icu" {
            "icu_locale"
        } else {
            "locale"
        };
        facts[key] = l.into();
    }
    Ok(facts)
}

/// How the restored database's sequences and large objects differ from the
/// fingerprint's (`sequences`: each one's `last_value` and `is_called`;
/// `large_objects`: how many), one line each. `client` is connected to the
/// restored database.
pub(crate) async fn objects_diff(
    client: &tokio_postgres::Client,
    fingerprint: &crate::manifest::Fingerprint,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let recorded = PostgresDetails::from_fingerprint(fingerprint);
    if let Some(seqs) = &recorded.sequences {
        for (name, want) in seqs {
            let Some((schema, seq)) = name.split_once('.') else {
                continue;
            };
            let (last, called) = (want["last_value"].as_i64(), want["is_called"].as_bool());
            let sql = format!(
                "SELECT last_value, is_called FROM {}.{}",
                quote_ident(schema),
                quote_ident(seq)
            );
            match client.query_one(&sql, &[]).await {
                Ok(row) => {
                    let (l, c): (i64, bool) = (row.get(0), row.get(1));
                    if Some(l) != last || Some(c) != called {
                        out.push(format!(
                            "sequence {name} is at {l} (is_called {c}), expected {} (is_called {})",
                            last.map_or("?".into(), |v| v.to_string()),
                            called.map_or("?".into(), |v| v.to_string())
                        ));
                    }
                }
                Err(e) => out.push(format!("sequence {name} cannot be read: {}", db_err(&e))),
            }
        }
    }
    if let Some(want) = recorded.large_objects {
        let n: i64 = client
            .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
            .await
            .map_err(|e| format!("cannot count large objects: {}", db_err(&e)))?
            .get(0);
        if n as u64 != want {
            out.push(format!("{n} large objects, expected {want}"));
        }
    }
    Ok(out)
}

/// How the restored database's properties differ from the backup's.
pub(crate) fn database_diff(
    expected: &serde_json::Value,
    actual: &serde_json::Value,
    no_owner: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let Some(exp) = expected.as_object() else {
        return out;
    };
    for (k, v) in exp {
        if k == "name" || (k == "owner" && no_owner) {
            continue;
        }
        if actual.get(k) != Some(v) {
            out.push(format!(
                "database {k} is {}, expected {v}",
                actual.get(k).unwrap_or(&serde_json::Value::Null)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_entries_are_picked_from_the_listing() {
        for yes in [
            "3345; 1262 16387 DATABASE - we\"ird db appowner",
            "3346; 0 0 COMMENT - DATABASE \"we\"\"ird db\" appowner",
            "3347; 0 0 ACL - DATABASE \"we\"\"ird db\" appowner",
            "3348; 0 0 DATABASE PROPERTIES - we\"ird db appowner",
        ] {
            assert!(is_database_entry(yes), "{yes}");
        }
        for no in [
            "6; 2615 16389 SCHEMA - app postgres",
            "215; 1259 16390 TABLE app t postgres",
            "3340; 0 0 COMMENT public TABLE t postgres",
            "; DATABASE - x",
        ] {
            assert!(!is_database_entry(no), "{no}");
        }
    }

    #[test]
    fn the_database_script_is_split_into_create_and_the_rest() {
        let script = b"SET client_encoding = 'LATIN1';\n\
            SELECT pg_catalog.set_config('search_path', '', false);\n\
            CREATE DATABASE \"we\"\"ird db\" WITH TEMPLATE = template0 ENCODING = 'LATIN1' LOCALE_PROVIDER = libc LOCALE = 'C';\n\
            ALTER DATABASE \"we\"\"ird db\" OWNER TO appowner;\n\
            \\connect -reuse-previous=on \"dbname='we\"\"ird db'\"\n\
            COMMENT ON DATABASE \"we\"\"ird db\" IS 'caf\xe9; the app''s db';\n\
            ALTER ROLE r IN DATABASE \"we\"\"ird db\" SET work_mem TO '8MB';\n";
        let d = DbScript::parse(script);
        assert_eq!(d.encoding, "LATIN1");
        assert_eq!(
            d.create.as_deref(),
            Some(&b"CREATE DATABASE \"we\"\"ird db\" WITH TEMPLATE = template0 ENCODING = 'LATIN1' LOCALE_PROVIDER = libc LOCALE = 'C'"[..])
        );
        assert_eq!(
            d.after,
            vec![
                b"ALTER DATABASE \"we\"\"ird db\" OWNER TO appowner".to_vec(),
                b"COMMENT ON DATABASE \"we\"\"ird db\" IS 'caf\xe9; the app''s db'".to_vec(),
                b"ALTER ROLE r IN DATABASE \"we\"\"ird db\" SET work_mem TO '8MB'".to_vec(),
            ]
        );
        assert_eq!(
            d.create_options(),
            "TEMPLATE = template0 ENCODING = 'LATIN1' LOCALE_PROVIDER = libc LOCALE = 'C'"
        );
    }

    #[test]
    fn pg_restore_errors_are_grouped_one_per_entry() {
        let stderr = "pg_restore: while PROCESSING TOC:\n\
            pg_restore: from TOC entry 3339; 0 16390 TABLE DATA public orders postgres\n\
            pg_restore: error: COPY failed for table \"orders\": ERROR:  relation \"allowed_codes\" does not exist\n\
            LINE 1:  SELECT EXISTS (SELECT 1 FROM allowed_codes WHERE code = c) \n\
                                                  ^\n\
            QUERY:   SELECT EXISTS (SELECT 1 FROM allowed_codes WHERE code = c) \n\
            CONTEXT:  SQL function \"code_ok\" during inlining\n\
            pg_restore: error: could not execute query: ERROR:  role \"x\" does not exist\n\
            Command was: ALTER TABLE public.t OWNER TO x;\n\
            pg_restore: warning: errors ignored on restore: 2\n";
        let e = pg_restore_errors(stderr);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("TOC entry 3339; 0 16390 TABLE DATA public orders postgres: COPY failed for table \"orders\"")
                && e[0].contains("LINE 1:")
                && !e[0].contains("CONTEXT"),
            "{}",
            e[0]
        );
        assert_eq!(
            e[1],
            "could not execute query: ERROR:  role \"x\" does not exist / Command was: ALTER TABLE public.t OWNER TO x;"
        );
    }
}
