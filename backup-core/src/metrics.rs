//! Prometheus metrics after each run: a node_exporter textfile (written
//! atomically) and/or a Pushgateway. Seed 001 alerts on the last success
//! timestamp; it survives failed runs.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::health::escape_label;

/// Where metrics go. In `lifeboat.toml`, a `[metrics]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// node_exporter's textfile collector directory.
    pub textfile_dir: Option<PathBuf>,
    /// A Pushgateway base URL (`http://pushgateway:9091`).
    pub pushgateway: Option<String>,
}

/// What one run reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunMetrics {
    /// The source name.
    pub source: String,
    /// Whether the run succeeded.
    pub success: bool,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Wall time.
    pub duration_secs: f64,
    /// Stored size of the backup (success only).
    pub size_bytes: Option<u64>,
    /// The last successful backup's time: this run's, or the newest in the
    /// sink when this run failed.
    pub last_success: Option<DateTime<Utc>>,
    /// The last verified backup's time.
    pub last_verified: Option<DateTime<Utc>>,
}

impl RunMetrics {
    /// A run's metrics.
    pub fn new(source: impl Into<String>, success: bool, duration_secs: f64) -> Self {
        Self {
            source: source.into(),
            success,
            finished_at: Utc::now(),
            duration_secs,
            size_bytes: None,
            last_success: None,
            last_verified: None,
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let l = format!("{{source=\"{}\"}}", escape_label(&self.source));
        let mut out = String::new();
        let mut g = |name: &str, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.push_str(&format!(
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{l} {v}\n"
                ));
            }
        };
        g(
            "lifeboat_last_run_timestamp_seconds",
            "When the last backup run ended",
            Some(self.finished_at.timestamp() as f64),
        );
        g(
            "lifeboat_last_run_success",
            "1 if the last backup run succeeded, 0 if it failed",
            Some(if self.success { 1.0 } else { 0.0 }),
        );
        g(
            "lifeboat_last_run_duration_seconds",
            "Wall time of the last backup run",
            Some(self.duration_secs),
        );
        g(
            "lifeboat_last_success_timestamp_seconds",
            "Start time of the newest successful backup",
            self.last_success.map(|t| t.timestamp() as f64),
        );
        g(
            "lifeboat_last_verified_timestamp_seconds",
            "Start time of the newest verified backup",
            self.last_verified.map(|t| t.timestamp() as f64),
        );
        g(
            "lifeboat_last_backup_size_bytes",
            "Stored size of the last successful backup",
            self.size_bytes.map(|s| s as f64),
        );
        out
    }
}

/// Write `lifeboat_<source>.prom` into `dir` atomically (temp file, rename).
///
/// # Errors
/// [`Error::Config`] when the directory is not writable.
pub fn write_textfile(dir: &std::path::Path, source: &str, text: &str) -> Result<PathBuf> {
    let safe: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("lifeboat_{safe}.prom"));
    // node_exporter reads *.prom only: the temp name must not end in .prom.
    let tmp = dir.join(format!(
        ".lifeboat_{safe}.prom.{:08x}",
        rand::random::<u32>()
    ));
    let err = |e: std::io::Error| {
        Error::config(
            dir.display().to_string(),
            format!("cannot write metrics: {e}"),
        )
    };
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })?;
    Ok(path)
}

/// PUT the metrics to a Pushgateway under `job="lifeboat", source=…`.
///
/// # Errors
/// A one-line message (the caller logs it; metrics never fail a backup).
pub async fn push(base: &str, source: &str, text: &str) -> std::result::Result<(), String> {
    let url = format!(
        "{}/metrics/job/lifeboat/source/{}",
        base.trim_end_matches('/'),
        url_segment(source)
    );
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .put(&url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(text.to_string())
        .send()
        .await
        .map_err(|e| format!("cannot reach the Pushgateway: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("the Pushgateway answered {}", resp.status()));
    }
    Ok(())
}

fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
