use std::path::PathBuf;

use backup_core::Error;
use clap::Args;

#[derive(Debug, Args, Default)]
pub(crate) struct InitArgs {
    /// Where to write it.
    #[arg(long, default_value = "lifeboat.toml")]
    path: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

pub(crate) const STARTER: &str = r#"# lifeboat.toml — written by `lifeboat init`. Every key is optional; the
# command line overrides the file. ${VAR} takes a value from the environment
# (use it for secrets), $$ is a literal $. Reference: README.md.

# Settings here apply to every profile.
min_size = "1 KiB"                 # a dump smaller than this is a failure

[retention]                        # lifeboat prune; after every backup too:
after_backup = true
keep_last = 7                      # seed 000: the 7 newest
keep_days = 30                     # seed 002: 30 days
# keep_daily = 7
# keep_weekly = 4
# keep_monthly = 6

[health]                           # lifeboat status exits 6 when unhealthy
max_age = "26h"
# max_size_drop = 0.5              # newest backup shrank by more than half

# [notify]                         # failures always, successes if on_success
# slack_webhook = "${SLACK_WEBHOOK_URL}"
# webhook = "https://hooks.example.com/lifeboat"
# on_success = false

# [metrics]
# textfile_dir = "/var/lib/prometheus/node-exporter"
# pushgateway = "http://pushgateway:9091"

# [retries]                        # transient failures only
# attempts = 3
# interval = "30s"
# backoff = 2.0

# log_file = "/var/log/lifeboat/lifeboat.log"

[profiles.prod]
source = "sqlite:///srv/app/data/app.db"
# source = "postgres://backup@db.internal:5432/app"   # password: PGPASSWORD or ~/.pgpass
sink = "file:///var/backups/lifeboat"
# sink = "s3://acme-backups/prod"                      # AWS_* variables or ~/.aws/credentials
# sink = "spaces://acme-backups/prod?region=nyc3"      # SPACES_* or AWS_* variables
# sink = "gs://acme-backups/prod"                      # GOOGLE_APPLICATION_CREDENTIALS
schedule = "daily 03:00"           # lifeboat schedule --systemd | --cron

[profiles.staging]
source = "sqlite:///srv/staging/data/app.db"
sink = "file:///var/backups/lifeboat-staging"
schedule = "weekly sun 04:00"
"#;

pub(crate) async fn run(a: InitArgs) -> Result<(), Error> {
    if a.path.exists() && !a.force {
        return Err(Error::Usage {
            message: format!(
                "{} already exists; pass --force to overwrite it",
                a.path.display()
            ),
        });
    }
    std::fs::write(&a.path, STARTER).map_err(|e| Error::Config {
        origin: a.path.display().to_string(),
        message: format!("cannot write: {e}"),
    })?;
    println!(
        "wrote {}: edit the profiles, then `lifeboat backup --profile prod`",
        a.path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_starter_config_parses() {
        let c = backup_core::Config::parse(super::STARTER, std::path::Path::new("lifeboat.toml"))
            .unwrap();
        assert_eq!(c.profile_names(), vec!["prod", "staging"]);
        let prod = c.resolve(Some("prod")).unwrap();
        assert_eq!(prod.retention.unwrap().keep_last, Some(7));
        assert_eq!(prod.schedule.as_deref(), Some("daily 03:00"));
    }
}
