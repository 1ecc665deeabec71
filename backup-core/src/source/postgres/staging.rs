//! Staging and scratch databases: their names, the session-level advisory
//! lock that marks one whose run is alive, and the cleanup of what killed
//! restores and drills left on a server (see "Leftovers of killed runs" in
//! docs/architecture.md).

use super::db_err;
use super::sql::quote_ident;

/// The staging name for a restore of `target`: `<target>__lifeboat_<what>_<tag>`,
/// with the target cut (on a character boundary) so that the whole fits in
/// PostgreSQL's 63 bytes; a longer name would be silently truncated.
pub(crate) fn side_name(target: &str, what: &str, tag: &str) -> String {
    let suffix = format!("__lifeboat_{what}_{tag}");
    let mut keep = 63usize.saturating_sub(suffix.len()).min(target.len());
    while !target.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &target[..keep])
}

/// What a leftover database's lock is keyed on: its run's staging name
/// (the database itself for a restore's staging or a drill's scratch
/// database; for a database moved aside, the staging database of the same
/// run). `None` for a name that is not one of ours.
fn leftover_owner(name: &str) -> Option<(Leftover, String)> {
    let tagged = |what: &str| -> Option<String> {
        let (prefix, tag) = name.rsplit_once(&format!("__lifeboat_{what}_"))?;
        (tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit())).then(|| prefix.to_string())
    };
    if let Some(rest) = name.strip_prefix("lifeboat_drill_")
        && rest.len() == 8
        && rest.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Some((Leftover::Scratch, name.to_string()));
    }
    if tagged("restore").is_some() {
        return Some((Leftover::Scratch, name.to_string()));
    }
    let target = tagged("old")?;
    let staging = name.replacen("__lifeboat_old_", "__lifeboat_restore_", 1);
    Some((Leftover::Aside(target), staging))
}

#[derive(Debug, PartialEq, Eq)]
enum Leftover {
    /// A staging or scratch database: drop it.
    Scratch,
    /// An old database moved aside for the target name it had.
    Aside(String),
}

/// `pg_try_advisory_lock` key of a run's staging name. `hashtextextended`
/// is the server's own stable hash (hash partitioning relies on it), so any
/// session can compute the same key.
const LOCK_KEY: &str = "hashtextextended('lifeboat:' || $1::text, 0)";

/// Hold a session-level advisory lock keyed on `staging` for as long as
/// `admin` stays connected: it tells a later run that this staging
/// database is alive. When the process dies, the server ends the session
/// and the lock goes with it.
pub(crate) async fn hold(admin: &tokio_postgres::Client, staging: &str) -> Result<(), String> {
    let got: bool = admin
        .query_one(
            &format!("SELECT pg_try_advisory_lock({LOCK_KEY})"),
            &[&staging],
        )
        .await
        .map_err(|e| format!("cannot take the restore's advisory lock: {}", db_err(&e)))?
        .get(0);
    if got {
        Ok(())
    } else {
        Err(format!("another run holds the advisory lock of {staging}"))
    }
}

/// A database a killed run left, whose run is gone: `admin` holds its
/// run's advisory lock until [`release`].
struct Dead {
    name: String,
    kind: Leftover,
    owner: String,
}

/// The databases killed restores and drills left on this server whose run
/// is gone (its advisory lock could be taken: `admin` now holds it).
/// Databases of live runs are skipped.
async fn dead_leftovers(admin: &tokio_postgres::Client) -> Result<Vec<Dead>, String> {
    let names: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database \
             WHERE datname ~ '__lifeboat_(restore|old)_[0-9a-f]{8}$' OR datname ~ '^lifeboat_drill_[0-9a-f]{8}$' \
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| format!("cannot list leftover databases: {}", db_err(&e)))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut dead = Vec::new();
    for name in names {
        let Some((kind, owner)) = leftover_owner(&name) else {
            continue;
        };
        let free: bool = admin
            .query_one(
                &format!("SELECT pg_try_advisory_lock({LOCK_KEY})"),
                &[&owner],
            )
            .await
            .map_err(|e| db_err(&e))?
            .get(0);
        if free {
            dead.push(Dead { name, kind, owner });
        } else {
            tracing::debug!(database = %name, "belongs to a live run; left alone");
        }
    }
    Ok(dead)
}

