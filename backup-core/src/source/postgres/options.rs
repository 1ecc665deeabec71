//! What to dump and how: [`PostgresOptions`] (a profile's `[postgres]`
//! table), the lock wait as users write it, and the table filters, applied
//! as `pg_dump` applies them.

use super::ToolOptions;

/// What to dump and how. Every field has a default; in `lifeboat.toml` this
/// is a profile's `[postgres]` table.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Where the tools are, or a command prefix to run them in a container.
    #[serde(flatten)]
    pub tools: ToolOptions,
    /// A logical dump of each database (`pg_dump`, the default) or a
    /// physical base backup of the whole cluster (`pg_basebackup`), which
    /// restores to any later point with the WAL archive. `mode =
    /// "physical"` in `[postgres]` is what `backup --physical` asks.
    pub mode: BackupMode,
    /// Where a physical backup is compressed: `"server"` (the default,
    /// `pg_basebackup --compress=server-zstd` on PostgreSQL 15 and later;
    /// a tenth of the bytes cross the connection) or `"client"` (by
    /// Lifeboat, for a server built without zstd or whose CPU must be
    /// spared). Clusters with tablespaces, older servers and a
    /// `command_prefix` are always compressed by Lifeboat.
    pub compress_on: CompressOn,
    /// Only these schemas (`pg_dump -n`).
    pub schemas: Vec<String>,
    /// Not these schemas (`pg_dump -N`).
    pub exclude_schemas: Vec<String>,
    /// Only these tables (`pg_dump -t`, `schema.table` or a pattern).
    pub tables: Vec<String>,
    /// Not these tables (`pg_dump -T`).
    pub exclude_tables: Vec<String>,
    /// Also store roles and tablespaces (`pg_dumpall --globals-only`).
    pub globals: bool,
    /// The structural check fails when the archive lists fewer tables.
    pub min_tables: usize,
    /// Refuse (or warn about) a standby whose replay lag exceeds this
    /// (`"5m"`, or seconds).
    #[serde(deserialize_with = "crate::units::opt_duration::deserialize")]
    pub max_replica_lag: Option<u64>,
    /// Only warn when the lag is exceeded.
    pub replica_lag_warn_only: bool,
    /// Parallel jobs for restores and drills (default: the number of cores).
    pub jobs: Option<u32>,
    /// Restore without ownership and privileges (`--no-owner --no-privileges`).
    pub no_owner: bool,
    /// How long a backup waits for a table lock another session holds
    /// (`"2m"`, `"30s"`, or seconds; default 2 minutes, at most a day).
    /// `pg_dump --lock-wait-timeout` and Lifeboat's own `lock_timeout`.
    #[serde(deserialize_with = "lock_wait_serde::deserialize")]
    pub lock_wait: u64,
    /// Restore what loads: pg_restore goes on past errors, which are
    /// listed, and so are tables whose rows differ; the result still takes
    /// the target name (`restore --partial`). Never from the config.
    #[serde(skip)]
    pub partial: bool,
    /// `ANALYZE` a restored database before it takes the target name
    /// (default true; `restore --no-analyze`).
    pub analyze: bool,
    /// Restore everything into the default tablespace (a drill's
    /// throwaway cluster has none of the backup's).
    #[serde(skip)]
    pub(crate) no_tablespaces: bool,
}

/// How a PostgreSQL backup reads the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// `pg_dump` of each database.
    #[default]
    Logical,
    /// `pg_basebackup` of the whole cluster.
    Physical,
}

/// Where a physical backup is compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressOn {
    /// By the PostgreSQL server, when it can.
    #[default]
    Server,
    /// By Lifeboat.
    Client,
}

/// The lock wait when none is configured: 2 minutes.
pub const DEFAULT_LOCK_WAIT_SECS: u64 = 120;

/// The longest lock wait accepted: a day (PostgreSQL's own limit is ~24.8 days
/// of milliseconds in an int).
pub const MAX_LOCK_WAIT_SECS: u64 = 86_400;

