//! PostgreSQL and drill flags, shared by backup, verify and restore, applied
//! over the config file's `[postgres]` and `[drill]` tables.

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::config::parse_duration_secs;
use backup_core::verify::drill::pg_drill;
use backup_core::{DrillTarget, Error, PostgresOptions, Verifier};
use clap::Args;

use crate::Context;

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct PgArgs {
    /// PostgreSQL: directory holding pg_dump/pg_restore to use (default: PATH, then /usr/lib/postgresql/*/bin, newest fitting).
    #[arg(long, value_name = "DIR")]
    pg_bin_dir: Option<PathBuf>,
    /// PostgreSQL: run the tools through this command, e.g. "docker exec -i db".
    #[arg(long, value_name = "COMMAND")]
    command_prefix: Option<String>,
    /// PostgreSQL: only this schema (repeatable).
    #[arg(long = "schema", value_name = "SCHEMA")]
    schemas: Vec<String>,
    /// PostgreSQL: leave out this schema (repeatable).
    #[arg(long = "exclude-schema", value_name = "SCHEMA")]
    exclude_schemas: Vec<String>,
    /// PostgreSQL: only this table (repeatable; schema.table or a pattern).
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
    /// PostgreSQL: leave out this table (repeatable).
    #[arg(long = "exclude-table", value_name = "TABLE")]
    exclude_tables: Vec<String>,
    /// PostgreSQL: backup: also store roles and tablespaces (pg_dumpall --globals-only); restore: create the stored roles and tablespaces this server lacks (existing ones are left unchanged).
    #[arg(long)]
    globals: bool,
    /// PostgreSQL: fail verification when the archive lists fewer tables (default 1).
    #[arg(long, value_name = "N")]
    min_tables: Option<usize>,
    /// PostgreSQL: refuse a standby lagging more than this ("5m", "30s").
    #[arg(long, value_name = "DURATION")]
    #[serde(deserialize_with = "super::string_or_number")]
    max_replica_lag: Option<String>,
    /// PostgreSQL: only warn when the standby lags too much.
    #[arg(long)]
    replica_lag_warn: bool,
    /// PostgreSQL: parallel jobs for restores and drills (default: cores).
    #[arg(long, value_name = "N")]
    jobs: Option<u32>,
    /// PostgreSQL: restore without ownership and privileges.
    #[arg(long)]
    no_owner: bool,
    /// PostgreSQL: how long a backup waits for a table another session has locked before failing ("30s", "5m"; default 2m).
    #[arg(long, value_name = "DURATION")]
    #[serde(deserialize_with = "super::string_or_number")]
    lock_wait: Option<String>,
}

impl PgArgs {
    /// Whether `--globals` was given (restore applies the stored roles only
    /// when asked on the command line or in the options, never from config).
    pub(crate) fn globals(&self) -> bool {
        self.globals
    }

    pub(crate) fn resolve(&self, ctx: &Context) -> Result<PostgresOptions, Error> {
        let mut o = ctx.settings.postgres.clone().unwrap_or_default();
        if let Some(d) = &self.pg_bin_dir {
            o.tools.bin_dir = Some(d.clone());
        }
        if let Some(p) = &self.command_prefix {
            o.tools.command_prefix = p.split_whitespace().map(str::to_string).collect();
        }
        let extend = |dst: &mut Vec<String>, src: &Vec<String>| dst.extend(src.iter().cloned());
        extend(&mut o.schemas, &self.schemas);
        extend(&mut o.exclude_schemas, &self.exclude_schemas);
        extend(&mut o.tables, &self.tables);
        extend(&mut o.exclude_tables, &self.exclude_tables);
        o.globals |= self.globals;
        if let Some(n) = self.min_tables {
            o.min_tables = n;
        }
        if let Some(l) = &self.max_replica_lag {
            o.max_replica_lag = Some(parse_duration_secs(l).map_err(|m| Error::Usage {
                message: format!("--max-replica-lag: {m}"),
            })?);
        }
        o.replica_lag_warn_only |= self.replica_lag_warn;
        if self.jobs.is_some() {
            o.jobs = self.jobs;
        }
        o.no_owner |= self.no_owner;
        if let Some(w) = &self.lock_wait {
            o.lock_wait =
                backup_core::source::postgres::parse_lock_wait(w).map_err(|m| Error::Usage {
                    message: format!("--lock-wait: {m}"),
                })?;
        }
        o.validate().map_err(|m| Error::Usage { message: m })?;
        Ok(o)
    }
}

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct DrillArgs {
    /// Restore drill: restore the stored backup into a scratch database (a throwaway cluster from local server binaries, else a drill server), compare row counts, run smoke checks, drop it. PostgreSQL backups drill by default where they can.
    #[arg(long)]
    drill: bool,
    /// Drill into a temporary database on this server (postgres://…).
    #[arg(long, value_name = "URL")]
    drill_server: Option<String>,
    /// Drill into a throwaway cluster started from local server binaries.
    #[arg(long)]
    drill_cluster: bool,
}

/// What a drill is for.
pub(crate) enum DrillFor<'a> {
    /// After a backup of a `kind` source at `source_url`; `off` is
    /// `--no-drill`.
    Backup {
        kind: &'a str,
        source_url: &'a str,
        off: bool,
    },
    /// `verify` of a backup of `kind`.
    Verify { kind: &'a str },
}

impl DrillArgs {
    /// Whether a drill was asked for on the command line.
    pub(crate) fn explicit(&self) -> bool {
        self.drill || self.drill_server.is_some() || self.drill_cluster
    }

    /// The drill verifier, if any: asked for on the command line, by
    /// `[drill] after_backup`, or by default after a PostgreSQL backup.
    ///
    /// The target: `--drill-cluster`, `--drill-server`/`[drill] server`,
    /// `[drill] cluster`, else automatic: a throwaway cluster when local
    /// server binaries fit the backup, else (a `--drill` asked for
    /// explicitly) the source's own server for a backup or the config's
    /// PostgreSQL source for a verify. A default drill with no target is
    /// skipped with a note, and the backup is committed as checked.
    pub(crate) fn resolve(
        &self,
        ctx: &Context,
        pg: &PostgresOptions,
        purpose: DrillFor<'_>,
    ) -> Result<Option<Arc<dyn Verifier>>, Error> {
        let cfg = ctx.settings.drill.clone().unwrap_or_default();
        let explicit = self.explicit();
        let (kind, wanted, fallback) = match purpose {
            DrillFor::Backup {
                kind,
                source_url,
                off,
            } => {
                if off && explicit {
                    return Err(Error::Usage {
                        message: "--no-drill and --drill… contradict each other".into(),
                    });
                }
                let default = kind == "postgres";
                let wanted = !off && (explicit || cfg.after_backup.unwrap_or(default));
                (kind, wanted, explicit.then(|| source_url.to_string()))
            }
            DrillFor::Verify { kind } => {
                let config_source = ctx
                    .settings
                    .source
                    .clone()
                    .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
                (kind, explicit, config_source)
            }
        };
        if !wanted {
            return Ok(None);
        }
        if kind == "sqlite" {
            return Ok(Some(Arc::new(backup_core::verify::SqliteDrill)));
        }
        let target = if self.drill_cluster {
            DrillTarget::Cluster
        } else if let Some(s) = self.drill_server.clone().or(cfg.server.clone()) {
            DrillTarget::Server(s)
        } else if cfg.cluster {
            DrillTarget::Cluster
        } else {
            DrillTarget::Auto { fallback }
        };
        Ok(Some(pg_drill(target, pg.clone(), cfg.smoke)))
    }
}
