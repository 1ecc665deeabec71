//! The `lifeboat` command line as a library: argument parsing, logging,
//! progress bars and printing, over the operations of `backup_core::ops`.
//! Called by the `lifeboat` binary, and by the npm and Python packages for
//! their `lifeboat` bin and `python -m lifeboat`.

mod commands;
pub(crate) mod logging;
mod progress;
pub mod typescript;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use backup_core::Error;
use backup_core::ops::Env;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Back up SQLite and PostgreSQL databases to S3, Google Cloud Storage, DigitalOcean Spaces
/// or a local folder, and prove every backup restores.
#[derive(Debug, Parser)]
#[command(
    name = "lifeboat",
    version,
    about,
    after_help = format!(
        "Exit codes: 0 ok, {}, {} terminated (SIGTERM).\n\nRun 'lifeboat <command> --help' for examples.",
        backup_core::error::exit_code_table(),
        Interrupt::Term.exit_code()
    )
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
struct Global {
    /// Config file (default: ./lifeboat.toml when it exists).
    #[arg(long, global = true, env = "LIFEBOAT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Profile in the config file.
    #[arg(
        long,
        short = 'p',
        global = true,
        env = "LIFEBOAT_PROFILE",
        value_name = "NAME"
    )]
    profile: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "LIFEBOAT_LOG_FORMAT")]
    log_format: LogFormat,
    /// More log detail (-v debug, -vv trace).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Never draw a progress bar (none is drawn when stderr is not a terminal).
    #[arg(long, global = true)]
    no_progress: bool,
    /// Also append logs to this file (checked for writability at start).
    #[arg(long, global = true, value_name = "FILE", env = "LIFEBOAT_LOG_FILE")]
    log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take a backup, verify it, and commit it with its manifest.
    #[command(
        after_help = "Examples:\n  lifeboat backup sqlite:///srv/app.db --to file:///var/backups/app\n  lifeboat backup sqlite:///srv/app.db --to s3://acme-backups/prod\n  lifeboat backup sqlite:///srv/app.db --to spaces://acme/prod?region=nyc3\n  lifeboat backup --config lifeboat.toml --profile prod"
    )]
    Backup(commands::backup::BackupCmd),
    /// List the backups in a sink, complete and incomplete.
    #[command(
        after_help = "Examples:\n  lifeboat list --from file:///var/backups/app\n  lifeboat list --from s3://acme-backups/prod --source app --json"
    )]
    List(commands::list::ListCmd),
    /// Prove a stored backup again: size, checksum, and the data itself.
    #[command(
        after_help = "Examples:\n  lifeboat verify --from s3://acme-backups/prod --latest\n  lifeboat verify --from file:///var/backups/app 20261121T030000Z-3f9a"
    )]
    Verify(commands::verify::VerifyCmd),
    /// Restore a stored backup into a scratch database, compare it with the backup, run the smoke checks, drop it, and record the evidence.
    #[command(
        after_help = "Examples:\n  lifeboat drill --from s3://acme-backups/prod --latest\n  lifeboat drill --from file:///var/backups/app --drill-cluster\n  lifeboat drill --config lifeboat.toml --profile prod --drill-server postgres://drill@scratch/postgres"
    )]
    Drill(commands::verify::DrillCmd),
    /// Restore a backup into a database (a SQLite file or a new PostgreSQL database).
    #[command(
        after_help = "Examples:\n  lifeboat restore --from s3://acme-backups/prod --latest --to sqlite:///srv/restored.db\n  lifeboat restore --from file:///var/backups/app 20261121T030000Z-3f9a --to sqlite:///srv/app.db --force"
    )]
    Restore(commands::restore::RestoreCmd),
    /// Delete backups no retention rule keeps (newest verified one always stays).
    #[command(
        after_help = "Examples:\n  lifeboat prune --from s3://acme-backups/prod --keep-last 7 --dry-run\n  lifeboat prune --from file:///var/backups --keep-daily 7 --keep-weekly 4 --keep-monthly 6\n  lifeboat prune --config lifeboat.toml --profile prod"
    )]
    Prune(commands::prune::PruneCmd),
    /// Copy what one sink has and another lacks: complete backups (every object checked against its manifest, the manifest last), WAL, verification and drill records. Resumable; for an hourly timer.
    #[command(
        after_help = "Examples:\n  lifeboat mirror --from s3://acme-backups/prod --to gs://acme-backups-eu/prod --dry-run\n  lifeboat mirror --from file:///var/backups/app --to s3://acme-backups/app --source app"
    )]
    Mirror(commands::mirror::MirrorCmd),
    /// Check what silently breaks backups: sink credentials (put, read, delete a test object), clock skew against the sink, the source and its tools, temp space for a verify, WAL archiving, and that the identity decrypts the newest encrypted backup. Exit 6, one line per problem.
    #[command(
        after_help = "Examples:\n  lifeboat doctor --config /etc/lifeboat.toml\n  lifeboat doctor --from s3://acme-backups/prod --identity /root/ops.key"
    )]
    Doctor(commands::doctor::DoctorCmd),
    /// Check each source's newest backup: age, size, verification, drills. Exit 6 when unhealthy.
    #[command(
        after_help = "Examples:\n  lifeboat status --from s3://acme-backups/prod --max-age 26h\n  lifeboat status --config lifeboat.toml --format prometheus\n  lifeboat status --format json"
    )]
    Status(commands::status::StatusCmd),
    /// Print systemd units or crontab lines for each profile of lifeboat.toml.
    #[command(
        after_help = "Examples:\n  lifeboat schedule --cron >> /etc/cron.d/lifeboat\n  lifeboat schedule --systemd --config /etc/lifeboat.toml"
    )]
    Schedule(commands::schedule::ScheduleArgs),
    /// PostgreSQL WAL archiving: archive_command and restore_command.
    Wal(commands::wal::WalCmd),
    /// Write a commented starter lifeboat.toml.
    #[command(after_help = "Examples:\n  lifeboat init\n  lifeboat init --path /etc/lifeboat.toml")]
    Init(commands::init::InitArgs),
}

