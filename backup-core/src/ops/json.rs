//! The operations as functions of JSON options, for the Node and Python
//! packages (and any other host that speaks JSON).
//!
//! The options are the fields of each operation's typed arguments
//! ([`BackupArgs`](super::backup::BackupArgs), …) in snake_case, plus
//! `config` and `profile`; the results are the typed results serialized,
//! the same JSON the CLI prints with `--json`. Unknown keys and wrong types
//! are [`Error::Usage`] naming the key.
//!
//! Older spellings are still accepted: `to` for `sink` in `backup`, `to`
//! for `target` in `restore`, and `from` for `sink` elsewhere.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Env;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// The operations by name.
pub const OPERATIONS: [&str; 12] = [
    "backup",
    "list",
    "verify",
    "drill",
    "restore",
    "prune",
    "status",
    "wal_push",
    "wal_fetch",
    "wal_setup",
    "mirror",
    "doctor",
];

/// Whether `op` reports progress (the others run without it).
pub fn takes_progress(op: &str) -> bool {
    matches!(op, "backup" | "verify" | "drill" | "restore")
}

fn usage(message: String) -> Error {
    Error::Usage { message }
}

/// Older option names, per operation: `(old, new)`.
fn aliases(op: &str) -> &'static [(&'static str, &'static str)] {
    match op {
        "backup" | "wal_push" | "wal_setup" => &[("to", "sink")],
        "restore" | "mirror" => &[("from", "sink"), ("to", "target")],
        _ => &[("from", "sink")],
    }
}

/// The option names an operation takes (its arguments' fields, `config`
/// and `profile`), sorted.
///
/// # Errors
/// [`Error::Usage`] for an unknown operation.
pub fn option_names(op: &str) -> Result<Vec<String>> {
    let mut names = match op {
        "backup" => keys::<super::backup::BackupArgs>(),
        "list" => keys::<super::list::ListArgs>(),
        "verify" => keys::<super::verify::VerifyArgs>(),
        "drill" => keys::<super::drill::DrillArgs>(),
        "restore" => keys::<super::restore::RestoreArgs>(),
        "prune" => keys::<super::prune::PruneArgs>(),
        "status" => keys::<super::status::StatusArgs>(),
        "wal_push" => keys::<super::wal::WalPushArgs>(),
        "wal_fetch" => keys::<super::wal::WalFetchArgs>(),
        "wal_setup" => keys::<super::wal::WalSetupArgs>(),
        "mirror" => keys::<super::mirror::MirrorArgs>(),
        "doctor" => keys::<super::doctor::DoctorArgs>(),
        other => return Err(unknown_op(other)),
    };
    names.extend(["config".to_string(), "profile".to_string()]);
    names.sort();
    Ok(names)
}

fn unknown_op(op: &str) -> Error {
    usage(format!(
        "unknown operation {op:?} ({})",
        OPERATIONS.join(", ")
    ))
}

fn keys<T: Default + Serialize>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Split `config`/`profile` off, rename old spellings, refuse unknown keys,
/// and deserialize the rest.
fn parse<T: DeserializeOwned + Serialize + Default>(op: &str, options: Value) -> Result<(Env, T)> {
    let mut map: Map<String, Value> = match options {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(usage(format!(
                "{op}: options must be an object, not {other}"
            )));
        }
    };
    let text = |v: Option<Value>, key: &str| -> Result<Option<String>> {
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
    map.retain(|_, v| !v.is_null());
    for (old, new) in aliases(op) {
        if let Some(v) = map.remove(*old) {
            if map.contains_key(*new) {
                return Err(usage(format!(
                    "{op}: options {old:?} and {new:?} name the same thing; give {new:?}"
                )));
            }
            map.insert((*new).to_string(), v);
        }
    }
    let known = keys::<T>();
    if let Some(k) = map.keys().find(|k| !known.contains(k)) {
        let names = option_names(op)?;
        return Err(usage(format!(
            "{op}: unknown option {k:?} (known: {})",
            names.join(", ")
        )));
    }
    let args: T = serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        usage(format!("{op}: option {path}: {}", e.inner()))
    })?;
    let env = Env::load(
        config.as_deref().map(std::path::Path::new),
        profile.as_deref(),
    )?;
    Ok((env, args))
}

fn to_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("results serialize")
}

