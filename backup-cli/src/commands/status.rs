use backup_core::Error;
use backup_core::health::{self, human_secs};
use backup_core::ops::status::{self, StatusArgs};
use backup_core::ops::{Env, human_bytes};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Format {
    #[default]
    Text,
    Json,
    Prometheus,
}

#[derive(Debug, Args)]
pub(crate) struct StatusCmd {
    #[command(flatten)]
    args: StatusArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub(crate) async fn run(env: &Env, c: StatusCmd) -> Result<(), Error> {
    let statuses = status::run(env, &c.args).await?;
    let now = chrono::Utc::now();
    match c.format {
        Format::Json => super::print_json(&statuses),
        Format::Prometheus => print!("{}", health::prometheus(&statuses, now)),
        Format::Text => {
            for s in &statuses {
                let state = if s.healthy { "OK       " } else { "UNHEALTHY" };
                match &s.newest {
                    Some(b) => println!(
                        "{state} {:<16} newest {} ({} old, {}, {}), {} backups{}{}",
                        s.source,
                        b.backup_id,
                        human_secs(b.age_secs),
                        human_bytes(b.stored_size),
                        match b.assurance {
                            backup_core::manifest::Assurance::Drilled =>
                                "verified, restored in a drill",
                            backup_core::manifest::Assurance::Checked =>
                                "verified: checked, not drilled",
                            backup_core::manifest::Assurance::Failed => "NOT verified",
                        },
                        s.backups,
                        s.last_verification
                            .as_ref()
                            .map(|v| format!(
                                ", last verify {} {}",
                                v.at.format("%Y-%m-%d %H:%M"),
                                if v.passed { "ok" } else { "FAILED" }
                            ))
                            .unwrap_or_default(),
                        s.last_drill
                            .as_ref()
                            .map(|d| format!(
                                ", last drill {} {}",
                                d.at.format("%Y-%m-%d %H:%M"),
                                if d.passed { "ok" } else { "FAILED" }
                            ))
                            .unwrap_or_default(),
                    ),
                    None => println!("{state} {:<16} no complete backup", s.source),
                }
                if let Some(w) = &s.wal {
                    println!(
                        "          WAL archive: {} files, newest segment {} ({} old), {}",
                        w.files,
                        w.newest_segment.as_deref().unwrap_or("none"),
                        w.age_secs.map(human_secs).unwrap_or_else(|| "-".into()),
                        if w.gaps.is_empty() {
                            "no gaps".to_string()
                        } else {
                            format!("{} gap(s)", w.gaps.len())
                        }
                    );
                }
                for p in &s.problems {
                    println!("          - {p}");
                }
            }
        }
    }
    match status::unhealthy(&statuses) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}
