//! `lifeboat.toml`: profiles of source, sink and settings.
//!
//! ```toml
//! # Settings at the top level apply to every profile.
//! min_size = "1 KiB"
//!
//! [profiles.prod]
//! source = "sqlite:///srv/app.db"
//! sink = "s3://acme-backups/prod"
//!
//! [profiles.prod.sink_options]
//! endpoint = "${S3_ENDPOINT}"
//!
//! [profiles.staging]
//! source = "sqlite:///srv/staging.db"
//! sink = "file:///var/backups/staging"
//! ```
//!
//! Every string may use `${VAR}` to take a value from the environment (`$$`
//! is a literal `$`); a variable that is not set is an error naming it. Unknown
//! keys and wrong types are errors that name the key and line.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::sink::SinkOptions;
pub(crate) use crate::units::opt_duration;
pub use crate::units::{
    ByteSize, MAX_DURATION_SECS, MAX_THREADS, check_duration, check_range, parse_duration_secs,
};

/// Settings of one profile (or the top level). All optional: the command
/// line fills in or overrides.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// Source URL (`sqlite:///srv/app.db`).
    pub source: Option<String>,
    /// Sink URL (`s3://bucket/prefix`).
    pub sink: Option<String>,
    /// Source name in the bucket layout.
    pub name: Option<String>,
    /// Size floor for a dump: bytes, or a string like `"1 KiB"`, `"5MB"`.
    pub min_size: Option<ByteSize>,
    /// zstd level (1 to 19).
    pub compression_level: Option<i32>,
    /// Compression threads.
    pub threads: Option<u32>,
    /// Directory for lock files.
    pub lock_dir: Option<PathBuf>,
    /// Directory for temporary files.
    pub temp_dir: Option<PathBuf>,
    /// Sink settings (endpoint, region, credentials, part size).
    pub sink_options: Option<SinkOptions>,
    /// PostgreSQL settings: tools, filters, globals, replica guard.
    pub postgres: Option<crate::source::PostgresOptions>,
    /// Restore drills of PostgreSQL backups.
    pub drill: Option<DrillSettings>,
    /// Which backups to keep (`lifeboat prune`, and after each backup when
    /// `after_backup` is set).
    pub retention: Option<crate::retention::RetentionPolicy>,
    /// Health thresholds for `lifeboat status`.
    pub health: Option<crate::health::HealthPolicy>,
    /// Prometheus textfile directory and/or Pushgateway.
    pub metrics: Option<crate::metrics::MetricsConfig>,
    /// Slack and JSON webhooks.
    pub notify: Option<crate::notify::NotifyConfig>,
    /// Whole-run retries on transient failures.
    pub retries: Option<RetryPolicy>,
    /// When `lifeboat schedule` runs this profile: `"daily 03:00"`,
    /// `"weekly sun 03:00"`, `"monthly 1 03:00"`, `"hourly"`.
    pub schedule: Option<String>,
    /// Also write logs to this file (checked for writability at start).
    pub log_file: Option<PathBuf>,
    /// age encryption: recipients for backups and WAL, the identity file
    /// for restore, verify, drill and `wal fetch`.
    pub encryption: Option<EncryptionSettings>,
    /// Several sinks for one run (`[[sinks]]`), each with its own
    /// retention: the database is read once, the first reachable sink gets
    /// the backup, and the others a checked copy with their own manifest.
    /// Without `sink`, the first of these is where the other commands look.
    #[serde(default)]
    pub sinks: Vec<SinkSpec>,
}

/// One of `[[sinks]]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SinkSpec {
    /// The sink's URL.
    pub url: String,
    /// Its own retention (default: the profile's `[retention]`).
    pub retention: Option<crate::retention::RetentionPolicy>,
}

/// `[encryption]`: age public keys to encrypt to, and where the secret key
/// is for reading (a path: the key itself never goes in the config).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EncryptionSettings {
    /// `age1…` public keys; every backup and WAL file is encrypted to all.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A file of `age1…` public keys, one per line (`#` comments).
    pub recipients_file: Option<PathBuf>,
    /// An age identity file (`age-keygen -o`): restore, verify, drill and
    /// `wal fetch` decrypt with it.
    pub identity_file: Option<PathBuf>,
}