/// Run operation `op` with JSON `options`.
///
/// Results: `backup` → `{"backups": [{manifest, location, duration_ms,
/// drill}]}`; `list` → `{location, complete, unreadable, incomplete,
/// leftovers}`; `verify` and `drill` → `{backup_id, source, location,
/// passed, verdicts, duration_ms}`; `restore` → `{backup_id, target, bytes,
/// replaced, fingerprint, duration_ms, …}`; `prune` → `{decisions,
/// deleted, leftovers, dry_run}`; `status` → `[{source, healthy, problems,
/// …}]` (an unhealthy source is a result, not an error); `wal_push` →
/// `{name, key, size, stored_size, sha256, already_archived, duration_ms}`;
/// `wal_fetch` → `{name, path, size, sha256, duration_ms}`; `wal_setup` →
/// `{conf_lines, settings, switched_segment, archived_in_ms, archiver,
/// problems}` (problems are a result, not an error).
///
/// # Errors
/// The operation's typed [`Error`]; [`Error::Usage`] for bad options.
pub async fn call(op: &str, options: Value, progress: Option<Arc<dyn Progress>>) -> Result<Value> {
    match op {
        "backup" => {
            let (env, a) = parse::<super::backup::BackupArgs>(op, options)?;
            let run = super::backup::run(&env.with_progress(progress), &a).await;
            let backups = run.into_result()?;
            Ok(serde_json::json!({ "backups": to_json(&backups) }))
        }
        "list" => {
            let (env, a) = parse::<super::list::ListArgs>(op, options)?;
            Ok(to_json(&super::list::run(&env, &a).await?))
        }
        "verify" => {
            let (env, a) = parse::<super::verify::VerifyArgs>(op, options)?;
            Ok(to_json(
                &super::verify::run(&env.with_progress(progress), &a).await?,
            ))
        }
        "drill" => {
            let (env, a) = parse::<super::drill::DrillArgs>(op, options)?;
            Ok(to_json(
                &super::drill::run(&env.with_progress(progress), &a).await?,
            ))
        }
        "restore" => {
            let (env, a) = parse::<super::restore::RestoreArgs>(op, options)?;
            Ok(to_json(
                &super::restore::run(&env.with_progress(progress), &a).await?,
            ))
        }
        "prune" => {
            let (env, a) = parse::<super::prune::PruneArgs>(op, options)?;
            Ok(to_json(&super::prune::run(&env, &a).await?))
        }
        "status" => {
            let (env, a) = parse::<super::status::StatusArgs>(op, options)?;
            Ok(to_json(&super::status::run(&env, &a).await?))
        }
        "wal_push" => {
            let (env, a) = parse::<super::wal::WalPushArgs>(op, options)?;
            Ok(to_json(&super::wal::push(&env, &a).await?))
        }
        "wal_fetch" => {
            let (env, a) = parse::<super::wal::WalFetchArgs>(op, options)?;
            Ok(to_json(&super::wal::fetch(&env, &a).await?))
        }
        // Problems are a result (`problems`), not an error, as for status.
        "wal_setup" => {
            let (env, a) = parse::<super::wal::WalSetupArgs>(op, options)?;
            Ok(to_json(&super::wal::setup(&env, &a).await?))
        }
        "mirror" => {
            let (env, a) = parse::<super::mirror::MirrorArgs>(op, options)?;
            Ok(to_json(&super::mirror::run(&env, &a).await?))
        }
        // Problems are a result, as for status.
        "doctor" => {
            let (env, a) = parse::<super::doctor::DoctorArgs>(op, options)?;
            Ok(to_json(&super::doctor::run(&env, &a).await?))
        }
        other => Err(unknown_op(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_options_and_wrong_types_are_usage_errors() {
        let err = call("list", serde_json::json!({"form": "x"}), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        assert!(
            err.to_string().contains("\"form\"") && err.to_string().contains("sink"),
            "{err}"
        );
        let err = call("backup", serde_json::json!({"level": "high"}), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        let err = call("list", serde_json::json!([1]), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        let err = call("list", serde_json::json!({"from": "a", "sink": "b"}), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        let err = call("frob", Value::Null, None).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
    }

    #[test]
    fn each_verb_takes_only_its_own_options() {
        let restore = option_names("restore").unwrap();
        for k in ["target", "force", "no_owner", "globals", "partial", "id"] {
            assert!(restore.contains(&k.to_string()), "restore lacks {k}");
        }
        for k in ["schemas", "exclude_tables", "max_replica_lag", "lock_wait"] {
            assert!(!restore.contains(&k.to_string()), "restore offers {k}");
        }
        let verify = option_names("verify").unwrap();
        for k in [
            "schemas",
            "exclude_tables",
            "globals",
            "max_replica_lag",
            "no_owner",
        ] {
            assert!(!verify.contains(&k.to_string()), "verify offers {k}");
        }
        let backup = option_names("backup").unwrap();
        for k in ["no_owner", "force", "partial", "id"] {
            assert!(!backup.contains(&k.to_string()), "backup offers {k}");
        }
    }

    #[tokio::test]
    async fn the_json_api_runs_the_same_operations() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("api.db");
        crate::source::sqlite::write_sample_database(&db, 500).unwrap();
        let sink = dir.path().join("b").display().to_string();
        let out = call(
            "backup",
            serde_json::json!({
                "source": format!("sqlite://{}", db.display()),
                "sink": sink,
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
        let listed = call("list", serde_json::json!({"sink": sink}), None)
            .await
            .unwrap();
        assert_eq!(listed["complete"][0]["backup_id"], id.as_str());
        let v = call("verify", serde_json::json!({"from": sink, "id": id}), None)
            .await
            .unwrap();
        assert_eq!(v["passed"], true);
        let d = call(
            "drill",
            serde_json::json!({"sink": sink, "latest": true}),
            None,
        )
        .await
        .unwrap();
        assert!(
            d["verdicts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["verifier"] == "sqlite-drill" && v["passed"] == true),
            "{d}"
        );
        let target = dir.path().join("r.db");
        let r = call(
            "restore",
            serde_json::json!({"sink": sink, "latest": true, "target": format!("sqlite://{}", target.display()), "lock_dir": dir.path()}),
            None,
        )
        .await
        .unwrap();
        assert_eq!(r["fingerprint"]["tables"][0]["rows"], 500);
    }
}
