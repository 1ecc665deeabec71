//! The operations users run: [`backup`], [`restore`], [`verify`],
//! [`drill`], [`list`], [`prune`], [`status`] and [`wal`] (push and fetch),
//! one module each.
//!
//! Each takes an [`Env`] (the resolved `lifeboat.toml` profile, or plain
//! settings built in code, plus an optional progress sink) and its typed
//! arguments (`BackupArgs`, `RestoreArgs`, …), and returns a typed,
//! serializable result. The `lifeboat` command line, the Node and Python
//! packages and a Rust service all call these same functions, so the three
//! doors cannot drift: retries, several databases per URL, globals once per
//! run, the drill before the commit, metrics, notifications and retention
//! after a backup all live here.
//!
//! The argument structs are serde types (the bindings' options are their
//! fields, in snake_case) and, with the `clap` feature, clap `Args` (the
//! command line's flags are the same fields in kebab-case). Each verb's
//! struct holds only what that verb uses.
//!
//! ```no_run
//! use backup_core::ops::{self, Env, backup::BackupArgs};
//!
//! # async fn demo() -> backup_core::Result<()> {
//! // What `lifeboat backup --config lifeboat.toml --profile prod` does.
//! let env = Env::load(Some("lifeboat.toml".as_ref()), Some("prod"))?;
//! let run = ops::backup::run(&env, &BackupArgs::default()).await;
//! for b in &run.backups {
//!     println!("{} {}", b.manifest.backup_id, b.location);
//! }
//! run.into_result()?;
//! # Ok(()) }
//! ```

pub mod backup;
pub mod doctor;
pub mod drill;
mod hooks;
pub mod json;
pub mod list;
pub mod mirror;
pub mod prune;
pub mod restore;
pub mod status;
pub mod verify;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Settings};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::sink::Sink;
use crate::source::{PostgresOptions, SourceKind};
use crate::{ByteSize, Selector, Verdict};

/// What every operation runs in: the settings (a profile of
/// `lifeboat.toml`, or built in code) and where progress goes.
#[derive(Clone, Default)]
pub struct Env {
    settings: Settings,
    progress: Option<Arc<dyn Progress>>,
    config_path: Option<PathBuf>,
    config: Option<Config>,
    profile: Option<String>,
    /// Set when the config has several profiles and none was chosen:
    /// operations about one source refuse to guess.
    ambiguous: Option<String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("config_path", &self.config_path)
            .field("profile", &self.profile)
            .field("progress", &self.progress.is_some())
            .finish_non_exhaustive()
    }
}

