use backup_core::health::{self, HealthPolicy, SourceStatus, human_secs};
use backup_core::notify::{self, Event};
use backup_core::{Config, Error, Settings};
use clap::{Args, ValueEnum};

use crate::Context;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    #[default]
    Text,
    Json,
    Prometheus,
}

#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct StatusArgs {
    /// Where backups live (default: every profile's sink in lifeboat.toml).
    #[arg(long, value_name = "SINK")]
    from: Option<String>,
    /// Only this source (default: every configured source, or every source in the sink).
    #[arg(long)]
    source: Option<String>,
    /// Unhealthy when the newest backup is older than this (default 26h).
    #[arg(long, value_name = "DURATION")]
    #[serde(deserialize_with = "super::string_or_number")]
    max_age: Option<String>,
    /// Unhealthy when the newest backup's stored size is below this.
    #[arg(long, value_name = "SIZE")]
    #[serde(deserialize_with = "super::string_or_number")]
    min_size: Option<String>,
    /// Unhealthy when the newest backup shrank by more than this fraction (0.5 = half).
    #[arg(long, value_name = "FRACTION")]
    max_size_drop: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// What to check: (label, settings) per configured source.
fn targets(ctx: &Context, a: &StatusArgs, config: Option<&Config>) -> Vec<Settings> {
    match (config, &a.from) {
        (Some(c), None) if !c.profiles.is_empty() && ctx.profile.is_none() => c
            .profiles
            .iter()
            .map(|(_, p)| c.defaults.overlay(p))
            .collect(),
        _ => vec![ctx.settings.clone()],
    }
}

fn policy(settings: &Settings, a: &StatusArgs) -> Result<HealthPolicy, Error> {
    let mut p = settings.health.clone().unwrap_or_default();
    if let Some(m) = &a.max_age {
        p.max_age =
            Some(
                backup_core::config::parse_duration_secs(m).map_err(|e| Error::Usage {
                    message: format!("--max-age: {e}"),
                })?,
            );
    }
    if let Some(m) = &a.min_size {
        p.min_size = Some(
            backup_core::ByteSize::parse(m)
                .map_err(|e| Error::Usage {
                    message: format!("--min-size: {e}"),
                })?
                .0,
        );
    }
    if a.max_size_drop.is_some() {
        p.max_size_drop = a.max_size_drop;
    }
    p.validate().map_err(|m| Error::Usage { message: m })?;
    Ok(p)
}

pub(crate) async fn execute(ctx: &Context, a: &StatusArgs) -> Result<Vec<SourceStatus>, Error> {
    let config = match &ctx.config_path {
        Some(p) => Some(Config::load(p)?),
        None => None,
    };
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    let targets = targets(ctx, a, config.as_ref());
    // Bad flags are refused before anything is read.
    for settings in &targets {
        policy(settings, a)?;
    }
    for settings in targets {
        let sub = Context {
            settings: settings.clone(),
            progress: None,
            config_path: None,
            profile: None,
            ambiguous: None,
        };
        let sink = super::sink(&sub, a.from.as_deref(), "--from")?;
        let names = match super::source_name(&sub, a.source.as_deref())? {
            Some(n) => vec![n],
            None => backup_core::Catalog::new(sink.clone())
                .list(None)
                .await?
                .sources(),
        };
        if names.is_empty() {
            return Err(Error::Health {
                message: format!("no backups at all in {}", sink.location()),
            });
        }
        let policy = policy(&settings, a)?;
        for name in names {
            let st = health::status(&sink, &name, &policy, now).await?;
            if !st.healthy
                && let Some(n) = &settings.notify
            {
                let ev = Event::new("status", &name, false, st.problems.join("; "))
                    .with("sink", sink.location());
                let mut ev = ev;
                ev.result = "unhealthy".into();
                notify::notify(n, &ev).await;
            }
            out.push(st);
        }
    }
    Ok(out)
}

pub(crate) async fn run(ctx: &Context, a: StatusArgs) -> Result<(), Error> {
    let statuses = execute(ctx, &a).await?;
    let now = chrono::Utc::now();
    match a.format {
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
                        crate::human_bytes(b.stored_size),
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
                for p in &s.problems {
                    println!("          - {p}");
                }
            }
        }
    }
    let unhealthy: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.healthy)
        .map(|s| s.source.as_str())
        .collect();
    tracing::info!(
        summary = true,
        command = "status",
        result = if unhealthy.is_empty() { "ok" } else { "unhealthy" },
        sources = statuses.len(),
        unhealthy = %unhealthy.join(","),
        "status complete"
    );
    if unhealthy.is_empty() {
        Ok(())
    } else {
        let problems: Vec<String> = statuses
            .iter()
            .flat_map(|s| s.problems.iter().map(move |p| format!("{}: {p}", s.source)))
            .collect();
        Err(Error::Health {
            message: problems.join("; "),
        })
    }
}
