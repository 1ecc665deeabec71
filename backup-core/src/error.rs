//! The one public error type.
//!
//! Rules every variant follows:
//!
//! - Each variant belongs to exactly one [`ErrorKind`], and the kind fixes the
//!   process exit code (see the table in `README.md`). A caller that needs to
//!   branch matches on [`Error::kind`], never on message text.
//! - Kinds and exit codes are not one-to-one: [`ErrorKind::NotFound`] is its
//!   own kind (a WAL `restore_command` must tell "no such object" from "the
//!   sink is unreachable") but exits 3 like [`ErrorKind::Sink`], so scripts
//!   written against the exit codes keep working.
//! - [`Error::is_retryable`] is `true` only for failures that may succeed when
//!   the same call is repeated unchanged (a timeout, a 503). Authentication,
//!   configuration and "not found" failures are permanent.
//! - Messages are one line, name the thing that failed, and never contain a
//!   secret: sink errors carry the location without credentials, and source
//!   errors never echo connection passwords.
//! - Backend errors (object_store, rusqlite, io) are wrapped, never exposed as
//!   variants, so a dependency upgrade cannot break callers.

use std::fmt;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure an [`Error`] is: the thing callers branch on.
///
/// The kinds and their exit codes follow seed 000's typed exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Another run holds the lock for this source (exit 1).
    Locked,
    /// The database could not be dumped: missing, unreadable, not a database,
    /// tool missing or failing (exit 2).
    Source,
    /// The storage location failed: credentials, network, missing bucket,
    /// unwritable directory (exit 3).
    Sink,
    /// An object or backup the caller named is not in the sink (exit 3, as
    /// for [`Sink`](Self::Sink): the kind is distinct, the exit code is not).
    NotFound,
    /// A backup exists but failed a check (exit 4).
    Verification,
    /// A restore could not be completed, or was refused (exit 5).
    Restore,
    /// A health check found a problem (exit 6).
    Health,
    /// The command line was wrong (exit 64).
    Usage,
    /// The configuration was wrong (exit 78).
    Config,
    /// The operation was cancelled by the caller (exit 130, as for SIGINT).
    Cancelled,
}

impl ErrorKind {
    /// Every kind, in the order of their exit codes.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Locked,
        ErrorKind::Source,
        ErrorKind::Sink,
        ErrorKind::NotFound,
        ErrorKind::Verification,
        ErrorKind::Restore,
        ErrorKind::Health,
        ErrorKind::Usage,
        ErrorKind::Config,
        ErrorKind::Cancelled,
    ];

    /// What the exit code says, in a few words (`sink failed`).
    pub fn summary(self) -> &'static str {
        match self {
            ErrorKind::Locked => "locked",
            ErrorKind::Source => "source failed",
            ErrorKind::Sink => "sink failed",
            ErrorKind::NotFound => "not found",
            ErrorKind::Verification => "verification failed",
            ErrorKind::Restore => "restore failed",
            ErrorKind::Health => "unhealthy",
            ErrorKind::Usage => "usage",
            ErrorKind::Config => "config",
            ErrorKind::Cancelled => "interrupted (SIGINT)",
        }
    }

    /// The process exit code for this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Locked => 1,
            ErrorKind::Source => 2,
            ErrorKind::Sink | ErrorKind::NotFound => 3,
            ErrorKind::Verification => 4,
            ErrorKind::Restore => 5,
            ErrorKind::Health => 6,
            ErrorKind::Usage => 64,
            ErrorKind::Config => 78,
            ErrorKind::Cancelled => 130,
        }
    }

    /// A stable lowercase name, used as `code` in the bindings and in JSON logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Locked => "locked",
            ErrorKind::Source => "source",
            ErrorKind::Sink => "sink",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Verification => "verification",
            ErrorKind::Restore => "restore",
            ErrorKind::Health => "health",
            ErrorKind::Usage => "usage",
            ErrorKind::Config => "config",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// The exit codes of every kind, for help texts: `1 locked, 2 source failed,
