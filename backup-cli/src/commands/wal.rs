//! `lifeboat wal push` and `lifeboat wal fetch`: PostgreSQL's
//! `archive_command` and `restore_command`.

use backup_core::Error;
use backup_core::ops::Env;
use backup_core::ops::wal::{self, WalFetchArgs, WalPushArgs, WalSetupArgs};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub(crate) struct WalCmd {
    #[command(subcommand)]
    pub(crate) command: WalCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WalCommand {
    /// Archive one WAL file (archive_command = 'lifeboat wal push %p --to SINK --name NAME'). Exits 0 only once it is stored; the same file again is 0; a different file under the same name, or another cluster's, is refused and never overwrites.
    #[command(
        after_help = "Examples:\n  archive_command = 'lifeboat wal push %p --to s3://acme-backups/prod --name app'\n  archive_command = 'lifeboat wal push %p --config /etc/lifeboat.toml --profile prod'"
    )]
    Push(PushCmd),
    /// Fetch one archived WAL file (restore_command = 'lifeboat wal fetch %f %p --from SINK --name NAME'). Exits 1 when the archive does not have it, and 200 on any other failure so that PostgreSQL stops recovery instead of ending it early.
    #[command(
        after_help = "Examples:\n  restore_command = 'lifeboat wal fetch %f %p --from s3://acme-backups/prod --name app'"
    )]
    Fetch(FetchCmd),
    /// Print the postgresql.conf lines for archiving into a sink; with --check, check the server's settings, force a segment switch and wait until it is in the sink (exit 6 naming each problem).
    #[command(
        after_help = "Examples:\n  lifeboat wal setup postgres://postgres@db/app --to s3://acme-backups/prod --name app\n  lifeboat wal setup --check postgres://postgres@db/app --to s3://acme-backups/prod --name app"
    )]
    Setup(SetupCmd),
}

#[derive(Debug, Args)]
pub(crate) struct SetupCmd {
    #[command(flatten)]
    args: WalSetupArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PushCmd {
    #[command(flatten)]
    args: WalPushArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FetchCmd {
    #[command(flatten)]
    args: WalFetchArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(env: &Env, c: WalCmd) -> Result<(), Error> {
    match c.command {
        WalCommand::Push(c) => {
            if let Some(n) = wal::push_background(env, &c.args).await? {
                tracing::info!(pushed = n, "background pusher done");
                return Ok(());
            }
            let r = wal::push(env, &c.args).await?;
            if c.json {
                super::print_json(&r);
            }
        }
        WalCommand::Fetch(c) => {
            if let Some(n) = wal::fetch_background(env, &c.args).await? {
                tracing::info!(spooled = n, "background filler done");
                return Ok(());
            }
            let r = wal::fetch(env, &c.args).await?;
            if c.json {
                super::print_json(&r);
            }
        }
        WalCommand::Setup(c) => {
            let r = wal::setup(env, &c.args).await?;
            if c.json {
                super::print_json(&r);
            } else {
                for s in &r.settings {
                    println!(
                        "{} {} = {:?}{}",
                        if s.ok { "ok  " } else { "FIX " },
                        s.name,
                        s.value,
                        if s.ok {
                            String::new()
                        } else {
                            format!(" (want {})", s.wanted)
                        }
                    );
                }
                if let (Some(seg), Some(ms)) = (&r.switched_segment, r.archived_in_ms) {
                    println!(
                        "ok   segment {seg} reached the sink {:.1}s after pg_switch_wal()",
                        ms as f64 / 1000.0
                    );
                }
                for p in &r.problems {
                    println!("     - {p}");
                }
                if !c.args.check || !r.problems.is_empty() {
                    println!("\n# postgresql.conf (or conf.d/lifeboat.conf):");
                    for l in &r.conf_lines {
                        println!("{l}");
                    }
                }
            }
            if let Some(e) = wal::setup_problems(&r) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `wal fetch`'s exit code for `err`: 1 for a file the archive does not
/// have (PostgreSQL's "no such file"), else
/// [`backup_core::wal::WAL_FETCH_FATAL_EXIT`] (above 125: PostgreSQL stops
/// recovery instead of taking the failure for the end of the archive).
pub(crate) fn fetch_exit_code(err: &Error) -> i32 {
    match err {
        Error::NotFound { .. } => 1,
        _ => backup_core::wal::WAL_FETCH_FATAL_EXIT,
    }
}
