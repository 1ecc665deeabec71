//! `doctor`: what silently breaks backups, checked while nothing is on
//! fire (seed 003: credentials that expired, a clock that drifted, a full
//! temp disk, a key nobody can find, archiving that stopped). Per profile;
//! one line per problem, exit 6; schedulable monthly.

use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Env;
use crate::catalog::{Catalog, Selector};
use crate::error::{Error, Result};
use crate::sink::{PutOptions, Sink, SinkExt};

/// Which profile's sink and source, and the identity to prove.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct DoctorArgs {
    /// The sink to check (default: every profile's sink in lifeboat.toml).
    #[cfg_attr(feature = "clap", arg(long = "from", value_name = "SINK"))]
    pub sink: Option<String>,
    /// Only this source's backups (default: the profile's).
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: Option<String>,
    /// The age identity file to prove against the newest encrypted backup (default: identity_file in [encryption]).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub identity: Option<std::path::PathBuf>,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `credentials`, `clock`, `lifecycle`, `source`, `temp-space`, `archiving`, `decrypt`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// What `doctor` found for one sink.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// The sink, without credentials.
    pub sink: String,
    /// Every check that ran.
    pub checks: Vec<Check>,
    /// The failed checks' details; empty when healthy.
    pub problems: Vec<String>,
}

impl DoctorReport {
    fn check(&mut self, name: &str, result: std::result::Result<String, String>) {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        if !ok {
            self.problems.push(format!("{name}: {detail}"));
        }
        self.checks.push(Check {
            name: name.to_string(),
            ok,
            detail,
        });
    }
}

/// The clock difference the leases tolerate ([`crate::lease::SKEW_GRACE`]).
const MAX_SKEW_SECS: i64 = 30;

/// Run every check on every profile (or the sink given).
///
/// # Errors
/// Usage and config errors; the checks' own failures are in the reports.
pub async fn run(env: &Env, a: &DoctorArgs) -> Result<Vec<DoctorReport>> {
    let targets = match &a.sink {
        None => env.every_profile(),
        Some(_) => vec![env.settings.clone()],
    };
    let mut out = Vec::new();
    for settings in targets {
        let sub = Env::new(settings.clone());
        let sink = sub.sink(a.sink.as_deref(), "--from")?;
        let mut r = DoctorReport {
            sink: sink.location().to_string(),
            checks: Vec::new(),
            problems: Vec::new(),
        };
        // One test object answers both: the credentials, and the sink's
        // clock (its last-modified time against ours around the write).
        let c = canary(&*sink).await;
        r.check(
            "credentials",
            c.as_ref().map(|c| c.detail.clone()).map_err(Clone::clone),
        );
        r.check("clock", c.and_then(|c| clock(&c)));
        let name = sub.source_name(a.source.as_deref())?;
        if let Some(url) = &settings.source {
            r.check("source", source(url, &settings).await);
        }
        let newest = match &name {
            Some(n) => match Catalog::new(sink.clone())
                .find(Some(n), &Selector::Latest)
                .await
            {
                Ok(e) => Some(e),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        match sink.lifecycle_rules().await {
            Ok(None) => {}
            Ok(Some(rules)) => {
                let oldest = match &name {
                    Some(n) => Catalog::new(sink.clone())
                        .list(Some(n))
                        .await?
                        .complete
                        .first()
                        .map(|b| b.manifest.started_at),
                    None => None,
                };
                r.check(
                    "lifecycle",
                    lifecycle(&rules, settings.retention.as_ref(), name.as_deref(), oldest),
                );
            }
            Err(e) => r.check(
                "lifecycle",
                Ok(format!("the bucket's lifecycle rules cannot be read with these credentials ({}); not checked", e.display_chain())),
            ),
        }
        let need = newest
            .as_ref()
            .map(|e| e.manifest.artifact.raw_size)
            .unwrap_or(0);
        r.check("temp-space", temp_space(&sub.temp_root(), need));
        if let Some(n) = &name
            && crate::wal::ArchiveListing::read(&*sink, n).await?.is_some()
        {
            match sub.postgres_source_url() {
                Some(url) => r.check("archiving", archiving(&url).await),
                None => r.check(
                    "archiving",
                    Ok(format!("{n} has a WAL archive; no postgres:// source in the profile to ask (set source to check archive_mode and pg_stat_archiver)")),
                ),
            }
        }
        if let Some(e) = newest
            && let Some(enc) = e.manifest.artifact.encryption.clone()
        {
            let path = a.identity.clone();
            let result = match sub.identities(path.as_deref())? {
                None => Err(format!(
                    "the newest backup {} is encrypted ({enc}) and no identity file is configured: nobody has shown it can be decrypted",
                    e.manifest.backup_id
                )),
                Some(keys) => {
                    let id = e.manifest.backup_id.clone();
                    match crate::VerifyJob::new(sink.clone())
                        .identities(keys)
                        .temp_dir(sub.temp_root())
                        .verify_entry(e)
                        .await
                    {
                        Ok(_) => Ok(format!(
                            "the identity decrypts the newest backup {id}, verified to its last byte"
                        )),
                        Err(err) => Err(format!("the newest backup {id}: {}", err.display_chain())),
                    }
                }
            };
            r.check("decrypt", result);
        }
        out.push(r);
    }
    let unhealthy: Vec<String> = out.iter().flat_map(|r| r.problems.clone()).collect();
    tracing::info!(
        summary = true,
        command = "doctor",
        result = if unhealthy.is_empty() {
            "ok"
        } else {
            "unhealthy"
        },
        problems = unhealthy.len(),
        "doctor complete"
    );
    Ok(out)
}

/// The problems of the reports as one [`Error::Health`] (exit 6), if any.
pub fn problems(reports: &[DoctorReport]) -> Option<Error> {
    let all: Vec<String> = reports
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.sink)))
        .collect();
    (!all.is_empty()).then(|| Error::Health {
        message: all.join("; "),
    })
}