impl Env {
    /// Settings built in code, no config file.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// The settings of `profile` in `config` (default: `./lifeboat.toml`
    /// when it exists; none at all otherwise). With several profiles and
    /// none named, operations about one source refuse to guess (`status`
    /// checks every profile).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad file or an unknown profile.
    pub fn load(config: Option<&Path>, profile: Option<&str>) -> Result<Self> {
        let path = match config {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let default = PathBuf::from("lifeboat.toml");
                default.is_file().then_some(default)
            }
        };
        let mut ambiguous = None;
        let (settings, config) = match &path {
            Some(p) => {
                let config = Config::load(p)?;
                let settings = match config.resolve(profile) {
                    Ok(s) => s,
                    Err(Error::Config { message, .. }) if profile.is_none() => {
                        ambiguous = Some(message);
                        config.defaults.clone()
                    }
                    Err(e) => return Err(e),
                };
                (settings, Some(config))
            }
            None if profile.is_some() => {
                return Err(Error::Config {
                    origin: "--profile".into(),
                    message: "a profile was named but there is no config file (pass --config or create lifeboat.toml)".into(),
                });
            }
            None => (Settings::default(), None),
        };
        Ok(Self {
            settings,
            progress: None,
            config_path: path,
            config,
            profile: profile.map(str::to_string),
            ambiguous,
        })
    }

    /// Report progress of long work here.
    #[must_use]
    pub fn with_progress(mut self, progress: Option<Arc<dyn Progress>>) -> Self {
        self.progress = progress;
        self
    }

    /// The resolved settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The config file in use, if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The progress sink, if any.
    pub fn progress(&self) -> Option<Arc<dyn Progress>> {
        self.progress.clone()
    }

    /// Refuse to guess among several profiles.
    ///
    /// # Errors
    /// [`Error::Config`] when the config has several profiles and none was
    /// chosen.
    pub fn require_profile(&self) -> Result<()> {
        match &self.ambiguous {
            None => Ok(()),
            Some(message) => Err(Error::Config {
                origin: self
                    .config_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                message: message.clone(),
            }),
        }
    }

    /// The sink's URL as given: the argument, else the settings' (for
    /// commands that hand it on, such as a `restore_command`).
    pub(crate) fn sink_url(&self, arg: Option<&str>) -> Option<String> {
        arg.map(str::to_string)
            .or_else(|| self.settings.sink.clone())
    }

    /// The sink from an argument (`flag` names it in messages) or the
    /// settings.
    pub(crate) fn sink(&self, arg: Option<&str>, flag: &str) -> Result<Arc<dyn Sink>> {
        if arg.is_none() {
            // Taking the sink from the config needs one profile.
            self.require_profile()?;
        }
        let url = arg
            .map(str::to_string)
            .or_else(|| self.settings.sink.clone())
            .or_else(|| self.settings.sinks.first().map(|s| s.url.clone()))
            .ok_or_else(|| Error::Usage {
            message: format!("no sink: pass {flag} URL (file:///var/backups/app, s3://bucket/prefix, gs://…, spaces://…) or set sink in lifeboat.toml"),
        })?;
        let opts = self.settings.sink_options.clone().unwrap_or_default();
        crate::sink_from_url(&url, &opts)
    }

    /// The source name to look for: the argument, else the config's
    /// `name`, else the name the config's source gets by default.
    pub(crate) fn source_name(&self, arg: Option<&str>) -> Result<Option<String>> {
        if let Some(a) = arg {
            return Ok(Some(a.to_string()));
        }
        if self.ambiguous.is_some() {
            return Ok(None);
        }
        if let Some(n) = &self.settings.name {
            return Ok(Some(n.clone()));
        }
        match &self.settings.source {
            Some(url) => {
                let sources = crate::sources_from_url(url, &Default::default())?;
                Ok((sources.len() == 1).then(|| sources[0].default_name()))
            }
            None => Ok(None),
        }
    }

    /// The size floor: the argument, else the settings', else 1 KiB.
    pub(crate) fn min_size(&self, arg: Option<&str>) -> Result<u64> {
        match arg {
            Some(s) => ByteSize::parse(s).map(|b| b.0).map_err(|m| Error::Usage {
                message: format!("--min-size: {m}"),
            }),
            None => Ok(self
                .settings
                .min_size
                .map(|b| b.0)
                .unwrap_or(crate::verify::size::DEFAULT_MIN_SIZE)),
        }
    }

    /// The temp dir: the argument, else the settings', else the system's.
    pub(crate) fn temp_dir(&self, arg: Option<&PathBuf>) -> Option<PathBuf> {
        arg.cloned().or_else(|| self.settings.temp_dir.clone())
    }

    /// Where temporary directories go: the settings' temp dir, else the
    /// system's.
    /// The recipients `a` names, else the config's `[encryption]`; `None`
    /// when there are none (not encrypted).
    pub(crate) fn recipients(&self, a: &EncryptArgs) -> Result<Option<crate::crypt::Recipients>> {
        let cfg = self.settings.encryption.clone().unwrap_or_default();
        let (keys, files) = if a.recipients.is_empty() && a.recipients_file.is_none() {
            (
                cfg.recipients,
                cfg.recipients_file.into_iter().collect::<Vec<_>>(),
            )
        } else {
            (
                a.recipients.clone(),
                a.recipients_file.clone().into_iter().collect(),
            )
        };
        crate::crypt::Recipients::parse(&keys, &files)
    }

    /// The identity file `arg` names, else the config's `identity_file`
    /// (absolute, for a server's `restore_command`).
    pub(crate) fn identity_path(&self, arg: Option<&Path>) -> Option<PathBuf> {
        let p = arg.map(Path::to_path_buf).or_else(|| {
            self.settings
                .encryption
                .as_ref()
                .and_then(|e| e.identity_file.clone())
        })?;
        Some(std::path::absolute(&p).unwrap_or(p))
    }

    /// The identities of [`identity_path`](Self::identity_path), read;
    /// `None` when no file is given.
    pub(crate) fn identities(
        &self,
        arg: Option<&Path>,
    ) -> Result<Option<crate::crypt::Identities>> {
        self.identity_path(arg)
            .map(|p| crate::crypt::Identities::from_file(&p))
            .transpose()
    }

    pub(crate) fn temp_root(&self) -> PathBuf {
        self.settings
            .temp_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }

    /// The configured PostgreSQL source's URL, if the source is PostgreSQL.
    pub(crate) fn postgres_source_url(&self) -> Option<String> {
        self.settings
            .source
            .clone()
            .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }

    /// Every profile's settings (the top level when there are none), for
    /// `status` over a whole config file.
    pub(crate) fn every_profile(&self) -> Vec<Settings> {
        match &self.config {
            Some(c) if !c.profiles.is_empty() && self.profile.is_none() => c
                .profiles
                .iter()
                .map(|(name, _)| c.resolve(Some(name)).unwrap_or_else(|_| c.defaults.clone()))
                .collect(),
            _ => vec![self.settings.clone()],
        }
    }
}