/// Parse a lock wait: `"30s"`, `"5m"`, `"1h"` or plain seconds, from 1 second
/// to [`MAX_LOCK_WAIT_SECS`]. Never overflows: a huge number is an error.
///
/// # Errors
/// A message saying what is wrong with `text`.
pub fn parse_lock_wait(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => {
            return Err(format!(
                "invalid lock wait {text:?}: use like \"30s\", \"2m\" or seconds"
            ));
        }
    };
    let secs = num
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|s| *s <= MAX_LOCK_WAIT_SECS);
    match secs {
        None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => Err(format!(
            "lock wait {text:?} is too long: at most {}",
            fmt_secs(MAX_LOCK_WAIT_SECS)
        )),
        None => Err(format!(
            "invalid lock wait {text:?}: use like \"30s\", \"2m\" or seconds"
        )),
        Some(0) => Err(format!("lock wait {text:?} is too short: at least 1s")),
        Some(s) => Ok(s),
    }
}

/// `90` → `1m30s`, `120` → `2m`, `2` → `2s`.
pub(super) fn fmt_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// `lock_wait` in `lifeboat.toml`: seconds or a duration string, checked.
mod lock_wait_serde {
    use serde::Deserialize;

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        super::parse_lock_wait(&text).map_err(serde::de::Error::custom)
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            tools: ToolOptions::default(),
            mode: BackupMode::Logical,
            compress_on: CompressOn::Server,
            schemas: Vec::new(),
            exclude_schemas: Vec::new(),
            tables: Vec::new(),
            exclude_tables: Vec::new(),
            globals: false,
            min_tables: 1,
            max_replica_lag: None,
            replica_lag_warn_only: false,
            jobs: None,
            no_owner: false,
            lock_wait: DEFAULT_LOCK_WAIT_SECS,
            analyze: true,
            partial: false,
            no_tablespaces: false,
        }
    }
}

impl PostgresOptions {
    /// Check the numbers.
    ///
    /// # Errors
    /// A message naming the key and the range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(j) = self.jobs {
            crate::units::check_range("jobs", j, 1..=256)?;
        }
        if let Some(l) = self.max_replica_lag {
            crate::units::check_duration(l).map_err(|e| format!("max_replica_lag: {e}"))?;
        }
        Ok(())
    }

    pub(crate) fn jobs(&self) -> u32 {
        self.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        })
    }

    pub(super) fn filter_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (flag, list) in [
            ("--schema", &self.schemas),
            ("--exclude-schema", &self.exclude_schemas),
            ("--table", &self.tables),
            ("--exclude-table", &self.exclude_tables),
        ] {
            for v in list {
                a.push(format!("{flag}={v}"));
            }
        }
        a
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    fn rec(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], t) || (!t.is_empty() && rec(p, &t[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &t[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), text.as_bytes())
}

fn table_matches(pattern: &str, schema: &str, table: &str) -> bool {
    match pattern.split_once('.') {
        Some((ps, pt)) => glob(ps, schema) && glob(pt, table),
        None => glob(pattern, table),
    }
}

pub(super) fn table_selected(schema: &str, table: &str, o: &PostgresOptions) -> bool {
    (o.schemas.is_empty() || o.schemas.iter().any(|p| glob(p, schema)))
        && !o.exclude_schemas.iter().any(|p| glob(p, schema))
        && (o.tables.is_empty() || o.tables.iter().any(|p| table_matches(p, schema, table)))
        && !o
            .exclude_tables
            .iter()
            .any(|p| table_matches(p, schema, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_waits_parse_in_range_and_never_overflow() {
        assert_eq!(parse_lock_wait("30s"), Ok(30));
        assert_eq!(parse_lock_wait("5m"), Ok(300));
        assert_eq!(parse_lock_wait("90"), Ok(90));
        assert_eq!(parse_lock_wait("24h"), Ok(86_400));
        for bad in [
            "0",
            "0s",
            "25h",
            "18446744073709551615m",
            "99999999999999999999999",
            "2x",
            "",
            "-3s",
            "1.5m",
        ] {
            assert!(parse_lock_wait(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_lock_wait("100000h").unwrap_err().contains("too long"));
        assert_eq!(fmt_secs(120), "2m");
        assert_eq!(fmt_secs(90), "1m30s");
        assert_eq!(fmt_secs(2), "2s");
    }

    #[test]
    fn table_filters_follow_pg_dump_patterns() {
        let mut o = PostgresOptions::default();
        assert!(table_selected("public", "items", &o));
        o.exclude_tables = vec!["public.big_*".into()];
        assert!(!table_selected("public", "big_log", &o));
        assert!(table_selected("audit", "big_log", &o));
        o.schemas = vec!["audit".into()];
        assert!(!table_selected("public", "items", &o));
        o.exclude_schemas = vec!["audit".into()];
        assert!(!table_selected("audit", "x", &o));
    }
}
