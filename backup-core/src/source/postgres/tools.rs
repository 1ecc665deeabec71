//! Finding `pg_dump`, `pg_restore` and friends, and knowing their versions.
//!
//! A dump tool must be at least as new (by major version) as the server it
//! dumps, and a restore tool at least as new as the tool that wrote the
//! archive. Lifeboat picks the closest version that qualifies, and refuses
//! with both versions named when none does, before anything is uploaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL version: major and minor (`15.18` → (15, 18)).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PgVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl std::fmt::Display for PgVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl PgVersion {
    /// From `server_version_num` (`150018` → 15.18; `90624` → 9.6).
    pub fn from_num(n: u32) -> Self {
        if n >= 100_000 {
            Self {
                major: n / 10_000,
                minor: n % 10_000,
            }
        } else {
            // Before 10 the major was two numbers (9.6); keep the first.
            Self {
                major: n / 10_000,
                minor: n / 100 % 100,
            }
        }
    }

    /// From a tool's `--version` line: `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub fn from_version_output(text: &str) -> Option<Self> {
        let token = text
            .split_whitespace()
            .find(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
        let mut parts = token.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(Self { major, minor })
    }
}

/// One tool found on this machine (or inside a container, with a prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// How to run it: the prefix (e.g. `docker exec -i db`) then the program.
    pub argv: Vec<String>,
    /// Its version.
    pub version: PgVersion,
}

impl Tool {
    /// A command ready for arguments.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        c
    }

    /// The directory of the program, when it is a local path.
    pub fn dir(&self) -> Option<PathBuf> {
        let p = Path::new(self.argv.last()?);
        p.is_absolute()
            .then(|| p.parent().map(Path::to_path_buf))
            .flatten()
    }
}

/// Where to look for tools.
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ToolOptions {
    /// Directory holding `pg_dump`, `pg_restore`, … to use exclusively.
    pub bin_dir: Option<PathBuf>,
    /// A command that runs the tools elsewhere, e.g.
    /// `["docker", "exec", "-i", "db"]`: then `pg_dump` is looked up there.
    #[serde(default)]
    pub command_prefix: Vec<String>,
}

fn version_of(argv: &[String]) -> Option<PgVersion> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    PgVersion::from_version_output(&String::from_utf8_lossy(&out.stdout))
}

/// Every candidate directory, in preference order: the configured one only,
/// or `PATH` then `/usr/lib/postgresql/*/bin`.
fn candidate_dirs(opts: &ToolOptions) -> Vec<PathBuf> {
    if let Some(d) = &opts.bin_dir {
        return vec![d.clone()];
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.is_dir())
            .collect();
        versions.sort();
        dirs.extend(versions);
    }
    dirs
}

/// How long what [`find_all`] found is reused: a run asks for the same
/// tool several times (preflight, the backup, its check), and each look
/// runs every candidate with `--version`.
const FOUND_FOR: std::time::Duration = std::time::Duration::from_secs(60);

type FoundKey = (
    String,
    Option<PathBuf>,
    Vec<String>,
    Option<std::ffi::OsString>,
);
type Found = std::sync::Mutex<HashMap<FoundKey, (std::time::Instant, Vec<Tool>)>>;

/// Every `name` tool that can be found, with versions, deduplicated.
/// Debian's `pg_wrapper` (`/usr/bin/pg_dump` and friends, a Perl script
/// that picks a version and runs it) is left out when the versioned
/// binaries it would run are candidates themselves: it reports one of
/// their versions, and costs about 0.1 s a run.
pub fn find_all(name: &str, opts: &ToolOptions) -> Vec<Tool> {
    static FOUND: std::sync::OnceLock<Found> = std::sync::OnceLock::new();
    let key = (
        name.to_string(),
        opts.bin_dir.clone(),
        opts.command_prefix.clone(),
        std::env::var_os("PATH"),
    );
    let cache = FOUND.get_or_init(Default::default);
    if let Some((at, tools)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
        && at.elapsed() < FOUND_FOR
    {
        return tools.clone();
    }
    let tools = look_for(name, opts);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (std::time::Instant::now(), tools.clone()));
    tools
}

