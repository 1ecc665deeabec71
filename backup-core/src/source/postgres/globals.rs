//! Roles and tablespaces from a backup's `pg_dumpall --globals-only`,
//! applied before a restore loads any data.
//!
//! The rule: create what is missing, never change what exists. A role that
//! exists keeps its attributes, password, settings and memberships; it is
//! reported as skipped. Statements about a role (its `ALTER ROLE`, comment,
//! memberships as a member, parameter grants) run only for roles this run
//! created. Roles go in one transaction, each statement under a savepoint so
//! that one failure (a grantor that does not exist here, a parameter this
//! version lacks) is reported and the rest still applies. `CREATE TABLESPACE`
//! cannot run in a transaction; each runs on its own afterwards.

use std::collections::BTreeSet;

use super::db_err;
use super::restore::{decode, script_encoding};
use super::sql::{self, Token};

/// What applying the globals did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GlobalsReport {
    /// Roles created.
    pub roles_created: Vec<String>,
    /// Roles that already existed: left exactly as they were.
    pub roles_skipped: Vec<String>,
    /// Tablespaces created.
    pub tablespaces_created: Vec<String>,
    /// Tablespaces that already existed.
    pub tablespaces_skipped: Vec<String>,
    /// Statements not applied, and why.
    pub not_applied: Vec<String>,
    /// Statements that failed, with the server's error.
    pub errors: Vec<String>,
    /// The globals were dumped without role passwords (by a non-superuser).
    pub without_passwords: bool,
}

/// What one statement of the script is about.
#[derive(Debug, PartialEq, Eq)]
enum Stmt {
    /// `SET …` for the script's own session.
    Session,
    CreateRole(String),
    /// `ALTER ROLE r …`, `COMMENT ON ROLE r`, `SECURITY LABEL … ON ROLE r`.
    AboutRole(String),
    /// `ALTER ROLE r IN DATABASE d SET …`: the archive's database entries
    /// carry these.
    RoleInDatabase(String),
    /// `GRANT a TO b [GRANTED BY g]`.
    Membership {
        granted: Vec<String>,
        members: Vec<String>,
        grantor: Vec<String>,
    },
    /// `GRANT … ON PARAMETER … TO roles`, and other privileges given to roles.
    GrantTo(Vec<String>),
    CreateTablespace(String),
    /// `ALTER TABLESPACE t`, `COMMENT ON TABLESPACE t`, `GRANT … ON TABLESPACE t`.
    AboutTablespace(String),
    Other,
}

fn words(t: &[Token], n: usize) -> Vec<&str> {
    t.iter().take(n).map(|x| x.word().unwrap_or("")).collect()
}

fn classify(stmt: &str) -> Stmt {
    let t = sql::tokenize(stmt);
    let w = words(&t, 4);
    let ident = |i: usize| t.get(i).and_then(Token::ident).map(str::to_string);
    match w.as_slice() {
        ["set", ..] => Stmt::Session,
        ["create", "role" | "user" | "group", ..] => ident(2).map_or(Stmt::Other, Stmt::CreateRole),
        ["alter", "role" | "user", ..] => match ident(2) {
            Some(r) if t.get(3).is_some_and(|x| x.is("in")) => Stmt::RoleInDatabase(r),
            Some(r) => Stmt::AboutRole(r),
            None => Stmt::Other,
        },
        ["comment", "on", "role", ..] => ident(3).map_or(Stmt::Other, Stmt::AboutRole),
        ["security", "label", ..] => match t.iter().position(|x| x.is("role")) {
            Some(k) if t[k - 1].is("on") => ident(k + 1).map_or(Stmt::Other, Stmt::AboutRole),
            _ => match t.iter().position(|x| x.is("tablespace")) {
                Some(k) => ident(k + 1).map_or(Stmt::Other, Stmt::AboutTablespace),
                None => Stmt::Other,
            },
        },
        ["create", "tablespace", ..] => ident(2).map_or(Stmt::Other, Stmt::CreateTablespace),
        ["alter", "tablespace", ..] => ident(2).map_or(Stmt::Other, Stmt::AboutTablespace),
        ["comment", "on", "tablespace", ..] => ident(3).map_or(Stmt::Other, Stmt::AboutTablespace),
        ["grant", ..] => {
            let on = t.iter().position(|x| x.is("on"));
            let to = t.iter().position(|x| x.is("to"));
            match (on, to) {
                (Some(k), _) if t.get(k + 1).is_some_and(|x| x.is("tablespace")) => {
                    ident(k + 2).map_or(Stmt::Other, Stmt::AboutTablespace)
                }
                (Some(_), Some(k)) => Stmt::GrantTo(sql::role_list(&t, k + 1)),
                (None, Some(k)) => Stmt::Membership {
                    granted: sql::role_list(&t, 1),
                    members: sql::role_list(&t, k + 1),
                    grantor: t
                        .windows(2)
                        .position(|p| p[0].is("granted") && p[1].is("by"))
                        .map(|g| sql::role_list(&t, g + 2))
                        .unwrap_or_default(),
                },
                _ => Stmt::Other,
            }
        }
        _ => Stmt::Other,
    }
}