/// Let go of the advisory lock [`dead_leftovers`] took for `d`.
async fn release(admin: &tokio_postgres::Client, d: &Dead) {
    let _ = admin
        .query_one(
            &format!("SELECT pg_advisory_unlock({LOCK_KEY})"),
            &[&d.owner],
        )
        .await;
}

/// The databases killed restores and drills left on this server (their
/// run's advisory lock is free), without touching them: for `list`.
pub(crate) async fn find_leftovers(admin: &tokio_postgres::Client) -> Result<Vec<String>, String> {
    let dead = dead_leftovers(admin).await?;
    for d in &dead {
        release(admin, d).await;
    }
    Ok(dead.into_iter().map(|d| d.name).collect())
}

/// Remove what killed runs left on this server: a staging database of a
/// restore or a drill's scratch database whose run is gone (its advisory
/// lock can be taken) is dropped; a database a restore moved aside is
/// renamed back to its name when that name is free (the restore never got
/// its copy in place), else dropped. Databases of live runs are left alone.
/// Returns what was done, in words; each is logged.
pub(crate) async fn clean_leftovers(admin: &tokio_postgres::Client) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    for d in dead_leftovers(admin).await? {
        let name = &d.name;
        let action = match &d.kind {
            Leftover::Aside(target) => {
                let taken = admin
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[target])
                    .await
                    .map_err(|e| db_err(&e))?
                    .is_some();
                // A name cut to fit 63 bytes cannot be trusted to be the
                // original: leave such a database to a person.
                if !taken && name.len() >= 60 {
                    tracing::warn!(database = %name, "a database moved aside by a killed restore; its original name may have been cut: rename it back by hand");
                    None
                } else if !taken {
                    Some((
                        format!(
                            "ALTER DATABASE {} RENAME TO {}",
                            quote_ident(name),
                            quote_ident(target)
                        ),
                        format!(
                            "renamed {name} back to {target} (a killed restore had moved it aside)"
                        ),
                    ))
                } else {
                    Some((
                        format!("DROP DATABASE {} WITH (FORCE)", quote_ident(name)),
                        format!(
                            "dropped {name} (replaced by a restore that was killed before dropping it)"
                        ),
                    ))
                }
            }
            Leftover::Scratch => Some((
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
                format!("dropped {name} (left by a killed restore or drill)"),
            )),
        };
        if let Some((sql, what)) = action {
            match admin.batch_execute(&sql).await {
                Ok(()) => {
                    tracing::warn!(database = %name, "{what}");
                    done.push(what);
                }
                Err(e) => {
                    tracing::warn!(database = %name, error = %db_err(&e), "cannot clean up a leftover database")
                }
            }
        }
        release(admin, &d).await;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_recognised_by_their_exact_shape() {
        assert_eq!(
            leftover_owner("shop__lifeboat_restore_0a1b2c3d"),
            Some((Leftover::Scratch, "shop__lifeboat_restore_0a1b2c3d".into()))
        );
        assert_eq!(
            leftover_owner("shop__lifeboat_old_0a1b2c3d"),
            Some((
                Leftover::Aside("shop".into()),
                "shop__lifeboat_restore_0a1b2c3d".into()
            ))
        );
        assert_eq!(
            leftover_owner("lifeboat_drill_deadbeef"),
            Some((Leftover::Scratch, "lifeboat_drill_deadbeef".into()))
        );
        for no in [
            "shop",
            "shop__lifeboat_old_xyz",
            "shop__lifeboat_restore_0a1b2c3d4",
            "lifeboat_drill_1",
        ] {
            assert_eq!(leftover_owner(no), None, "{no}");
        }
    }

    #[test]
    fn side_names_fit_in_63_bytes() {
        assert_eq!(
            side_name("shop", "restore", "0a1b2c3d"),
            "shop__lifeboat_restore_0a1b2c3d"
        );
        let long = "é".repeat(40);
        let n = side_name(&long, "restore", "0a1b2c3d");
        assert!(
            n.len() <= 63 && n.ends_with("__lifeboat_restore_0a1b2c3d"),
            "{n}"
        );
    }
}