/// The operations' environment for a command line: the config's profile,
/// and a progress bar on a terminal.
fn env(global: &Global, json_logs: bool) -> Result<Env, Error> {
    let env = Env::load(global.config.as_deref(), global.profile.as_deref())?;
    let bar = !global.no_progress
        && !json_logs
        && !global.quiet
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    Ok(if bar {
        env.with_progress(Some(std::sync::Arc::new(progress::Bar::default())))
    } else {
        env
    })
}

/// Run the command line with `args` (the first is the program name) and
/// return the process exit code. Builds its own tokio runtime.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // Passwords typed into URLs on the command line: never echoed (they
    // are in `ps` already; say so once logging is up).
    let argv_passwords = register_argv_passwords(&args);
    // `wal fetch` is PostgreSQL's restore_command: any failure other than
    // "not in the archive" must exit above 125, or PostgreSQL takes it for
    // the end of the archive and promotes early (a typo in the command,
    // too).
    let wal_fetch = args.windows(2).any(|w| w[0] == "wal" && w[1] == "fetch");
    let wal_push = args.windows(2).any(|w| w[0] == "wal" && w[1] == "push");
    if wal_fetch || wal_push {
        // Segments fetched (or pushed) ahead come from a detached
        // `wal fetch` (`wal push`) of this same command line, when this
        // process's own command line is it (the binary, or
        // `python -m lifeboat`, not an embedding program).
        let own: Vec<OsString> = std::env::args_os().skip(1).collect();
        let ours = &args[1.min(args.len())..];
        if own.ends_with(ours)
            && let Ok(exe) = std::env::current_exe()
        {
            if wal_fetch {
                backup_core::wal::fill_in_background(exe, own);
            } else {
                backup_core::wal::push_in_background(exe, own);
            }
        }
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap's message quotes the offending argument: scrub it.
            let text = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    String::new()
                }
                _ => e.render().to_string(),
            };
            logging::eprint_scrubbed(&text);
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ if wal_fetch => backup_core::wal::WAL_FETCH_FATAL_EXIT,
                _ => 64,
            };
        }
    };
    let json = cli.global.log_format == LogFormat::Json;
    let name = cli_command_name(&cli.command);
    let fail = |e: &Error| -> i32 {
        if !wal_fetch {
            return logging::fail(name, e);
        }
        let code = commands::wal::fetch_exit_code(e);
        if code == 1 {
            tracing::info!(summary = true, command = name, result = "not_found", exit_code = 1, error = %e.display_chain(), "not in the archive");
            1
        } else {
            logging::fail_as(name, e, code)
        }
    };
    // The config may name a log file, so it is read before logging starts;
    // its errors are reported once logging is up.
    let ctx = env(&cli.global, json);
    let log_file = cli.global.log_file.clone().or_else(|| {
        ctx.as_ref()
            .ok()
            .and_then(|c| c.settings().log_file.clone())
    });
    if let Err(e) = logging::init_with_file(
        json,
        cli.global.verbose,
        cli.global.quiet,
        log_file.as_deref(),
    ) {
        logging::init(json, cli.global.verbose, cli.global.quiet);
        return fail(&e);
    }
    if argv_passwords {
        tracing::warn!(
            "a password was given in a postgres:// URL on the command line, where `ps` shows it to every user of this host; put it in a 0600 PGPASSFILE (~/.pgpass) or in lifeboat.toml as ${{VAR}} instead"
        );
    }
    install_panic_hook();
    let ctx = match ctx {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return 70;
        }
    };
    let code = runtime.block_on(async move {
        let work = async {
            if matches!(
                cli.command,
                Command::Backup(_)
                    | Command::List(_)
                    | Command::Verify(_)
                    | Command::Drill(_)
                    | Command::Restore(_)
                    | Command::Prune(_)
                    | Command::Mirror(_)
            ) {
                ctx.require_profile()?;
            }
            match cli.command {
                Command::Backup(a) => commands::backup::run(&ctx, a).await,
                Command::List(a) => commands::list::run(&ctx, a).await,
                Command::Verify(a) => commands::verify::run(&ctx, a).await,
                Command::Drill(a) => commands::verify::run_drill(&ctx, a).await,
                Command::Restore(a) => commands::restore::run(&ctx, a).await,
                Command::Prune(a) => commands::prune::run(&ctx, a).await,
                Command::Mirror(a) => commands::mirror::run(&ctx, a).await,
                Command::Doctor(a) => commands::doctor::run(&ctx, a).await,
                Command::Status(a) => commands::status::run(&ctx, a).await,
                Command::Schedule(a) => commands::schedule::run(&ctx, a).await,
                Command::Init(a) => commands::init::run(a).await,
                Command::Wal(a) => commands::wal::run(&ctx, a).await,
            }
        };
        let mut work = Box::pin(work);
        let outcome = tokio::select! {
            r = &mut work => Ok(r),
            signal = interrupted() => Err(signal),
        };
        // Dropping the work future cancels it: uploads are abandoned before
        // completion (a completion in flight is aborted and its object
        // deleted) and temporary files removed. It must be dropped here,
        // before waiting for the aborts it spawns to land.
        drop(work);
        match outcome {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => fail(&e),
            Err(signal) => {
                backup_core::sink::wait_for_cleanup(Duration::from_secs(5)).await;
                logging::fail_with_code(name, &Error::Cancelled, signal.exit_code(), signal.name())
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    code
}

/// Register the passwords of URLs on the command line as secrets; whether a
/// PostgreSQL URL carried one.
fn register_argv_passwords(args: &[OsString]) -> bool {
    let mut pg = false;
    for a in args.iter().filter_map(|a| a.to_str()) {
        for candidate in a.split(['=', ',', ' ']) {
            let Ok(u) = url::Url::parse(candidate) else {
                continue;
            };
            if let Some(p) = u.password() {
                backup_core::redact::register(p);
                if let Ok(decoded) = urlencoding_decode(p) {
                    backup_core::redact::register(&decoded);
                }
                pg |= matches!(u.scheme(), "postgres" | "postgresql");
            }
        }
    }
    pg
}

fn urlencoding_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
}

/// A panic is a bug; its report goes through the same scrubbing as every
/// other output, and says what happened to the work.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        logging::eprint_scrubbed(&format!(
            "lifeboat: internal error (a bug, please report it): panicked{location}: {payload}\n"
        ));
    }));
}