/// What writing the canary showed.
struct Canary {
    detail: String,
    /// The sink's last-modified time of the object.
    at: chrono::DateTime<chrono::Utc>,
    /// Our clock just before the write and just after it.
    before: chrono::DateTime<chrono::Utc>,
    after: chrono::DateTime<chrono::Utc>,
}

/// Put, read back, delete a canary object.
async fn canary(sink: &dyn Sink) -> std::result::Result<Canary, String> {
    let key = format!(
        "_lifeboat/doctor-{}-{:08x}",
        crate::rt::host_name(),
        rand::random::<u32>()
    );
    let body = Bytes::from(format!(
        "lifeboat doctor canary {}",
        chrono::Utc::now().to_rfc3339()
    ));
    let t0 = Instant::now();
    let before = chrono::Utc::now();
    sink.put(&key, body.clone(), PutOptions::create_only())
        .await
        .map_err(|e| format!("cannot write a test object ({key}): {}", e.display_chain()))?;
    let after = chrono::Utc::now();
    let info = sink.head(&key).await;
    let read = sink.get_bytes(&key).await;
    let deleted = sink.delete(&key).await;
    let read =
        read.map_err(|e| format!("wrote {key} but cannot read it back: {}", e.display_chain()))?;
    if read != body {
        return Err(format!("{key} read back differs from what was written"));
    }
    deleted.map_err(|e| {
        format!(
            "cannot delete {key} (prune needs to): {}",
            e.display_chain()
        )
    })?;
    match sink.head(&key).await {
        Err(Error::NotFound { .. }) => {}
        _ => return Err(format!("{key} is still there after its delete")),
    }
    let at = info
        .map(|i| i.last_modified)
        .unwrap_or_else(|_| chrono::Utc::now());
    Ok(Canary {
        detail: format!(
            "put, read back and deleted a test object in {} ms",
            t0.elapsed().as_millis()
        ),
        at,
        before,
        after,
    })
}

