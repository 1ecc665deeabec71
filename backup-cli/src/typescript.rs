//! The TypeScript option types of the npm package, generated from the
//! core's typed arguments (`backup_core::ops`), through the clap
//! definitions they carry: one interface per operation, one property per
//! field, its doc comment as the property's doc. `bindings/node/options.d.ts`
//! is this text; a test fails when it is out of date
//! (`LIFEBOAT_BLESS=1 cargo test -p backup-cli --test typescript` rewrites it).

use backup_core::ops::{
    backup::BackupArgs, doctor::DoctorArgs, drill::DrillArgs, list::ListArgs, mirror::MirrorArgs,
    prune::PruneArgs, restore::RestoreArgs, status::StatusArgs, verify::VerifyArgs,
    wal::WalFetchArgs, wal::WalPushArgs, wal::WalSetupArgs,
};
use clap::{ArgAction, Args, Command};

/// `(operation, interface name, takes progress, clap definition)`.
fn operations() -> Vec<(&'static str, &'static str, bool, Command)> {
    vec![
        (
            "backup",
            "BackupOptions",
            true,
            BackupArgs::augment_args(Command::new("backup")),
        ),
        (
            "list",
            "ListOptions",
            false,
            ListArgs::augment_args(Command::new("list")),
        ),
        (
            "verify",
            "VerifyOptions",
            true,
            VerifyArgs::augment_args(Command::new("verify")),
        ),
        (
            "drill",
            "DrillOptions",
            true,
            DrillArgs::augment_args(Command::new("drill")),
        ),
        (
            "restore",
            "RestoreOptions",
            true,
            RestoreArgs::augment_args(Command::new("restore")),
        ),
        (
            "prune",
            "PruneOptions",
            false,
            PruneArgs::augment_args(Command::new("prune")),
        ),
        (
            "status",
            "StatusOptions",
            false,
            StatusArgs::augment_args(Command::new("status")),
        ),
        (
            "wal_push",
            "WalPushOptions",
            false,
            WalPushArgs::augment_args(Command::new("wal_push")),
        ),
        (
            "wal_fetch",
            "WalFetchOptions",
            false,
            WalFetchArgs::augment_args(Command::new("wal_fetch")),
        ),
        (
            "wal_setup",
            "WalSetupOptions",
            false,
            WalSetupArgs::augment_args(Command::new("wal_setup")),
        ),
        (
            "mirror",
            "MirrorOptions",
            false,
            MirrorArgs::augment_args(Command::new("mirror")),
        ),
        (
            "doctor",
            "DoctorOptions",
            false,
            DoctorArgs::augment_args(Command::new("doctor")),
        ),
    ]
}

/// Each operation's option names (snake_case, as the JSON options and the
/// Python keywords spell them), from the clap definitions.
pub fn option_ids() -> Vec<(&'static str, Vec<String>)> {
    operations()
        .into_iter()
        .map(|(op, _, _, cmd)| {
            (
                op,
                cmd.get_arguments()
                    .map(|a| a.get_id().as_str().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn ts_type(arg: &clap::Arg) -> &'static str {
    match arg.get_action() {
        ArgAction::SetTrue => return "boolean",
        ArgAction::Append => return "string[]",
        _ => {}
    }
    let name = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|s| s.as_str())
        .unwrap_or("");
    match name {
        "N" | "D" | "FRACTION" => "number",
        "SIZE" | "DURATION" => "Size",
        _ => "string",
    }
}

/// The text of `bindings/node/options.d.ts`.
pub fn options_dts() -> String {
    let mut out = String::from(
        "// Generated from the Rust definitions of backup_core::ops (see\n\
         // backup-cli/src/typescript.rs); do not edit. Regenerate with\n\
         // `LIFEBOAT_BLESS=1 cargo test -p backup-cli --test typescript`.\n\n\
         import type { ProgressEvent } from './index';\n\n\
         /** A size or duration: a number (bytes, seconds), or a string such as `\"1 KiB\"` or `\"26h\"`. */\n\
         export type Size = number | string;\n\n\
         /** Options every operation takes. */\n\
         export interface CommonOptions {\n  \
           /** Config file (default: `./lifeboat.toml` when it exists). */\n  config?: string;\n  \
           /** Profile in the config file. */\n  profile?: string;\n  \
           /** Cancel the operation: it rejects with `code: 'cancelled'` and leaves nothing half-visible. */\n  signal?: AbortSignal;\n}\n\n\
         /** Called from the event loop, never blocking the work; does not keep the process alive. */\n\
         export interface ProgressOptions {\n  onProgress?: (event: ProgressEvent) => void;\n}\n",
    );
    for (op, name, progress, cmd) in operations() {
        let extends = if progress {
            "CommonOptions, ProgressOptions"
        } else {
            "CommonOptions"
        };
        let verb = op.replace('_', " ");
        out.push_str(&format!(
            "\n/** Options of `{op}` (`lifeboat {verb}`'s arguments and flags, camelCased). */\nexport interface {name} extends {extends} {{\n"
        ));
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            let doc = arg
                .get_help()
                .map(|h| h.to_string())
                .unwrap_or_default()
                .replace("*/", "* /");
            let required = op == "restore" && id == "target";
            out.push_str(&format!(
                "  /** {doc} */\n  {}{}: {};\n",
                camel(id),
                if required { "" } else { "?" },
                ts_type(arg)
            ));
        }
        out.push_str("}\n");
    }
    out
}
