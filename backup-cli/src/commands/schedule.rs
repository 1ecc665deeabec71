use backup_core::{Config, Error};
use clap::Args;

use backup_core::ops::Env;

#[derive(Debug, Args, Default)]
pub(crate) struct ScheduleArgs {
    /// Print a systemd service and timer per profile.
    #[arg(long, conflicts_with = "cron")]
    systemd: bool,
    /// Print crontab lines per profile.
    #[arg(long)]
    cron: bool,
}

/// A parsed `schedule`: minute, hour, and which days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct When {
    minute: u32,
    hour: Option<u32>,
    /// cron day-of-week (0 = Sunday) for weekly.
    weekday: Option<u32>,
    /// day of month for monthly.
    monthday: Option<u32>,
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// `"daily 03:00"`, `"weekly sun 03:00"`, `"monthly 1 03:00"`, `"hourly"`, `"hourly :15"`.
pub(crate) fn parse(s: &str) -> Result<When, String> {
    let words: Vec<String> = s
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let time = |t: &str| -> Result<(u32, u32), String> {
        let (h, m) = t
            .split_once(':')
            .ok_or(format!("expected HH:MM, got {t:?}"))?;
        let h: u32 = h.parse().map_err(|_| format!("bad hour in {t:?}"))?;
        let m: u32 = m.parse().map_err(|_| format!("bad minute in {t:?}"))?;
        if h > 23 || m > 59 {
            return Err(format!("{t:?} is not a time of day"));
        }
        Ok((h, m))
    };
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["hourly"] => Ok(When {
            minute: 0,
            hour: None,
            weekday: None,
            monthday: None,
        }),
        ["hourly", m] => {
            let minute = m
                .trim_start_matches(':')
                .parse()
                .map_err(|_| format!("bad minute {m:?}"))?;
            Ok(When {
                minute,
                hour: None,
                weekday: None,
                monthday: None,
            })
        }
        ["daily", t] => {
            let (h, m) = time(t)?;
            Ok(When {
                minute: m,
                hour: Some(h),
                weekday: None,
                monthday: None,
            })
        }
        ["weekly", d, t] => {
            let day = DAYS
                .iter()
                .position(|x| d.starts_with(x))
                .ok_or(format!("unknown weekday {d:?}"))?;
            let (h, m) = time(t)?;
            Ok(When {
                minute: m,
                hour: Some(h),
                weekday: Some(day as u32),
                monthday: None,
            })
        }
        ["monthly", d, t] => {
            let day: u32 = d.parse().map_err(|_| format!("bad day of month {d:?}"))?;
            if !(1..=28).contains(&day) {
                return Err("day of month must be 1 to 28 (every month has it)".into());
            }
            let (h, m) = time(t)?;
            Ok(When {
                minute: m,
                hour: Some(h),
                weekday: None,
                monthday: Some(day),
            })
        }
        _ => Err(format!(
            "unknown schedule {s:?}: use \"daily 03:00\", \"weekly sun 03:00\", \"monthly 1 03:00\" or \"hourly\""
        )),
    }
}

impl When {
    pub(crate) fn cron(&self) -> String {
        format!(
            "{} {} {} * {}",
            self.minute,
            self.hour.map_or("*".into(), |h| h.to_string()),
            self.monthday.map_or("*".into(), |d| d.to_string()),
            self.weekday.map_or("*".into(), |d| d.to_string())
        )
    }

    pub(crate) fn on_calendar(&self) -> String {
        let dow = self
            .weekday
            .map(|d| {
                format!(
                    "{} ",
                    ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][d as usize]
                )
            })
            .unwrap_or_default();
        let day = self.monthday.map_or("*".into(), |d| format!("{d:02}"));
        let hour = self.hour.map_or("*".into(), |h| format!("{h:02}"));
        format!("{dow}*-*-{day} {hour}:{:02}:00", self.minute)
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub(crate) async fn run(env: &Env, a: ScheduleArgs) -> Result<(), Error> {
    if !a.systemd && !a.cron {
        return Err(Error::Usage {
            message: "choose --systemd or --cron".into(),
        });
    }
    let path = env
        .config_path()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| Error::Config {
            origin: "schedule".into(),
            message: "schedules come from lifeboat.toml: pass --config or run lifeboat init".into(),
        })?;
    let config = Config::load(&path)?;
    let abs = std::fs::canonicalize(&path).unwrap_or(path);
    let exe = std::env::current_exe()
        .ok()
        .filter(|p| p.file_name().is_some_and(|n| n == "lifeboat"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "lifeboat".into());
    let profiles: Vec<(String, backup_core::Settings)> = if config.profiles.is_empty() {
        vec![("default".into(), config.defaults.clone())]
    } else {
        config
            .profiles
            .iter()
            .map(|(n, p)| (n.clone(), config.defaults.overlay(p)))
            .collect()
    };
    for (name, s) in profiles {
        let spec = s.schedule.clone().unwrap_or_else(|| "daily 03:00".into());
        let when = parse(&spec).map_err(|m| Error::Config {
            origin: format!("{} profile {name}", abs.display()),
            message: m,
        })?;
        let profile_flag = if config.profiles.is_empty() {
            String::new()
        } else {
            format!(" --profile {}", shell_quote(&name))
        };
        let base = format!(
            "{} --config {}{profile_flag}",
            shell_quote(&exe),
            shell_quote(&abs.display().to_string())
        );
        let command = format!("{base} backup && {base} status");
        if a.cron {
            println!("# lifeboat {name}: {spec}");
            println!("{} {command}", when.cron());
        } else {
            println!("# /etc/systemd/system/lifeboat-{name}.service");
            println!(
                "[Unit]\nDescription=Lifeboat backup ({name})\nWants=network-online.target\nAfter=network-online.target\n"
            );
            println!(
                "[Service]\nType=oneshot\nExecStart=/bin/sh -c {}\n",
                shell_quote(&command)
            );
            println!("# /etc/systemd/system/lifeboat-{name}.timer");
            println!("[Unit]\nDescription=Lifeboat backup ({name}): {spec}\n");
            println!(
                "[Timer]\nOnCalendar={}\nPersistent=true\nRandomizedDelaySec=60\n",
                when.on_calendar()
            );
            println!("[Install]\nWantedBy=timers.target\n");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_become_cron_and_on_calendar() {
        let d = parse("daily 03:00").unwrap();
        assert_eq!(
            (d.cron().as_str(), d.on_calendar().as_str()),
            ("0 3 * * *", "*-*-* 03:00:00")
        );
        let w = parse("weekly Sun 04:30").unwrap();
        assert_eq!(
            (w.cron().as_str(), w.on_calendar().as_str()),
            ("30 4 * * 0", "Sun *-*-* 04:30:00")
        );
        let m = parse("monthly 1 02:15").unwrap();
        assert_eq!(
            (m.cron().as_str(), m.on_calendar().as_str()),
            ("15 2 1 * *", "*-*-01 02:15:00")
        );
        assert_eq!(parse("hourly").unwrap().cron(), "0 * * * *");
        assert!(parse("daily 25:00").is_err());
        assert!(parse("sometimes").is_err());
        assert!(parse("monthly 31 01:00").is_err());
    }
}
