//! Connection parameters, and how they reach child processes without the
//! password ever touching a command line.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tls::{self, SslMode};
use crate::error::{Error, Result};

/// Where a PostgreSQL database is. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConn {
    /// Host name, IP, or a Unix socket directory (starts with `/`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Database.
    pub dbname: String,
    /// `sslmode` (URL, else `PGSSLMODE`, else `prefer`).
    pub sslmode: SslMode,
    /// `sslrootcert` (URL, else `PGSSLROOTCERT`): a PEM file, or `system`.
    pub sslrootcert: Option<String>,
    password: Option<String>,
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn pct_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

impl PgConn {
    /// Parse `postgres://user[:password]@host[:port]/db[?host=/socket/dir]`
    /// (also `&sslmode=…&sslrootcert=…`, as libpq).
    /// Missing parts come from `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`
    /// (defaults: localhost, 5432, the OS user, the user name). The password
    /// comes from the URL, else `PGPASSWORD`, else `~/.pgpass` (or
    /// `PGPASSFILE`).
    ///
    /// # Errors
    /// [`Error::Usage`] for a malformed URL.
    pub fn parse(url: &str) -> Result<(Self, Vec<String>)> {
        // `postgres://user@/db?host=/socket` has no host before the path;
        // give the parser one, the `host` parameter replaces it.
        let patched = url
            .replacen("@/", "@localhost/", 1)
            .replacen(":///", "://localhost/", 1);
        let parsed = url::Url::parse(&patched)
            .map_err(|e| Error::usage(format!("invalid PostgreSQL URL: {e}")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(Error::usage("a PostgreSQL URL starts with postgres://"));
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .map(pct_decode)
            .or_else(|| env("PGHOST"))
            .unwrap_or_else(|| "localhost".into());
        let mut port = parsed
            .port()
            .or_else(|| env("PGPORT").and_then(|p| p.parse().ok()))
            .unwrap_or(5432);
        let mut sslmode = None;
        let mut sslrootcert = env("PGSSLROOTCERT");
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "host" => host = v.to_string(),
                "port" => {
                    port = v
                        .parse()
                        .map_err(|_| Error::usage(format!("invalid port {v:?}")))?
                }
                "sslmode" => sslmode = Some(parse_sslmode(&v)?),
                "sslrootcert" => sslrootcert = Some(v.to_string()),
                other => {
                    return Err(Error::usage(format!(
                        "unknown PostgreSQL URL parameter {other:?} (known: host, port, sslmode, sslrootcert)"
                    )));
                }
            }
        }
        let user = Some(pct_decode(parsed.username()))
            .filter(|u| !u.is_empty())
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        let dbs: Vec<String> = parsed
            .path()
            .trim_start_matches('/')
            .split(',')
            .map(pct_decode)
            .filter(|d| !d.is_empty())
            .collect();
        let dbs = if dbs.is_empty() {
            vec![env("PGDATABASE").unwrap_or_else(|| user.clone())]
        } else {
            dbs
        };
        let sslmode = match sslmode {
            Some(m) => m,
            None => match env("PGSSLMODE") {
                Some(v) => parse_sslmode(&v)?,
                None => SslMode::default(),
            },
        };
        let password = parsed.password().map(pct_decode);
        let mut conn = Self {
            host,
            port,
            user,
            dbname: dbs[0].clone(),
            sslmode,
            sslrootcert,
            password,
        };
        if conn.password.is_none() {
            conn.password = env("PGPASSWORD").or_else(|| conn.pgpass_lookup());
        }
        if let Some(p) = &conn.password {
            crate::redact::register(p);
        }
        Ok((conn, dbs))
    }

    /// A connection over a Unix socket directory, without a password.
    pub fn socket(dir: &Path, port: u16, user: &str, dbname: &str) -> Self {
        Self {
            host: dir.to_string_lossy().to_string(),
            port,
            user: user.to_string(),
            dbname: dbname.to_string(),
            sslmode: SslMode::Disable,
            sslrootcert: None,
            password: None,
        }
    }

    /// A connection to the server a URL names, in its first database (or
    /// the default one): for the cluster-wide questions (archiving,
    /// settings) that need one connection, whatever the URL lists.
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_first(url: &str) -> Result<Self> {
        let (conn, dbs) = Self::parse(url)?;
        Ok(match dbs.first() {
            Some(d) => conn.with_dbname(d),
            None => conn,
        })
    }

    /// The same server and role, another database.
    pub fn with_dbname(&self, db: &str) -> Self {
        let mut c = self.clone();
        c.dbname = db.to_string();
        c
    }

    /// `postgres://user@host:port/db`: safe to log, never has the password.
    pub fn location(&self) -> String {
        if self.host.starts_with('/') {
            format!(
                "postgres://{}@/{}?host={}&port={}",
                self.user, self.dbname, self.host, self.port
            )
        } else {
            format!(
                "postgres://{}@{}:{}/{}",
                self.user, self.host, self.port, self.dbname
            )
        }
    }