/// Which stored backup: `--from SINK [--source NAME] [ID | --latest]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct SelectArgs {
    /// Backup id (or a unique prefix); default: the latest.
    pub id: Option<String>,
    /// The latest complete backup (the default; refuses an id alongside).
    #[cfg_attr(feature = "clap", arg(long))]
    pub latest: bool,
    /// Where backups live (default: sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "from", value_name = "SINK"))]
    pub sink: Option<String>,
    /// Which source's backups, when the sink holds several.
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: Option<String>,
    /// The age identity file that decrypts encrypted backups (default: identity_file in [encryption]). A path: the key itself never goes on the command line.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub identity: Option<PathBuf>,
}

/// Whom backups are encrypted to (age public keys; default: [encryption]
/// in lifeboat.toml).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct EncryptArgs {
    /// Encrypt to this age public key (age1…; repeatable). Only public keys are needed to back up.
    #[cfg_attr(feature = "clap", arg(long = "recipient", value_name = "AGE1KEY"))]
    pub recipients: Vec<String>,
    /// Encrypt to the age public keys in this file (one per line, # comments).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub recipients_file: Option<PathBuf>,
}

impl SelectArgs {
    pub(crate) fn selector(&self) -> Result<Selector> {
        match (&self.id, self.latest) {
            (Some(_), true) => Err(Error::Usage {
                message: "give a backup id or --latest, not both".into(),
            }),
            (Some(id), false) => Ok(Selector::Id(id.clone())),
            (None, _) => Ok(Selector::Latest),
        }
    }
}

/// Where the PostgreSQL client tools come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct PgToolArgs {
    /// PostgreSQL: directory holding pg_dump/pg_restore to use (default: PATH, then /usr/lib/postgresql/*/bin, newest fitting).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub pg_bin_dir: Option<PathBuf>,
    /// PostgreSQL: run the tools through this command, e.g. "docker exec -i db".
    #[cfg_attr(feature = "clap", arg(long, value_name = "COMMAND"))]
    pub command_prefix: Option<String>,
}

impl PgToolArgs {
    /// The settings' `[postgres]` table with these over it.
    pub(crate) fn resolve(&self, env: &Env) -> PostgresOptions {
        let mut o = env.settings.postgres.clone().unwrap_or_default();
        if let Some(d) = &self.pg_bin_dir {
            o.tools.bin_dir = Some(d.clone());
        }
        if let Some(p) = &self.command_prefix {
            o.tools.command_prefix = p.split_whitespace().map(str::to_string).collect();
        }
        o
    }
}

