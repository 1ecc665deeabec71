//! The operations as functions of JSON options, for the Node and Python
//! packages. The options are the command line's flags in snake_case
//! (`min_size`, `exclude_schema` → `exclude_schemas`, …) plus `config` and
//! `profile`; the results are the JSON the CLI prints with `--json`. Parsing,
//! config resolution and defaults are the CLI's own code, so the three doors
//! cannot drift.

use std::sync::Arc;

use backup_core::{Error, Progress};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Context;
use crate::commands::{backup, list, prune, restore, status, verify};

pub use crate::run as run_cli;

fn usage(message: String) -> Error {
    Error::Usage { message }
}

/// Split `config`/`profile` off, refuse unknown keys, and deserialize the rest.
fn parse<T: DeserializeOwned + Serialize + Default>(
    op: &str,
    options: Value,
) -> Result<(Context, T), Error> {
    let mut map: Map<String, Value> = match options {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(usage(format!(
                "{op}: options must be an object, not {other}"
            )));
        }
    };
    let text = |v: Option<Value>, key: &str| -> Result<Option<String>, Error> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(usage(format!(
                "{op}: option {key} must be a string, not {other}"
            ))),
        }
    };
    // As on the command line, LIFEBOAT_CONFIG and LIFEBOAT_PROFILE apply
    // when the options do not say.
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let config = text(map.remove("config"), "config")?.or_else(|| env("LIFEBOAT_CONFIG"));
    let profile = text(map.remove("profile"), "profile")?.or_else(|| env("LIFEBOAT_PROFILE"));
    let known: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    if let Some(k) = map.keys().find(|k| !known.contains(k)) {
        let mut names = known.clone();
        names.extend(["config".to_string(), "profile".to_string()]);
        names.sort();
        return Err(usage(format!(
            "{op}: unknown option {k:?} (known: {})",
            names.join(", ")
        )));
    }
    map.retain(|_, v| !v.is_null());
    let args: T = serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        usage(format!("{op}: option {path}: {}", e.inner()))
    })?;
    let ctx = Context::load(
        config.as_deref().map(std::path::Path::new),
        profile.as_deref(),
    )?;
    Ok((ctx, args))
}

fn to_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("results serialize")
}

/// Take a backup of every database the source names. Returns
/// `{"backups": [{manifest, location, duration_ms, drill}]}`.
///
/// # Errors
/// The first failure, as the core's typed [`Error`].
pub async fn backup(options: Value, progress: Option<Arc<dyn Progress>>) -> Result<Value, Error> {
    let (mut ctx, args) = parse::<backup::BackupArgs>("backup", options)?;
    ctx.progress = progress;
    let (outputs, err) = backup::execute(&ctx, &args).await;
    match err {
        Some(e) => Err(e),
        None => Ok(serde_json::json!({ "backups": to_json(&outputs) })),
    }
}

/// List backups: `{"location", "complete": [manifest…], "incomplete": […]}`.
///
/// # Errors
/// Any listing failure (never an empty list instead).
pub async fn list(options: Value) -> Result<Value, Error> {
    let (ctx, args) = parse::<list::ListArgs>("list", options)?;
    Ok(to_json(&list::execute(&ctx, &args).await?))
}

/// Verify a stored backup: `{"backup_id", "source", "location", "passed", "verdicts", "duration_ms"}`.
///
/// # Errors
/// [`Error::Verification`] naming each failed check.
pub async fn verify(options: Value, progress: Option<Arc<dyn Progress>>) -> Result<Value, Error> {
    let (mut ctx, args) = parse::<verify::VerifyArgs>("verify", options)?;
    ctx.progress = progress;
    Ok(to_json(&verify::execute(&ctx, &args).await?))
}

/// Restore a backup: `{"backup_id", "target", "bytes", "replaced", "fingerprint", "duration_ms"}`.
///
/// # Errors
/// [`Error::Restore`] and the others.
pub async fn restore(options: Value, progress: Option<Arc<dyn Progress>>) -> Result<Value, Error> {
    let (mut ctx, args) = parse::<restore::RestoreArgs>("restore", options)?;
    ctx.progress = progress;
    Ok(to_json(&restore::execute(&ctx, &args).await?))
}

/// Apply retention: `{"decisions": [{backup_id, dir, started_at, keep, reasons, incomplete}], "deleted": [...], "dry_run"}`.
///
/// # Errors
/// A listing failure deletes nothing.
pub async fn prune(options: Value) -> Result<Value, Error> {
    let (ctx, args) = parse::<prune::PruneArgs>("prune", options)?;
    Ok(to_json(&prune::execute(&ctx, &args).await?))
}

/// Health of each source: `[{source, backups, incomplete, newest, last_verification, last_drill, problems, healthy}]`.
/// Unhealthy sources are results, not errors (the CLI exits 6 for them).
///
/// # Errors
/// When the checks could not run.
pub async fn status(options: Value) -> Result<Value, Error> {
    let (ctx, args) = parse::<status::StatusArgs>("status", options)?;
    Ok(to_json(&status::execute(&ctx, &args).await?))
}

/// Install the CLI's log output (text or JSON lines on stderr) for a host
/// process that wants Lifeboat's logs; safe to call more than once.
pub fn init_logging(json: bool, verbose: u8, quiet: bool) {
    crate::logging::init(json, verbose, quiet);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_options_and_wrong_types_are_usage_errors() {
        let err = list(serde_json::json!({"form": "x"})).await.unwrap_err();
        assert_eq!(err.kind(), backup_core::ErrorKind::Usage);
        assert!(
            err.to_string().contains("\"form\"") && err.to_string().contains("from"),
            "{err}"
        );
        let err = backup(serde_json::json!({"level": "high"}), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), backup_core::ErrorKind::Usage);
        let err = list(serde_json::json!([1])).await.unwrap_err();
        assert_eq!(err.kind(), backup_core::ErrorKind::Usage);
    }

    #[tokio::test]
    async fn the_api_runs_the_same_operations_as_the_cli() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("api.db");
        backup_core::source::sqlite::write_sample_database(&db, 500).unwrap();
        let sink = dir.path().join("b").display().to_string();
        let out = backup(
            serde_json::json!({
                "source": format!("sqlite://{}", db.display()),
                "to": sink,
                "min_size": 1024,
                "lock_dir": dir.path(),
            }),
            None,
        )
        .await
        .unwrap();
        let id = out["backups"][0]["manifest"]["backup_id"]
            .as_str()
            .unwrap()
            .to_string();
        let listed = list(serde_json::json!({"from": sink})).await.unwrap();
        assert_eq!(listed["complete"][0]["backup_id"], id.as_str());
        let v = verify(serde_json::json!({"from": sink, "id": id}), None)
            .await
            .unwrap();
        assert_eq!(v["passed"], true);
        let target = dir.path().join("r.db");
        let r = restore(
            serde_json::json!({"from": sink, "latest": true, "to": format!("sqlite://{}", target.display()), "lock_dir": dir.path()}),
            None,
        )
        .await
        .unwrap();
        assert_eq!(r["fingerprint"]["tables"][0]["rows"], 500);
    }
}