fn look_for(name: &str, opts: &ToolOptions) -> Vec<Tool> {
    if !opts.command_prefix.is_empty() {
        let mut argv = opts.command_prefix.clone();
        argv.push(name.to_string());
        return version_of(&argv)
            .map(|version| vec![Tool { argv, version }])
            .unwrap_or_default();
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let dirs = candidate_dirs(opts);
    let versioned = dirs
        .iter()
        .any(|d| d.starts_with("/usr/lib/postgresql") && d.join(name).is_file());
    for dir in dirs {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
        if versioned && real.file_name().is_some_and(|f| f == "pg_wrapper") {
            continue;
        }
        if !seen.insert(real) {
            continue;
        }
        let argv = vec![path.to_string_lossy().to_string()];
        if let Some(version) = version_of(&argv) {
            out.push(Tool { argv, version });
        }
    }
    out
}

/// The `name` tool of the lowest major version that is at least `at_least`;
/// among those, the newest minor.
///
/// # Errors
/// A message naming the versions found and the one needed.
pub fn pick(name: &str, at_least: u32, opts: &ToolOptions) -> std::result::Result<Tool, String> {
    let all = find_all(name, opts);
    let best = all
        .iter()
        .filter(|t| t.version.major >= at_least)
        .min_by_key(|t| (t.version.major, std::cmp::Reverse(t.version.minor)));
    if let Some(t) = best {
        return Ok(t.clone());
    }
    if all.is_empty() {
        let where_ = if opts.command_prefix.is_empty() {
            match &opts.bin_dir {
                Some(d) => format!("in {}", d.display()),
                None => "on PATH or in /usr/lib/postgresql/*/bin".to_string(),
            }
        } else {
            format!("through {:?}", opts.command_prefix.join(" "))
        };
        return Err(format!(
            "{name} not found {where_}; install the PostgreSQL {at_least} client tools (e.g. postgresql-client-{at_least})"
        ));
    }
    let found: Vec<String> = all
        .iter()
        .map(|t| format!("{} {}", t.argv.join(" "), t.version))
        .collect();
    Err(format!(
        "{name} must be version {at_least} or newer, found only {}; install postgresql-client-{at_least} or newer",
        found.join(", ")
    ))
}

/// The server binaries (`initdb`, `pg_ctl`, `postgres`) of the lowest major
/// at least `at_least`, for throwaway clusters.
pub fn server_bin_dir(at_least: u32, opts: &ToolOptions) -> std::result::Result<PathBuf, String> {
    let mut dirs: Vec<(PgVersion, PathBuf)> = candidate_dirs(opts)
        .into_iter()
        .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .filter_map(|d| {
            let v = version_of(&[d.join("postgres").to_string_lossy().to_string()])?;
            Some((v, d))
        })
        .filter(|(v, _)| v.major >= at_least)
        .collect();
    dirs.sort();
    dirs.into_iter()
        .next()
        .map(|(_, d)| d)
        .ok_or_else(|| format!("no PostgreSQL {at_least}+ server binaries (initdb, pg_ctl, postgres) found for a throwaway cluster; install postgresql-{at_least}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_numbers_and_tool_output() {
        assert_eq!(
            PgVersion::from_num(150018),
            PgVersion {
                major: 15,
                minor: 18
            }
        );
        assert_eq!(PgVersion::from_num(90624), PgVersion { major: 9, minor: 6 });
        assert_eq!(
            PgVersion::from_version_output("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(PgVersion {
                major: 15,
                minor: 18
            })
        );
        assert_eq!(
            PgVersion::from_version_output("pg_restore (PostgreSQL) 17.2"),
            Some(PgVersion {
                major: 17,
                minor: 2
            })
        );
        assert_eq!(PgVersion::from_version_output("garbage"), None);
    }

    #[test]
    fn debians_pg_wrapper_gives_way_to_the_binaries_it_would_run() {
        // Only where Debian's layout is there (scripts/test installs it).
        let wrapper = Path::new("/usr/bin/pg_dump");
        let is_wrapper = std::fs::canonicalize(wrapper)
            .is_ok_and(|r| r.file_name().is_some_and(|f| f == "pg_wrapper"));
        let versioned = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().any(|e| e.path().join("bin/pg_dump").is_file()))
            .unwrap_or(false);
        if !is_wrapper || !versioned {
            return;
        }
        let found = find_all("pg_dump", &ToolOptions::default());
        assert!(!found.is_empty());
        assert!(
            found
                .iter()
                .all(|t| t.argv[0].starts_with("/usr/lib/postgresql/")),
            "{found:?}"
        );
        // Asked for explicitly, the wrapper is used.
        let only = ToolOptions {
            bin_dir: Some(PathBuf::from("/usr/bin")),
            ..Default::default()
        };
        assert_eq!(find_all("pg_dump", &only)[0].argv[0], "/usr/bin/pg_dump");
    }

    #[test]
    fn missing_tools_are_named_with_the_version_needed() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ToolOptions {
            bin_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let err = pick("pg_dump", 16, &opts).unwrap_err();
        assert!(
            err.contains("pg_dump not found") && err.contains("16"),
            "{err}"
        );
    }
}