/// Whole-run retries: a run that fails with a transient error (network,
/// 5xx, a held lock) is tried again; permanent errors (authentication,
/// configuration, a missing database) are not.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Wait before the second attempt (`"30s"`, or seconds).
    #[serde(deserialize_with = "crate::config::opt_duration::deserialize")]
    pub interval: Option<u64>,
    /// Each further wait is this many times the previous one.
    pub backoff: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 1,
            interval: Some(30),
            backoff: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `n` (2, 3, …).
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        let base = self.interval.unwrap_or(30) as f64;
        let secs = base * self.backoff.max(1.0).powi(attempt.saturating_sub(2) as i32);
        std::time::Duration::from_secs_f64(secs.min(3600.0))
    }
}

/// `[drill]`: where restore drills go and what they check.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DrillSettings {
    /// Drill into a temporary database on this server (a postgres:// URL).
    pub server: Option<String>,
    /// Drill into a throwaway cluster started from local server binaries.
    #[serde(default)]
    pub cluster: bool,
    /// Drill after every backup, before its manifest is written. Default:
    /// yes for PostgreSQL where a drill can run (local server binaries for
    /// a throwaway cluster, or `server`), no for SQLite (its backup-time
    /// checks already read the snapshot back). `false` turns it off.
    #[serde(default)]
    pub after_backup: Option<bool>,
    /// Smoke checks: `{ sql = "...", min_rows = 1 }` or `{ table = "...", min_rows = 1 }`.
    #[serde(default)]
    pub smoke: Vec<crate::source::postgres::SmokeCheck>,
}

impl RetryPolicy {
    /// Check the numbers.
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn validate(&self) -> std::result::Result<(), String> {
        check_range("retries.attempts", self.attempts, 1..=100)?;
        if !self.backoff.is_finite() {
            return Err("retries.backoff must be a finite number".into());
        }
        check_range("retries.backoff", self.backoff, 1.0..=10.0)?;
        Ok(())
    }
}

impl Settings {
    /// Check every number for sense (ranges, overflow) before anything runs.
    ///
    /// # Errors
    /// A message naming the key and the accepted range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(l) = self.compression_level {
            check_range("compression_level", l, 1..=19)?;
        }
        if let Some(t) = self.threads {
            check_range("threads", t, 1..=MAX_THREADS)?;
        }
        if let Some(o) = &self.sink_options {
            o.validate()?;
        }
        if let Some(r) = &self.retention {
            r.validate().map_err(|e| format!("retention.{e}"))?;
        }
        if let Some(h) = &self.health {
            h.validate().map_err(|e| format!("health.{e}"))?;
        }
        if let Some(r) = &self.retries {
            r.validate()?;
        }
        if let Some(p) = &self.postgres {
            p.validate().map_err(|e| format!("postgres.{e}"))?;
        }
        Ok(())
    }

    /// Register the secrets these settings hold (webhook URLs, sink
    /// credentials) so no output ever shows them (see `redact`).
    pub fn register_secrets(&self) {
        if let Some(n) = &self.notify {
            for url in [&n.slack_webhook, &n.webhook].into_iter().flatten() {
                crate::redact::register(url);
            }
        }
        if let Some(o) = &self.sink_options {
            for s in [&o.access_key_id, &o.secret_access_key, &o.session_token]
                .into_iter()
                .flatten()
            {
                crate::redact::register(s);
            }
        }
    }

    /// `other`'s values where set, else ours.
    pub fn overlay(&self, other: &Settings) -> Settings {
        Settings {
            source: other.source.clone().or_else(|| self.source.clone()),
            sink: other.sink.clone().or_else(|| self.sink.clone()),
            name: other.name.clone().or_else(|| self.name.clone()),
            min_size: other.min_size.or(self.min_size),
            compression_level: other.compression_level.or(self.compression_level),
            threads: other.threads.or(self.threads),
            lock_dir: other.lock_dir.clone().or_else(|| self.lock_dir.clone()),
            temp_dir: other.temp_dir.clone().or_else(|| self.temp_dir.clone()),
            sink_options: other
                .sink_options
                .clone()
                .or_else(|| self.sink_options.clone()),
            postgres: other.postgres.clone().or_else(|| self.postgres.clone()),
            drill: other.drill.clone().or_else(|| self.drill.clone()),
            retention: other.retention.clone().or_else(|| self.retention.clone()),
            health: other.health.clone().or_else(|| self.health.clone()),
            metrics: other.metrics.clone().or_else(|| self.metrics.clone()),
            notify: other.notify.clone().or_else(|| self.notify.clone()),
            retries: other.retries.clone().or_else(|| self.retries.clone()),
            schedule: other.schedule.clone().or_else(|| self.schedule.clone()),
            encryption: other.encryption.clone().or_else(|| self.encryption.clone()),
            sinks: if other.sinks.is_empty() {
                self.sinks.clone()
            } else {
                other.sinks.clone()
            },
            log_file: other.log_file.clone().or_else(|| self.log_file.clone()),
        }
    }
}