/// Where a restore drill goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct DrillTargetArgs {
    /// Drill into a temporary database on this server (postgres://…).
    #[cfg_attr(feature = "clap", arg(long, value_name = "URL"))]
    pub drill_server: Option<String>,
    /// Drill into a throwaway cluster started from local server binaries.
    #[cfg_attr(feature = "clap", arg(long))]
    pub drill_cluster: bool,
    /// PostgreSQL: parallel pg_restore jobs for the drill (default: cores).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub jobs: Option<u32>,
}

/// What a drill is for.
pub(crate) enum DrillFor<'a> {
    /// After a backup of a `kind` source at `source_url`; `off` is
    /// `--no-drill`; `explicit` is a drill asked for by name.
    Backup {
        kind: &'a str,
        source_url: &'a str,
        off: bool,
        explicit: bool,
    },
    /// `verify --drill` or `drill` of a backup of `kind`.
    Stored { kind: &'a str, explicit: bool },
}

impl DrillTargetArgs {
    /// Whether a target was named.
    pub(crate) fn named(&self) -> bool {
        self.drill_server.is_some() || self.drill_cluster
    }

    /// The drill verifier, if any: asked for by name, by `[drill]
    /// after_backup`, or by default after a PostgreSQL backup.
    ///
    /// The target: `drill_cluster`, `drill_server`/`[drill] server`,
    /// `[drill] cluster`, else automatic: a throwaway cluster when local
    /// server binaries fit the backup, else (a drill asked for explicitly)
    /// the source's own server for a backup or the config's PostgreSQL
    /// source for a stored backup. A default drill with no target is
    /// skipped with a note, and the backup is committed as checked.
    pub(crate) fn resolve(
        &self,
        env: &Env,
        pg: &PostgresOptions,
        purpose: DrillFor<'_>,
    ) -> Result<Option<Arc<dyn crate::Verifier>>> {
        let cfg = env.settings.drill.clone().unwrap_or_default();
        let mut pg = pg.clone();
        if self.jobs.is_some() {
            pg.jobs = self.jobs;
        }
        pg.validate().map_err(usage)?;
        let (kind, wanted, fallback) = match purpose {
            DrillFor::Backup {
                kind,
                source_url,
                off,
                explicit,
            } => {
                if off && explicit {
                    return Err(Error::Usage {
                        message: "--no-drill and --drill… contradict each other".into(),
                    });
                }
                let default = SourceKind::parse(kind) == Some(SourceKind::Postgres);
                let wanted = !off && (explicit || cfg.after_backup.unwrap_or(default));
                (kind, wanted, explicit.then(|| source_url.to_string()))
            }
            DrillFor::Stored { kind, explicit } => (kind, explicit, env.postgres_source_url()),
        };
        if !wanted {
            return Ok(None);
        }
        if SourceKind::parse(kind) == Some(SourceKind::Sqlite) {
            return Ok(Some(Arc::new(crate::source::sqlite::SqliteDrill)));
        }
        let target = if self.drill_cluster {
            crate::DrillTarget::Cluster
        } else if let Some(s) = self.drill_server.clone().or(cfg.server.clone()) {
            crate::DrillTarget::Server(s)
        } else if cfg.cluster {
            crate::DrillTarget::Cluster
        } else {
            crate::DrillTarget::Auto { fallback }
        };
        Ok(Some(crate::source::postgres::pg_drill(
            target, pg, cfg.smoke,
        )))
    }
}

/// `"pass"`/`"fail"` per verifier: `size:pass,checksum:pass`.
pub fn verdict_summary(verdicts: &[Verdict]) -> String {
    verdicts
        .iter()
        .map(|v| format!("{}:{}", v.verifier, if v.passed { "pass" } else { "fail" }))
        .collect::<Vec<_>>()
        .join(",")
}

/// A human size: `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Accept `"1 KiB"` or `1024` from the bindings for a size or duration.
pub(crate) fn string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::N(n) => n.to_string(),
        Raw::S(s) => s,
    }))
}

fn usage(message: impl Into<String>) -> Error {
    Error::Usage {
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn an_id_and_latest_together_are_refused() {
        let a = SelectArgs {
            id: Some("x".into()),
            latest: true,
            ..Default::default()
        };
        assert_eq!(a.selector().unwrap_err().kind(), crate::ErrorKind::Usage);
    }
}