/// A signal that stops a run.
#[derive(Debug, Clone, Copy)]
enum Interrupt {
    /// Ctrl-C.
    Int,
    /// systemd's stop, `docker stop`, `timeout`, `kill`.
    Term,
}

impl Interrupt {
    fn exit_code(self) -> i32 {
        match self {
            // Ctrl-C is how a run is cancelled.
            Interrupt::Int => backup_core::ErrorKind::Cancelled.exit_code(),
            Interrupt::Term => 143,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
        }
    }
}

/// Resolves at the first SIGINT or SIGTERM.
async fn interrupted() -> Interrupt {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers the default action (exit) applies.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Interrupt::Int,
        _ = term.recv() => Interrupt::Term,
    }
}

fn cli_command_name(c: &Command) -> &'static str {
    match c {
        Command::Backup(_) => "backup",
        Command::List(_) => "list",
        Command::Verify(_) => "verify",
        Command::Drill(_) => "drill",
        Command::Restore(_) => "restore",
        Command::Prune(_) => "prune",
        Command::Mirror(_) => "mirror",
        Command::Doctor(_) => "doctor",
        Command::Status(_) => "status",
        Command::Schedule(_) => "schedule",
        Command::Init(_) => "init",
        Command::Wal(w) => match w.command {
            commands::wal::WalCommand::Push(_) => "wal push",
            commands::wal::WalCommand::Fetch(_) => "wal fetch",
            commands::wal::WalCommand::Setup(_) => "wal setup",
        },
    }
}

/// Install the command line's log output (text or JSON lines on stderr)
/// for a host process that wants Lifeboat's logs; safe to call more than
/// once (later calls are ignored).
pub fn init_logging(json: bool, verbose: u8, quiet: bool) {
    logging::init(json, verbose, quiet);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_64_and_help_exits_0() {
        assert_eq!(run(["lifeboat", "frobnicate"]), 64);
        assert_eq!(run(["lifeboat", "backup", "--level"]), 64);
        assert_eq!(run(["lifeboat", "--help"]), 0);
        assert_eq!(run(["lifeboat", "backup", "--help"]), 0);
    }
}