/// A parsed `lifeboat.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Top-level settings.
    pub defaults: Settings,
    /// Named profiles, in file order.
    pub profiles: Vec<(String, Settings)>,
}

impl Config {
    /// Read and check a config file.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing or unreadable file, bad TOML, an
    /// unknown key, a wrong type or an unset `${VAR}`.
    pub fn load(path: &Path) -> Result<Self> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(&origin, format!("cannot read: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parse config text; `path` is used in messages.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let origin = path.display().to_string();
        let one_line = |e: toml::de::Error| -> Error {
            let msg = e.message().to_string();
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            Error::config(&origin, format!("{at}{msg}").replace('\n', " "))
        };
        // Syntax first, then interpolation on the value tree, then types,
        // so errors point at the file and secrets are never echoed.
        let mut value: toml::Table = toml::from_str(text).map_err(one_line)?;
        interpolate_table(&mut value, &origin)?;
        let profiles_value = value.remove("profiles");
        let defaults_table = value.clone();
        let defaults: Settings = typed(toml::Value::Table(value), text, &origin, "")?;
        defaults.register_secrets();
        defaults.validate().map_err(|m| Error::config(&origin, m))?;
        let profiles_table = match profiles_value {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                return Err(Error::config(
                    &origin,
                    "profiles must be tables: [profiles.NAME]",
                ));
            }
        };
        let mut profiles = Vec::new();
        // Keep file order: toml::Table preserves insertion order only with
        // `preserve_order`; sort by position in the text instead.
        let mut names: Vec<String> = profiles_table.keys().cloned().collect();
        names.sort_by_key(|n| text.find(&format!("[profiles.{n}]")).unwrap_or(usize::MAX));
        for name in names {
            // A profile's tables merge into the top level's key by key
            // (`[profiles.p.postgres] jobs = 2` keeps the top level's
            // `[postgres]` filters); other values replace.
            let v = match profiles_table[&name].clone() {
                toml::Value::Table(t) => {
                    let mut merged = defaults_table.clone();
                    merge_tables(&mut merged, t);
                    toml::Value::Table(merged)
                }
                other => other,
            };
            let settings: Settings = typed(v, text, &origin, &format!("profiles.{name}"))?;
            settings.register_secrets();
            settings
                .validate()
                .map_err(|m| Error::config(&origin, format!("profiles.{name}.{m}")))?;
            profiles.push((name, settings));
        }
        Ok(Self {
            path: path.to_path_buf(),
            defaults,
            profiles,
        })
    }

    /// The settings of `profile` over the top-level ones. With no profile
    /// named: the only profile if there is exactly one, else the top level.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown profile, or when several exist and
    /// none is named.
    pub fn resolve(&self, profile: Option<&str>) -> Result<Settings> {
        let origin = self.path.display().to_string();
        match profile {
            Some(name) => {
                let found = self.profiles.iter().find(|(n, _)| n == name);
                match found {
                    Some((_, s)) => Ok(self.defaults.overlay(s)),
                    None => Err(Error::config(
                        origin,
                        format!(
                            "no profile {name:?} (profiles: {})",
                            self.profile_names().join(", ")
                        ),
                    )),
                }
            }
            None => match self.profiles.len() {
                0 => Ok(self.defaults.clone()),
                1 => Ok(self.defaults.overlay(&self.profiles[0].1)),
                _ if self.defaults.source.is_some() => Ok(self.defaults.clone()),
                _ => Err(Error::config(
                    origin,
                    format!(
                        "several profiles ({}); choose one with --profile",
                        self.profile_names().join(", ")
                    ),
                )),
            },
        }
    }