    /// Whether a password is known.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    fn pgpass_lookup(&self) -> Option<String> {
        let path = std::env::var("PGPASSFILE")
            .ok()
            .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.pgpass")))?;
        let text = std::fs::read_to_string(path).ok()?;
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields = split_pgpass(line);
            if fields.len() != 5 {
                continue;
            }
            let port = self.port.to_string();
            let want = [&self.host, &port, &self.dbname, &self.user];
            if fields[..4]
                .iter()
                .zip(want)
                .all(|(f, w)| f == "*" || f == w)
            {
                return Some(fields[4].clone());
            }
        }
        None
    }

    /// A `tokio_postgres` configuration.
    pub(crate) fn client_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("lifeboat")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(p) = &self.password {
            c.password(p);
        }
        c.ssl_mode(self.effective_sslmode().for_client());
        c
    }

    /// Unix sockets never use TLS (libpq ignores `sslmode` for them too).
    fn effective_sslmode(&self) -> SslMode {
        if self.host.starts_with('/') {
            SslMode::Disable
        } else {
            self.sslmode
        }
    }

    /// Connect, mapping failures to one-line source errors.
    pub(crate) async fn connect(&self) -> Result<tokio_postgres::Client> {
        let fail = |e: tokio_postgres::Error| {
            Error::source_err(self.location(), describe_connect_error(&e))
        };
        let config = self.client_config();
        let mode = self.effective_sslmode();
        if mode == SslMode::Disable {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(fail)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            return Ok(client);
        }
        let tls = tls::client_config(mode, self.sslrootcert.as_deref(), &self.location())?;
        let (client, connection) = config
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .await
            .map_err(fail)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Point a child `pg_*` process at this database: connection settings
    /// in its environment, the password in a 0600 passfile in `secret_dir`.
    /// The command line never carries the password.
    pub(crate) fn configure_child(&self, cmd: &mut Command, secret_dir: &Path) -> Result<()> {
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.dbname)
            .env("PGAPPNAME", "lifeboat")
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGSSLMODE", self.sslmode.as_str())
            .env_remove("PGPASSWORD");
        match &self.sslrootcert {
            Some(r) => cmd.env("PGSSLROOTCERT", r),
            None => cmd.env_remove("PGSSLROOTCERT"),
        };
        match &self.password {
            Some(p) => {
                let file = self.write_passfile(p, secret_dir)?;
                cmd.env("PGPASSFILE", file);
            }
            None => {
                cmd.env_remove("PGPASSFILE");
            }
        }
        Ok(())
    }

    fn write_passfile(&self, password: &str, dir: &Path) -> Result<PathBuf> {
        let path = dir.join("pgpass");
        let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        let line = format!("*:*:*:*:{}\n", esc(password));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                Error::source_err(self.location(), format!("cannot write passfile: {e}"))
            })?;
        f.write_all(line.as_bytes()).map_err(|e| {
            Error::source_err(self.location(), format!("cannot write passfile: {e}"))
        })?;
        Ok(path)
    }
}

fn parse_sslmode(v: &str) -> Result<SslMode> {
    SslMode::parse(v).ok_or_else(|| {
        Error::usage(format!(
            "unknown sslmode {v:?} (disable, allow, prefer, require, verify-ca or verify-full)"
        ))
    })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("nonempty").push(n);
                }
            }
            ':' => out.push(String::new()),
            c => out.last_mut().expect("nonempty").push(c),
        }
    }
    out
}

/// One line for a failed connection, without the password.
pub(crate) fn describe_connect_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.code().code() {
            "28P01" | "28000" => format!("authentication failed: {}", db.message()),
            "3D000" => format!("database does not exist: {}", db.message()),
            _ => format!("{} ({})", db.message(), db.code().code()),
        };
    }
    let text = e.to_string();
    let cause = std::error::Error::source(e)
        .map(|c| c.to_string())
        .unwrap_or_default();
    if cause.contains("Connection refused") || text.contains("Connection refused") {
        "server unreachable: connection refused".into()
    } else if cause.contains("timed out") || text.contains("timeout") {
        "server unreachable: connection timed out".into()
    } else if text.contains("password missing") {
        "the server wants a password and none was given (PGPASSWORD, ~/.pgpass, or the URL)".into()
    } else if cause.contains("UnknownIssuer") {
        format!(
            "{text}: {cause} (the server's certificate does not lead to a trusted root: point sslrootcert at its CA's PEM file)"
        )
    } else if cause.is_empty() {
        text
    } else {
        format!("{text}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_databases_and_never_show_the_password() {
        let (c, dbs) =
            PgConn::parse("postgres://app:s3cr%3At@db.internal:6543/shop,analytics").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str()),
            ("db.internal", 6543, "app")
        );
        assert_eq!(dbs, vec!["shop", "analytics"]);
        assert_eq!(c.password.as_deref(), Some("s3cr:t"));
        assert_eq!(c.location(), "postgres://app@db.internal:6543/shop");
        assert!(!format!("{c:?}").contains("s3cr"));
    }

    #[test]
    fn socket_hosts_and_unknown_parameters() {
        let (c, _) = PgConn::parse("postgres://u@/db?host=/tmp/sock&port=5433").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("/tmp/sock", 5433));
        assert!(PgConn::parse("postgres://u@h/db?colour=red").is_err());
        let (c, _) =
            PgConn::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem").unwrap();
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert.as_deref(), Some("/ca.pem"));
        let e = PgConn::parse("postgres://u@h/db?sslmode=verify_full").unwrap_err();
        assert!(e.to_string().contains("unknown sslmode"), "{e}");
    }

    #[test]
    fn pgpass_lines_unescape() {
        assert_eq!(
            split_pgpass(r"h:5432:*:u:pa\:ss\\x"),
            vec!["h", "5432", "*", "u", r"pa:ss\x"]
        );
    }

    #[test]
    fn passfile_is_private_and_escaped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = PgConn::parse("postgres://u:a:b@h/db")
            .unwrap_or_else(|_| PgConn::parse("postgres://u:a%3Ab@h/db").unwrap());
        let mut cmd = Command::new("true");
        c.configure_child(&mut cmd, dir.path()).unwrap();
        let file = dir.path().join("pgpass");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "*:*:*:*:a\\:b\n");
        let args: Vec<_> = cmd.get_args().collect();
        assert!(args.is_empty());
    }
}
