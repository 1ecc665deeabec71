"""Exception classes raised by Lifeboat.

Every failure is a :class:`LifeboatError`; branch on the class (or on
``code``), never on the message text. The classes follow the command line's
exit codes::

    LifeboatError                 code          exit_code
    ├── LockError                 "locked"      1   another run holds the lock
    ├── SourceError               "source"      2   the database could not be read or dumped
    ├── SinkError                 "sink"        3   the storage location failed
    │   └── NotFoundError         "not_found"   3   the named backup or object is not in the sink
    ├── VerificationError         "verification" 4  a backup failed a check
    ├── RestoreError              "restore"     5   a restore failed or was refused
    ├── HealthError               "health"      6   a health check found a problem
    ├── ConfigError               "config"      78  the configuration was wrong
    │   └── UsageError            "usage"       64  the call itself was wrong (bad option, URL, scheme)
    └── CancelledError            "cancelled"   130 the operation was cancelled

``retryable`` is true only when repeating the same call unchanged may
succeed (a timeout, a 503, a lock held by another run).
"""

from __future__ import annotations

__all__ = [
    "LifeboatError",
    "LockError",
    "SourceError",
    "SinkError",
    "NotFoundError",
    "VerificationError",
    "RestoreError",
    "HealthError",
    "ConfigError",
    "UsageError",
    "CancelledError",
]


class LifeboatError(Exception):
    """Root of every Lifeboat error.

    Attributes:
        code: the error kind, a stable lowercase name ("source", "sink", ...).
        exit_code: the exit code the ``lifeboat`` command line uses for it.
        retryable: whether the same call, repeated unchanged, may succeed.
    """

    code: str = "internal"
    exit_code: int = 70
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        exit_code: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if exit_code is not None:
            self.exit_code = exit_code
        if retryable is not None:
            self.retryable = retryable

    def __reduce__(self):  # keep the attributes through pickling
        return (
            _rebuild,
            (type(self), self.message, self.code, self.exit_code, self.retryable),
        )


def _rebuild(cls, message, code, exit_code, retryable):
    return cls(message, code=code, exit_code=exit_code, retryable=retryable)


class LockError(LifeboatError):
    """Another Lifeboat run holds the lock for this source (pass ``wait=True`` to wait)."""

    code = "locked"
    exit_code = 1
    retryable = True


class SourceError(LifeboatError):
    """The database could not be read or dumped: missing, unreadable, not a database, tool failing."""

    code = "source"
    exit_code = 2


class SinkError(LifeboatError):
    """The storage location failed: credentials, network, missing bucket, unwritable directory."""

    code = "sink"
    exit_code = 3


class NotFoundError(SinkError):
    """The backup or object the call named is not in the sink.

    Its own ``code`` ("not_found"), so a caller can tell it from a sink that
    failed; a :class:`SinkError`, with the same exit code (3), so code that
    catches ``SinkError`` keeps catching it.
    """

    code = "not_found"
    exit_code = 3


class VerificationError(LifeboatError):
    """A backup exists but failed a check (size, checksum, integrity, drill)."""

    code = "verification"
    exit_code = 4


class RestoreError(LifeboatError):
    """A restore could not be completed, or was refused (the target exists and ``force`` was not given)."""

    code = "restore"
    exit_code = 5


class HealthError(LifeboatError):
    """A health check found a problem."""

    code = "health"
    exit_code = 6


class ConfigError(LifeboatError):
    """The configuration was wrong: a config file, a profile, an environment variable it names."""

    code = "config"
    exit_code = 78


class UsageError(ConfigError):
    """The call itself was wrong: an unknown option, a bad value, a malformed URL, an unknown scheme.

    A :class:`ConfigError`, so one ``except ConfigError`` catches every bad input.
    """

    code = "usage"
    exit_code = 64


class CancelledError(LifeboatError):
    """The operation was cancelled from the native side before it finished
    (e.g. a low-level ``lifeboat._native.Operation`` cancelled from another
    thread); nothing it was writing became visible.

    Not raised for the caller's own interrupts: Ctrl-C on the blocking API
    raises :class:`KeyboardInterrupt`, and a cancelled :mod:`lifeboat.aio`
    task ends with :class:`asyncio.CancelledError`, as asyncio requires.
    """

    code = "cancelled"
    exit_code = 130
