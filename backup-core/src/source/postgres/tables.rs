//! The tables a dump covers, in the snapshot's transaction: listed
//! (filtered as `pg_dump` filters them), locked before `pg_dump` starts (a
//! table another session holds is named, not waited on forever), and counted
//! exactly.

use super::PostgresOptions;
use super::db_err;
use super::options::{fmt_secs, table_selected};
use super::sql::quote_ident;
use crate::manifest::TableCount;

/// The tables to fingerprint: ordinary tables (and partitions) outside the
/// system schemas, filtered like `pg_dump` filters them (exact names or `*`
/// patterns, `schema.table` or `table`).
pub(super) async fn list_tables(
    client: &tokio_postgres::Client,
    opts: &PostgresOptions,
) -> std::result::Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                 AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    let all: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(all
        .into_iter()
        .filter(|(s, t)| table_selected(s, t, opts))
        .collect())
}

/// Exact row counts; a failure names the table it was counting.
pub(super) async fn count_rows(
    client: &tokio_postgres::Client,
    tables: &[(String, String)],
) -> std::result::Result<Vec<TableCount>, (String, tokio_postgres::Error)> {
    let mut out = Vec::with_capacity(tables.len());
    for (s, t) in tables {
        let n: i64 = client
            .query_one(
                // ONLY: an inheritance parent's own rows, which are all its
                // TABLE DATA holds; its children are counted as tables of
                // their own.
                &format!(
                    "SELECT count(*) FROM ONLY {}.{}",
                    quote_ident(s),
                    quote_ident(t)
                ),
                &[],
            )
            .await
            .map_err(|e| (format!("{s}.{t}"), e))?
            .get(0);
        out.push(TableCount {
            name: format!("{s}.{t}"),
            rows: n as u64,
        });
    }
    Ok(out)
}

/// Tables locked per `LOCK TABLE` statement: few round trips, short statements.
const LOCK_BATCH: usize = 500;

/// `LOCK TABLE … IN ACCESS SHARE MODE` every table, in the current
/// transaction (its `lock_timeout` is the lock wait). On a timeout, name the
/// table another session holds.
pub(super) async fn lock_tables(
    client: &tokio_postgres::Client,
    tables: &[(String, String)],
    lock_wait: u64,
) -> std::result::Result<(), String> {
    for batch in tables.chunks(LOCK_BATCH) {
        let names: Vec<String> = batch
            .iter()
            .map(|(s, t)| format!("ONLY {}.{}", quote_ident(s), quote_ident(t)))
            .collect();
        // A savepoint keeps the transaction usable to ask who holds the lock.
        let sql = format!(
            "SAVEPOINT lifeboat_lock; LOCK TABLE {} IN ACCESS SHARE MODE; RELEASE SAVEPOINT lifeboat_lock",
            names.join(", ")
        );
        let Err(e) = client.batch_execute(&sql).await else {
            continue;
        };
        if !lock_timed_out(&e) {
            return Err(format!("cannot lock the tables to dump: {}", db_err(&e)));
        }
        let _ = client
            .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_lock")
            .await;
        let held: Vec<(String, String)> = client
            .query(
                "SELECT n.nspname, c.relname FROM pg_locks l \
                 JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.granted \
                 AND l.pid <> pg_backend_pid() \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .unwrap_or_default();
        let culprits: Vec<String> = batch
            .iter()
            .filter(|t| held.contains(t))
            .map(|(s, t)| format!("{s}.{t}"))
            .collect();
        let table = match culprits.len() {
            // Released meanwhile, or held in another mode that conflicts.
            0 if batch.len() == 1 => format!("{}.{}", batch[0].0, batch[0].1),
            0 => format!("one of {} tables", batch.len()),
            _ => culprits.join(", "),
        };
        return Err(locked_message(&table, lock_wait));
    }
    Ok(())
}

/// A lock wait ran out: `lock_timeout` (55P03), or pg_dump's
/// `--lock-wait-timeout`, which is a `statement_timeout` (57014).
pub(super) fn lock_timed_out(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|d| matches!(d.code().code(), "55P03" | "57014"))
}

pub(super) fn locked_message(table: &str, lock_wait: u64) -> String {
    let what = if table.starts_with("one of") {
        table.to_string()
    } else {
        format!("table {table}")
    };
    format!(
        "{what} is locked by another session (ACCESS EXCLUSIVE?) for longer than the lock wait of {} (--lock-wait, [postgres] lock_wait)",
        fmt_secs(lock_wait)
    )
}