    /// The profile names, in file order.
    pub fn profile_names(&self) -> Vec<String> {
        self.profiles.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Deserialize settings, naming the key (and its line in `text`) on error.
/// `over`'s keys into `base`: tables merge recursively, anything else
/// (numbers, strings, arrays) replaces.
fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn typed(value: toml::Value, text: &str, origin: &str, at: &str) -> Result<Settings> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (at.is_empty(), inner.as_str()) {
            (_, "" | ".") => at.to_string(),
            (true, p) => p.to_string(),
            (false, p) => format!("{at}.{p}"),
        };
        let last = path.rsplit('.').next().unwrap_or("");
        let line = text.lines().position(|l| {
            let l = l.trim_start();
            l.starts_with(last) && l[last.len()..].trim_start().starts_with('=')
        });
        let at_line = match line {
            Some(n) if !last.is_empty() => format!("line {}: ", n + 1),
            _ => String::new(),
        };
        let msg = without_values(&e.inner().to_string()).replace('\n', " ");
        let msg = msg.trim_end_matches('.').to_string();
        if path.is_empty() {
            Error::config(origin, format!("{at_line}{msg}"))
        } else {
            Error::config(origin, format!("{at_line}{path}: {msg}"))
        }
    })
}

/// Keys whose values are plainly public (paths, names, URLs whose
/// passwords are masked anyway): values interpolated into any other key are
/// treated as secrets and never printed (see `redact`).
const PUBLIC_KEYS: [&str; 44] = [
    // Numbers, sizes, durations, switches: never secrets, and masking them
    // would break the JSON they appear in.
    "min_size",
    "compression_level",
    "threads",
    "part_size",
    "upload_concurrency",
    "max_retries",
    "keep_last",
    "keep_days",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "incomplete_grace",
    "max_age",
    "max_size_drop",
    "attempts",
    "interval",
    "backoff",
    "jobs",
    "min_tables",
    "lock_wait",
    "max_replica_lag",
    "min_rows",
    "on_success",
    "after_backup",
    "globals",
    "source",
    "sink",
    "name",
    "lock_dir",
    "temp_dir",
    "log_file",
    "schedule",
    "endpoint",
    "region",
    "bin_dir",
    "service_account_path",
    "textfile_dir",
    "schemas",
    "exclude_schemas",
    "tables",
    "exclude_tables",
    "command_prefix",
    "server",
    "sslrootcert",
];

fn interpolate_table(t: &mut toml::Table, origin: &str) -> Result<()> {
    for (k, v) in t.iter_mut() {
        interpolate_value(v, origin, k)?;
    }
    Ok(())
}

fn interpolate_value(v: &mut toml::Value, origin: &str, key: &str) -> Result<()> {
    match v {
        toml::Value::String(s) => {
            let (value, substituted) = interpolate(s, origin)?;
            if !PUBLIC_KEYS.contains(&key) {
                for sub in substituted {
                    crate::redact::register(&sub);
                }
            }
            *s = value;
        }
        toml::Value::Array(a) => {
            for x in a {
                interpolate_value(x, origin, key)?;
            }
        }
        toml::Value::Table(t) => interpolate_table(t, origin)?,
        _ => {}
    }
    Ok(())
}

/// Replace `${VAR}` with the environment's value; `$$` is a literal `$`.
/// Also returns the values substituted.
fn interpolate(s: &str, origin: &str) -> Result<(String, Vec<String>)> {
    let mut substituted = Vec::new();
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| {
                Error::config(
                    origin,
                    "unterminated ${ in a value (write $$ for a literal $)",
                )
            })?;
            let var = &r[..end];
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::config(
                    origin,
                    format!("invalid variable name ${{{var}}}"),
                ));
            }
            let val = std::env::var(var).map_err(|_| {
                Error::config(origin, format!("environment variable {var} is not set"))
            })?;
            out.push_str(&val);
            substituted.push(val);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, substituted))
}