/// The sink's clock against ours: the canary's last-modified time against
/// the local time around its write.
fn clock(c: &Canary) -> std::result::Result<String, String> {
    let (at, after) = (c.at, c.after);
    // Stores round down to whole seconds.
    let lo = c.before - chrono::Duration::seconds(1);
    let skew = if at < lo {
        (at - lo).num_seconds()
    } else if at > after {
        (at - after).num_seconds()
    } else {
        0
    };
    if skew.abs() > MAX_SKEW_SECS {
        Err(format!(
            "this host's clock and the sink's differ by about {skew} s (more than the {MAX_SKEW_SECS} s leases tolerate; backup ages and retention are off by as much): fix NTP"
        ))
    } else {
        Ok(format!("within {}s of the sink's", skew.abs().max(1)))
    }
}

/// The source is reachable and its tools are there.
async fn source(url: &str, settings: &crate::Settings) -> std::result::Result<String, String> {
    let pg = settings.postgres.clone().unwrap_or_default();
    let sources = crate::sources_from_url(url, &pg).map_err(|e| e.display_chain())?;
    for s in &sources {
        s.preflight().await.map_err(|e| e.display_chain())?;
    }
    Ok(format!(
        "{} reachable, its tools present ({})",
        sources
            .iter()
            .map(|s| s.location())
            .collect::<Vec<_>>()
            .join(", "),
        sources.first().map(|s| s.kind()).unwrap_or("?")
    ))
}

/// The longest retention keeps backups, in days (`None`: forever, no rule)
/// and why; `oldest` is the oldest complete backup now (what `keep_last`
/// keeps is only known by count).
fn horizon(
    policy: Option<&crate::retention::RetentionPolicy>,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
) -> (Option<u64>, String) {
    let Some(p) = policy.filter(|p| p.has_rules()) else {
        return (None, "no retention rule: every backup is kept".into());
    };
    let mut best = (0u64, String::new());
    let mut consider = |days: u64, why: String| {
        if days > best.0 {
            best = (days, why);
        }
    };
    if let Some(d) = p.keep_days {
        consider(d.into(), format!("keep_days {d}"));
    }
    if let Some(d) = p.keep_daily {
        consider(d.into(), format!("keep_daily {d}"));
    }
    if let Some(w) = p.keep_weekly {
        consider(u64::from(w) * 7, format!("keep_weekly {w}"));
    }
    if let Some(m) = p.keep_monthly {
        consider(u64::from(m) * 31, format!("keep_monthly {m}"));
    }
    if let Some(s) = p.keep_pitr {
        consider(
            s.div_ceil(86_400),
            format!("keep_pitr {}d", s.div_ceil(86_400)),
        );
    }
    if let (Some(n), Some(o)) = (p.keep_last, oldest) {
        let age = (chrono::Utc::now() - o).num_days().max(0) as u64;
        consider(
            age,
            format!("keep_last {n} (the oldest backup kept now is {age} days old)"),
        );
    }
    (Some(best.0), best.1)
}

/// No enabled lifecycle rule deletes backups retention still keeps.
fn lifecycle(
    rules: &[crate::sink::LifecycleRule],
    policy: Option<&crate::retention::RetentionPolicy>,
    source: Option<&str>,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
) -> std::result::Result<String, String> {
    let (keep_days, why) = horizon(policy, oldest);
    let mut bad = Vec::new();
    for r in rules.iter().filter(|r| r.enabled) {
        // Rules for keys that are not backups or WAL (the doctor's canary).
        if r.prefix.starts_with("_lifeboat") {
            continue;
        }
        if let (Some(s), false) = (source, r.prefix.is_empty())
            && !(s.starts_with(&r.prefix) || r.prefix.starts_with(&format!("{s}/")))
        {
            continue;
        }
        // GCS: a rule for objects created before a date cannot reach
        // backups made since.
        if let Some(d) = &r.created_before {
            let date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
            if let (Some(date), Some(o)) = (date, oldest)
                && o.date_naive() >= date
            {
                continue;
            }
        }
        let deletes_early = match (r.expire_days, keep_days) {
            (Some(d), None) => Some(format!("after {d} days")),
            (Some(d), Some(k)) if u64::from(d) <= k => Some(format!("after {d} days")),
            (None, _) if r.expire_date.is_some() => {
                Some(format!("on {}", r.expire_date.clone().unwrap_or_default()))
            }
            (None, _) if r.created_before.is_some() => Some(format!(
                "when created before {}",
                r.created_before.clone().unwrap_or_default()
            )),
            _ => None,
        };
        if let Some(when) = deletes_early {
            bad.push(format!(
                "lifecycle rule {:?} deletes objects under {:?} {when}, but retention keeps backups {} ({why}): the bucket would delete backups lifeboat still lists; lengthen the rule or shorten retention",
                r.id,
                if r.prefix.is_empty() { "the whole sink" } else { &r.prefix },
                keep_days.map(|k| format!("up to {k} days")).unwrap_or_else(|| "for ever".into())
            ));
        }
    }
    if bad.is_empty() {
        Ok(format!(
            "{} lifecycle rule(s) reach this sink; none deletes what retention keeps",
            rules.len()
        ))
    } else {
        Err(bad.join("; "))
    }
}

