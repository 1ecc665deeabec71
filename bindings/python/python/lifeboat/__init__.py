"""Lifeboat: back up SQLite and PostgreSQL to S3, Google Cloud Storage,
DigitalOcean Spaces or a local folder, and prove every backup restores.

The functions here block until the operation is over, with the GIL
released; :mod:`lifeboat.aio` has the same functions as coroutines. Options
are the command line's long flags in snake_case (``min_size``, ``lock_dir``,
``exclude_tables``, ...) plus ``config`` and ``profile``; ``from_`` stands for
``--from``. Results are the dicts the CLI prints with ``--json``.

Ctrl-C during a call cancels the operation, waits until nothing half-written
is left visible, then raises :class:`KeyboardInterrupt`.

>>> import lifeboat
>>> out = lifeboat.backup("sqlite:///srv/app.db", to="file:///var/backups/app")  # doctest: +SKIP
>>> lifeboat.verify(from_="file:///var/backups/app", latest=True)["passed"]      # doctest: +SKIP
True
"""

from __future__ import annotations

import builtins
from typing import Any

from . import _native, aio
from ._options import encode as _encode
from .errors import (
    CancelledError,
    ConfigError,
    HealthError,
    LifeboatError,
    LockError,
    NotFoundError,
    RestoreError,
    SinkError,
    SourceError,
    UsageError,
    VerificationError,
)
from .types import (
    BackupResult,
    ListResult,
    ProgressCallback,
    PruneResult,
    RestoreResult,
    SourceStatus,
    VerifyResult,
)

__version__: str = _native.__version__

__all__ = [
    "backup",
    "list",
    "verify",
    "restore",
    "prune",
    "status",
    "init_logging",
    "aio",
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
    "ProgressCallback",
    "__version__",
]


def backup(
    source: str | None = None,
    to: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> BackupResult:
    """Take a backup, verify it, and commit it with its manifest.

    Args:
        source: ``sqlite:///path/app.db`` or ``postgres://user@host/db[,db2]``
            (default: ``source`` in the config file).
        to: where backups live: ``file:///dir``, ``s3://bucket/prefix``,
            ``gs://bucket/prefix``, ``spaces://bucket/prefix?region=nyc3``.
        on_progress: called as ``on_progress(phase, bytes, total)`` on this thread.
        **options: ``name``, ``min_size`` (int or ``"1 KiB"``), ``level``,
            ``threads``, ``wait``, ``lock_dir``, ``temp_dir``, ``config``,
            ``profile``, ``no_drill`` (skip the restore drill PostgreSQL
            backups run by default before the commit), and the PostgreSQL
            and drill options.

    Returns:
        ``{"backups": [{"manifest", "location", "duration_ms", "drill"}]}``.

    Raises:
        LifeboatError: a subclass naming what failed (SourceError, SinkError, ...).
    """
    payload = _encode("backup", {"source": source, "to": to}, options)
    return _native.run("backup", payload, on_progress)


def list(from_: str | None = None, **options: Any) -> ListResult:  # noqa: A001 - the CLI verb
    """List the backups in a sink, complete and incomplete.

    Args:
        from_: the sink (``--from``); default: ``sink`` in the config file.
        **options: ``source`` (only this source name), ``config``, ``profile``.

    Returns:
        ``{"location", "complete": [manifest + "assurance", ...],
        "unreadable": [...], "incomplete": [...], "leftovers": {...}}``.
        A listing failure raises; it never comes back as an empty list.
    """
    payload = _encode("list", {"from": from_}, options)
    return _native.run("list", payload)


def verify(
    from_: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> VerifyResult:
    """Prove a stored backup again: size, checksum, and the data itself.

    Args:
        from_: the sink (``--from``).
        **options: ``id`` or ``latest=True``, ``source``, ``min_size``,
            ``temp_dir``, the PostgreSQL and drill options, ``config``, ``profile``.

    Returns:
        ``{"backup_id", "source", "location", "passed", "verdicts", "duration_ms"}``.

    Raises:
        VerificationError: a check failed.
    """
    payload = _encode("verify", {"from": from_}, options)
    return _native.run("verify", payload, on_progress)


def restore(
    from_: str | None = None,
    to: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> RestoreResult:
    """Restore a backup into a database (a SQLite file or a new PostgreSQL database).

    Args:
        from_: the sink (``--from``).
        to: the target, e.g. ``sqlite:///srv/restored.db``.
        **options: ``id`` or ``latest=True``, ``source``, ``force``, ``wait``,
            ``lock_dir``, the PostgreSQL options, ``config``, ``profile``.
            PostgreSQL: ``globals=True`` creates the backup's stored roles and
            tablespaces the server lacks (existing ones are left unchanged);
            ``no_owner=True`` restores without ownership and privileges;
            ``no_analyze=True`` skips the ANALYZE before the database takes
            its name; ``partial=True`` restores what loads when the archive
            does not load cleanly, listing every error (``errors``) and every
            table whose rows differ (``tables_differing``).

    Returns:
        ``{"backup_id", "target", "bytes", "replaced", "fingerprint", "duration_ms"}``;
        PostgreSQL adds ``analyzed``/``analyze_ms``, and ``globals`` (roles
        created and skipped) with ``globals=True``.

    Raises:
        RestoreError: the restore failed, or the target exists and ``force`` was not given.
    """
    payload = _encode("restore", {"from": from_, "to": to}, options)
    return _native.run("restore", payload, on_progress)


def prune(from_: str | None = None, **options: Any) -> PruneResult:
    """Apply retention to a sink: delete the backups no rule keeps.

    Args:
        from_: the sink (``--from``).
        **options: ``source``, ``keep_last``, ``keep_days``, ``keep_daily``,
            ``keep_weekly``, ``keep_monthly``, ``dry_run=True`` (decide, delete
            nothing), ``config``, ``profile``. Without any rule (here or in
            ``[retention]`` of the config file) it raises UsageError.

    Returns:
        ``{"decisions": [...], "deleted": [...], "dry_run"}``. A listing
        failure raises and deletes nothing.
    """
    payload = _encode("prune", {"from": from_}, options)
    return _native.run("prune", payload)


def status(from_: str | None = None, **options: Any) -> builtins.list[SourceStatus]:
    """Health of each source: backup age, size, last verification and drill.

    Args:
        from_: the sink (default: every profile's sink in the config file).
        **options: ``source``, ``max_age`` (``"26h"``), ``min_size``,
            ``max_size_drop`` (0.5 = half), ``config``, ``profile``.

    Returns:
        One dict per source with ``healthy`` and ``problems``. An unhealthy
        source is a result, not an exception (the CLI exits 6 for it); raise
        :class:`HealthError` yourself if that suits the caller.
    """
    payload = _encode("status", {"from": from_}, options)
    return _native.run("status", payload)


def init_logging(json: bool = False, verbose: int = 0, quiet: bool = False) -> None:
    """Send Lifeboat's logs to stderr like the CLI does (text or JSON lines).

    Off by default: a library stays quiet unless asked. Only the first call
    takes effect.
    """
    _native.init_logging(json, verbose, quiet)