/// The first words of a statement, for messages (never a password: an
/// `ALTER ROLE … PASSWORD` is cut before it).
fn brief(stmt: &str) -> String {
    let cut = stmt
        .to_ascii_uppercase()
        .find(" PASSWORD")
        .map_or(stmt, |i| &stmt[..i]);
    let mut s: String = cut.chars().take(100).collect();
    if s.len() < stmt.len() {
        s.push('…');
    }
    s
}

async fn names(client: &tokio_postgres::Client, sql: &str) -> Result<BTreeSet<String>, String> {
    Ok(client
        .query(sql, &[])
        .await
        .map_err(|e| db_err(&e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The roles that exist on the server `client` is connected to.
pub(crate) async fn existing_roles(
    client: &tokio_postgres::Client,
) -> Result<BTreeSet<String>, String> {
    names(client, "SELECT rolname::text FROM pg_roles").await
}

/// Apply a `pg_dumpall --globals-only` script (as stored) on the server
/// `admin` is connected to. See the module docs. Without `tablespaces`,
/// tablespace statements are left out (a throwaway cluster must not claim
/// the directories of a real one).
pub(crate) async fn apply(
    admin: &tokio_postgres::Client,
    script: &[u8],
    with_tablespaces: bool,
) -> Result<GlobalsReport, String> {
    let text = decode(admin, script, &script_encoding(script)).await?;
    let mut report = GlobalsReport {
        without_passwords: text.contains(LIFEBOAT_NO_PASSWORDS),
        ..GlobalsReport::default()
    };
    let mut roles = existing_roles(admin).await?;
    let tablespaces = names(admin, "SELECT spcname::text FROM pg_tablespace").await?;
    let mut created: BTreeSet<String> = BTreeSet::new();
    let mut later: Vec<(String, Stmt)> = Vec::new();

    admin
        .batch_execute("BEGIN READ WRITE; SET LOCAL standard_conforming_strings = on")
        .await
        .map_err(|e| db_err(&e))?;
    for stmt in sql::split_statements(&text) {
        let class = classify(&stmt);
        let run = match &class {
            Stmt::Session => false,
            Stmt::CreateRole(r) if roles.contains(r) => {
                report.roles_skipped.push(r.clone());
                false
            }
            Stmt::CreateRole(_) => true,
            Stmt::AboutRole(r) => created.contains(r),
            Stmt::RoleInDatabase(_) => {
                report.not_applied.push(format!(
                    "{} (the backup's database entries carry role settings for it)",
                    brief(&stmt)
                ));
                false
            }
            // Existing members keep their memberships (said with the
            // skipped roles); a new member gets its own.
            Stmt::Membership {
                granted,
                members,
                grantor,
            } => {
                if !members.iter().all(|m| created.contains(m)) {
                    if members.iter().any(|m| created.contains(m)) {
                        report.not_applied.push(format!(
                            "{} (it also names a role that already existed)",
                            brief(&stmt)
                        ));
                    }
                    false
                } else if let Some(missing) =
                    granted.iter().chain(grantor).find(|r| !roles.contains(*r))
                {
                    report
                        .not_applied
                        .push(format!("{} (role {missing} does not exist)", brief(&stmt)));
                    false
                } else {
                    true
                }
            }
            Stmt::GrantTo(grantees) => {
                let mine = !grantees.is_empty() && grantees.iter().all(|g| created.contains(g));
                if !mine && grantees.iter().any(|g| created.contains(g)) {
                    report.not_applied.push(format!(
                        "{} (it also names a role that already existed)",
                        brief(&stmt)
                    ));
                }
                mine
            }
            Stmt::CreateTablespace(ts) if tablespaces.contains(ts) => {
                report.tablespaces_skipped.push(ts.clone());
                false
            }
            Stmt::CreateTablespace(_) | Stmt::AboutTablespace(_) => true,
            Stmt::Other => {
                report.not_applied.push(format!(
                    "{} (not a role or tablespace statement)",
                    brief(&stmt)
                ));
                false
            }
        };
        if !run {
            continue;
        }
        if matches!(class, Stmt::CreateTablespace(_) | Stmt::AboutTablespace(_)) {
            if with_tablespaces {
                later.push((stmt, class));
            }
            continue;
        }
        let sql = format!("SAVEPOINT lifeboat_globals; {stmt}; RELEASE SAVEPOINT lifeboat_globals");
        match admin.batch_execute(&sql).await {
            Ok(()) => {
                if let Stmt::CreateRole(r) = class {
                    roles.insert(r.clone());
                    created.insert(r.clone());
                    report.roles_created.push(r);
                }
            }
            Err(e) => {
                report
                    .errors
                    .push(format!("{}: {}", brief(&stmt), db_err(&e)));
                let _ = admin
                    .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_globals")
                    .await;
            }
        }
    }
    admin
        .batch_execute("COMMIT")
        .await
        .map_err(|e| format!("cannot commit the roles: {}", db_err(&e)))?;

    // Tablespaces: each CREATE on its own (not allowed in a transaction),
    // and what is about one only when this run created it.
    let mut new_ts: BTreeSet<String> = BTreeSet::new();
    for (stmt, class) in later {
        let run = match &class {
            Stmt::CreateTablespace(_) => true,
            Stmt::AboutTablespace(ts) => new_ts.contains(ts),
            _ => false,
        };
        if !run {
            continue;
        }
        match admin.batch_execute(&stmt).await {
            Ok(()) => {
                if let Stmt::CreateTablespace(ts) = class {
                    new_ts.insert(ts.clone());
                    report.tablespaces_created.push(ts);
                }
            }
            Err(e) => report
                .errors
                .push(format!("{}: {}", brief(&stmt), db_err(&e))),
        }
    }
    if !report.roles_skipped.is_empty() {
        tracing::info!(roles = %report.roles_skipped.join(", "), "roles that already exist were left as they are (attributes, passwords, memberships unchanged)");
    }
    if !report.roles_created.is_empty() {
        tracing::info!(roles = %report.roles_created.join(", "), "roles created from the backup's globals");
    }
    for e in &report.errors {
        tracing::warn!(error = %e, "a globals statement failed");
    }
    Ok(report)
}

/// The first line Lifeboat writes into a globals attachment dumped without
/// role passwords.
pub(crate) const LIFEBOAT_NO_PASSWORDS: &str = "-- lifeboat: dumped with --no-role-passwords";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_classified_by_what_they_change() {
        assert_eq!(classify("SET client_encoding = 'UTF8'"), Stmt::Session);
        assert_eq!(
            classify("CREATE ROLE \"Weird \"\"Role\"\"\""),
            Stmt::CreateRole("Weird \"Role\"".into())
        );
        assert_eq!(
            classify("ALTER ROLE reader WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:x'"),
            Stmt::AboutRole("reader".into())
        );
        assert_eq!(
            classify("ALTER ROLE r IN DATABASE d SET work_mem TO '8MB'"),
            Stmt::RoleInDatabase("r".into())
        );
        assert_eq!(
            classify("COMMENT ON ROLE grp IS 'group; with semicolon'"),
            Stmt::AboutRole("grp".into())
        );
        assert_eq!(
            classify("GRANT grp TO reader WITH ADMIN OPTION GRANTED BY postgres"),
            Stmt::Membership {
                granted: vec!["grp".into()],
                members: vec!["reader".into()],
                grantor: vec!["postgres".into()],
            }
        );
        assert_eq!(
            classify("GRANT SET ON PARAMETER work_mem TO grp"),
            Stmt::GrantTo(vec!["grp".into()])
        );
        assert_eq!(
            classify("CREATE TABLESPACE tsx OWNER postgres LOCATION '/srv/ts'"),
            Stmt::CreateTablespace("tsx".into())
        );
        assert_eq!(
            classify("GRANT CREATE ON TABLESPACE tsx TO app"),
            Stmt::AboutTablespace("tsx".into())
        );
        assert_eq!(classify("DROP ROLE x"), Stmt::Other);
    }

    #[test]
    fn briefs_never_show_a_password() {
        let b = brief("ALTER ROLE u WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:secret'");
        assert!(!b.contains("SCRAM") && !b.contains("secret"), "{b}");
    }
}