/// Room in the temp dir for a decompressed copy of the newest backup
/// (verify and drill need one).
fn temp_space(dir: &std::path::Path, need: u64) -> std::result::Result<String, String> {
    let out = std::process::Command::new("df")
        .args(["-P", "-B1"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run df on {}: {e}", dir.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let avail: u64 = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("cannot read df's answer for {}", dir.display()))?;
    let want = need + need / 10;
    if avail < want {
        Err(format!(
            "{} has {} free; a verify or drill of the newest backup needs {} (its decompressed size and a tenth): point temp_dir at a larger disk",
            dir.display(),
            super::human_bytes(avail),
            super::human_bytes(want)
        ))
    } else {
        Ok(format!(
            "{} free in {} ({} needed)",
            super::human_bytes(avail),
            dir.display(),
            super::human_bytes(want)
        ))
    }
}

/// The server archives, and its archiver is not failing.
async fn archiving(url: &str) -> std::result::Result<String, String> {
    let conn = crate::source::postgres::PgConn::parse_first(url).map_err(|e| e.display_chain())?;
    let client = conn.connect().await.map_err(|e| e.display_chain())?;
    let mode: String = client
        .query_one("SHOW archive_mode", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if mode == "off" {
        return Err("archive_mode is off on the server, yet the sink holds its WAL archive: point-in-time recovery stops at the newest archived segment".into());
    }
    let a = crate::wal::ArchiverStats::query(&client, &conn)
        .await
        .map_err(|e| e.display_chain())?;
    if a.failing() {
        return Err(format!(
            "archive_command is failing: the newest failure ({}) is after the newest success",
            a.last_failed_wal.unwrap_or_default()
        ));
    }
    Ok(format!(
        "archive_mode {mode}; {} archived, newest {}",
        a.archived_count,
        a.last_archived_wal.unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::LifecycleRule;

    fn rule(days: Option<u32>, created_before: Option<&str>) -> LifecycleRule {
        LifecycleRule {
            id: "rule 1".into(),
            prefix: String::new(),
            enabled: true,
            expire_days: days,
            expire_date: None,
            created_before: created_before.map(str::to_string),
        }
    }

    #[test]
    fn a_created_before_rule_only_reaches_backups_made_before_its_date() {
        let oldest = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        // Every backup was made after the date: harmless, even with an age.
        assert!(
            lifecycle(
                &[rule(None, Some("2026-01-15"))],
                None,
                Some("app"),
                Some(oldest)
            )
            .is_ok()
        );
        assert!(
            lifecycle(
                &[rule(Some(1), Some("2026-01-15"))],
                None,
                Some("app"),
                Some(oldest)
            )
            .is_ok()
        );
        // The oldest backup kept was made before it: named.
        let err = lifecycle(
            &[rule(None, Some("2026-12-01"))],
            None,
            Some("app"),
            Some(oldest),
        )
        .unwrap_err();
        assert!(err.contains("created before 2026-12-01"), "{err}");
        // An age rule with no date reaches everything kept for ever.
        assert!(lifecycle(&[rule(Some(30), None)], None, Some("app"), Some(oldest)).is_err());
    }
}