/// A serde message without the value it complains about (it may have come
/// from `${VAR}`): `invalid type: string "x", expected u32` → `invalid type:
/// a string, expected u32`.
fn without_values(msg: &str) -> String {
    let mut out = msg.to_string();
    while let Some(i) = out.find("string \"") {
        let start = i + "string ".len();
        let Some(len) = out[start + 1..].find('"') else {
            break;
        };
        out.replace_range(i..start + 1 + len + 1, "a string");
    }
    for marker in ["unknown variant `", "invalid value: string `"] {
        if let Some(i) = out.find(marker) {
            let start = i + marker.len();
            if let Some(len) = out[start..].find('`') {
                out.replace_range(start - 1..start + len + 1, "***");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("lifeboat.toml"))
    }

    #[test]
    fn profiles_overlay_the_top_level() {
        let c = parse(
            "min_size = \"2 KiB\"\nsink = \"file:///b\"\n[profiles.prod]\nsource = \"sqlite:///a.db\"\n[profiles.staging]\nsource = \"sqlite:///s.db\"\nmin_size = 10\n",
        )
        .unwrap();
        assert_eq!(c.profile_names(), vec!["prod", "staging"]);
        let prod = c.resolve(Some("prod")).unwrap();
        assert_eq!(prod.min_size, Some(ByteSize(2048)));
        assert_eq!(prod.sink.as_deref(), Some("file:///b"));
        assert_eq!(
            c.resolve(Some("staging")).unwrap().min_size,
            Some(ByteSize(10))
        );
        let err = c.resolve(None).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        let err = c.resolve(Some("nope")).unwrap_err();
        assert!(err.to_string().contains("prod, staging"), "{err}");
    }

    #[test]
    fn a_profiles_tables_merge_key_by_key() {
        let c = parse(
            "source = \"postgres://h/db\"\nsink = \"file:///b\"\n[postgres]\nexclude_schemas = [\"audit\"]\nmin_tables = 3\n[retention]\nkeep_last = 7\n[profiles.prod.postgres]\njobs = 2\n[profiles.prod.retention]\nkeep_days = 90\n[profiles.dev]\nname = \"dev\"\n",
        )
        .unwrap();
        let prod = c.resolve(Some("prod")).unwrap();
        let pg = prod.postgres.unwrap();
        assert_eq!(pg.jobs, Some(2), "the profile's own key");
        assert_eq!(
            pg.exclude_schemas,
            vec!["audit".to_string()],
            "kept from the top level"
        );
        assert_eq!(pg.min_tables, 3, "kept from the top level");
        let r = prod.retention.unwrap();
        assert_eq!((r.keep_last, r.keep_days), (Some(7), Some(90)));
        let dev = c.resolve(Some("dev")).unwrap();
        assert_eq!(dev.postgres.unwrap().min_tables, 3);
        assert_eq!(dev.name.as_deref(), Some("dev"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_config_errors() {
        let err = parse("colour = 1\n").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains("colour"), "{err}");
        let err = parse("[profiles.p]\ncompression_level = \"high\"\n").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(
            err.to_string()
                .contains("line 2: profiles.p.compression_level"),
            "{err}"
        );
        let err = parse("[profiles.p.sink_options]\nendpont = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("endpont"), "{err}");
        let err = parse("min_size = \"12 parsecs\"\n").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }

    #[test]
    fn env_interpolation_fills_values_and_names_missing_variables() {
        // SAFETY-free: test-only variable names nobody else uses.
        let c = parse("sink = \"s3://${HOME}x\"\nname = \"a$$b\"\n").unwrap();
        let home = std::env::var("HOME").unwrap();
        assert_eq!(c.defaults.sink.unwrap(), format!("s3://{home}x"));
        assert_eq!(c.defaults.name.unwrap(), "a$b");
        let err = parse("sink = \"${LIFEBOAT_SURELY_UNSET_VAR}\"\n").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains("LIFEBOAT_SURELY_UNSET_VAR"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("a = 1\nb = = 2\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(ByteSize::parse("1 KiB").unwrap(), ByteSize(1024));
        assert_eq!(ByteSize::parse("5MB").unwrap(), ByteSize(5_000_000));
        assert_eq!(ByteSize::parse("42").unwrap(), ByteSize(42));
        assert!(ByteSize::parse("lots").is_err());
    }
}