/// 3 sink failed or not found, …, 130 interrupted (SIGINT)`. Kinds that share
/// a code share an entry. Made from [`ErrorKind::exit_code`] and
/// [`ErrorKind::summary`], so it cannot drift from them.
pub fn exit_code_table() -> String {
    let mut entries: Vec<(i32, Vec<&str>)> = Vec::new();
    for kind in ErrorKind::ALL {
        let code = kind.exit_code();
        match entries.iter_mut().find(|(c, _)| *c == code) {
            Some((_, words)) => words.push(kind.summary()),
            None => entries.push((code, vec![kind.summary()])),
        }
    }
    entries.sort_by_key(|(code, _)| *code);
    entries
        .iter()
        .map(|(code, words)| format!("{code} {}", words.join(" or ")))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure Lifeboat reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the lock for this source.
    #[error("another lifeboat run holds the lock {path} (pass --wait to wait for it)")]
    Locked {
        /// The lock file.
        path: String,
    },

    /// Another host's run holds the source's lease in the sink.
    #[error(
        "{sink}: {holder} holds the lease on {source_name} for {operation} until {until}; try again later (a lease not renewed is taken over once it expires)"
    )]
    Leased {
        /// The sink, without credentials.
        sink: String,
        /// The source the lease is on.
        source_name: String,
        /// Who holds it (`host`, pid).
        holder: String,
        /// What it is doing.
        operation: String,
        /// When it expires unless renewed (RFC 3339).
        until: String,
    },

    /// The source database could not be read or dumped.
    #[error("source {location}: {message}")]
    Source {
        /// The source, as `sqlite:///path` or a password-free Postgres URL.
        location: String,
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The storage location failed.
    #[error("sink {location}: {message}")]
    Sink {
        /// The sink, as a URL without credentials.
        location: String,
        /// What went wrong.
        message: String,
        /// Whether repeating the same request may succeed.
        retryable: bool,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// An object the caller named does not exist in the sink
    /// ([`ErrorKind::NotFound`], exit 3).
    #[error("sink {location}: {key} not found")]
    NotFound {
        /// The sink, as a URL without credentials.
        location: String,
        /// The missing key or backup id.
        key: String,
    },

    /// A create-only write found the key already taken. Not retryable: the
    /// caller decides (the manifest commit reads the object back, since a
    /// retried request whose first attempt landed sees its own write).
    #[error("sink {location}: {key} already exists")]
    AlreadyExists {
        /// The sink, as a URL without credentials.
        location: String,
        /// The key that exists.
        key: String,
    },

    /// A conditional write ([`PutMode::Update`](crate::sink::PutMode::Update))
    /// found the object changed since the caller read its version, or gone.
    /// Of kind [`ErrorKind::Sink`] (exit 3), like [`Error::AlreadyExists`];
    /// not retryable: the caller reads the object again and decides.
    #[error("sink {location}: {key} is not at the expected version (precondition failed)")]
    Precondition {
        /// The sink, as a URL without credentials.
        location: String,
        /// The key written.
        key: String,
    },

    /// A verifier rejected a backup.
    #[error("verification {verifier} failed: {message}")]
    Verification {
        /// The verifier's name (`min-size`, `checksum`, `sqlite-integrity`).
        verifier: String,
        /// The evidence.
        message: String,
    },

    /// A restore failed or was refused.
    #[error("restore to {target}: {message}")]
    Restore {
        /// Where the restore was going.
        target: String,
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A health check failed.
    #[error("unhealthy: {message}")]
    Health {
        /// What is unhealthy.
        message: String,
    },

    /// Bad input on the command line or through the API (a malformed URL, an
    /// unknown scheme, a missing argument).
    #[error("{message}")]
    Usage {
        /// What was wrong.
        message: String,
    },

    /// A configuration file or value is wrong.
    #[error("config {origin}: {message}")]
    Config {
        /// The file or setting.
        origin: String,
        /// What was wrong.
        message: String,
    },

    /// The caller cancelled the operation.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Locked { .. } | Error::Leased { .. } => ErrorKind::Locked,
            Error::Source { .. } => ErrorKind::Source,
            Error::Sink { .. } | Error::AlreadyExists { .. } | Error::Precondition { .. } => {
                ErrorKind::Sink
            }
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Verification { .. } => ErrorKind::Verification,
            Error::Restore { .. } => ErrorKind::Restore,
            Error::Health { .. } => ErrorKind::Health,
            Error::Usage { .. } => ErrorKind::Usage,
            Error::Config { .. } => ErrorKind::Config,
            Error::Cancelled => ErrorKind::Cancelled,
        }
    }

    /// The process exit code (see [`ErrorKind::exit_code`]).
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    /// Whether the same call, repeated unchanged, may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Sink { retryable, .. } => *retryable,
            Error::Locked { .. } | Error::Leased { .. } => true,
            _ => false,
        }
    }

    /// The message with its chain of causes, on one line, without secrets.
    pub fn display_chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let text = c.to_string();
            if !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            cause = c.source();
        }
        // The one funnel every error message leaves the process through:
        // no secret survives it (see `redact`).
        crate::redact::text(&out.replace('\n', " ")).into_owned()
    }

    pub(crate) fn source_err(location: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Source {
            location: location.into(),
            message: message.into(),
            source: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn source_with(
        location: impl Into<String>,
        message: impl Into<String>,
        err: impl Into<BoxError>,
    ) -> Self {
        Error::Source {
            location: location.into(),
            message: message.into(),
            source: Some(err.into()),
        }
    }

    pub(crate) fn sink_err(location: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Sink {
            location: location.into(),
            message: message.into(),
            retryable: false,
            source: None,
        }
    }

    pub(crate) fn restore_err(target: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Restore {
            target: target.into(),
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
        }
    }

    pub(crate) fn config(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            origin: origin.into(),
            message: message.into(),
        }
    }

    pub(crate) fn verification(verifier: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Verification {
            verifier: verifier.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        let cases = [
            (Error::Locked { path: "x".into() }, 1),
            (Error::source_err("sqlite:///x", "missing"), 2),
            (Error::sink_err("file:///x", "unwritable"), 3),
            (
                Error::NotFound {
                    location: "file:///x".into(),
                    key: "k".into(),
                },
                3,
            ),
            (Error::verification("min-size", "small"), 4),
            (Error::restore_err("/x", "exists"), 5),
            (
                Error::Health {
                    message: "old".into(),
                },
                6,
            ),
            (Error::usage("bad"), 64),
            (Error::config("lifeboat.toml", "unknown key"), 78),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
        }
    }

    #[test]
    fn only_transient_sink_errors_and_locks_are_retryable() {
        let transient = Error::Sink {
            location: "s3://b".into(),
            message: "503".into(),
            retryable: true,
            source: None,
        };
        assert!(transient.is_retryable());
        assert!(!Error::sink_err("s3://b", "403").is_retryable());
        assert!(!Error::config("f", "bad").is_retryable());
        assert!(!Error::source_err("s", "missing").is_retryable());
    }

    #[test]
    fn the_exit_code_table_lists_every_kind() {
        let mut names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len(), "a kind twice in ALL");
        // Every variant, once: this match has no wildcard arm, so a new
        // kind fails to compile here until it is added to ALL too.
        for kind in ErrorKind::ALL {
            match kind {
                ErrorKind::Locked
                | ErrorKind::Source
                | ErrorKind::Sink
                | ErrorKind::NotFound
                | ErrorKind::Verification
                | ErrorKind::Restore
                | ErrorKind::Health
                | ErrorKind::Usage
                | ErrorKind::Config
                | ErrorKind::Cancelled => {}
            }
        }
        assert_eq!(
            exit_code_table(),
            "1 locked, 2 source failed, 3 sink failed or not found, 4 verification failed, \
             5 restore failed, 6 unhealthy, 64 usage, 78 config, 130 interrupted (SIGINT)"
        );
    }

    #[test]
    fn not_found_is_its_own_kind_with_the_sinks_exit_code() {
        let err = Error::NotFound {
            location: "s3://b".into(),
            key: "app/wal/00000001/000000010000000000000001.zst".into(),
        };
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_ne!(err.kind(), ErrorKind::Sink);
        assert_eq!(err.kind().as_str(), "not_found");
        assert_eq!(err.exit_code(), 3);
        assert!(!err.is_retryable());
        let taken = Error::AlreadyExists {
            location: "s3://b".into(),
            key: "k".into(),
        };
        assert_eq!(taken.kind(), ErrorKind::Sink);
        let changed = Error::Precondition {
            location: "s3://b".into(),
            key: "k".into(),
        };
        assert_eq!(changed.kind(), ErrorKind::Sink);
        assert_eq!(changed.exit_code(), 3);
        assert!(!changed.is_retryable());
    }

    #[test]
    fn display_chain_is_one_line_with_causes() {
        let err = Error::source_with(
            "sqlite:///x",
            "cannot open",
            std::io::Error::other("line one\nline two"),
        );
        let text = err.display_chain();
        assert!(!text.contains('\n'));
        assert!(text.contains("cannot open") && text.contains("line two"));
    }
}
