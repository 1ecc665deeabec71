"""Lifeboat: back up SQLite and PostgreSQL to S3, Google Cloud Storage,
DigitalOcean Spaces or a local folder, and prove every backup restores.

The functions here block until the operation is over, with the GIL
released; :mod:`lifeboat.aio` has the same functions as coroutines. Their
keyword parameters are the fields of the core's typed arguments for each
operation (``backup_core::ops``), the command line's flags in snake_case,
plus ``config`` and ``profile``; ``sink`` is where backups live (the CLI's
``--to`` for backup, ``--from`` elsewhere) and ``target`` what a restore
creates. Results are the dicts the CLI prints with ``--json``.

Ctrl-C during a call cancels the operation, waits until nothing half-written
is left visible, then raises :class:`KeyboardInterrupt`.

>>> import lifeboat
>>> out = lifeboat.backup("sqlite:///srv/app.db", "file:///var/backups/app")  # doctest: +SKIP
>>> lifeboat.verify("file:///var/backups/app", latest=True)["passed"]         # doctest: +SKIP
True
"""

from __future__ import annotations

import builtins
import os
from typing import Sequence

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
    DoctorReport,
    ListResult,
    MirrorResult,
    ProgressCallback,
    PruneResult,
    RestoreResult,
    SourceStatus,
    VerifyResult,
    WalFetchResult,
    WalPushResult,
)

__version__: str = _native.__version__

__all__ = [
    "backup",
    "list",
    "verify",
    "drill",
    "restore",
    "prune",
    "wal_push",
    "wal_fetch",
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
    sink: str | None = None,
    *,
    name: str | None = None,
    min_size: int | str | None = None,
    level: int | None = None,
    threads: int | None = None,
    wait: bool = False,
    lock_dir: str | os.PathLike[str] | None = None,
    temp_dir: str | os.PathLike[str] | None = None,
    no_drill: bool = False,
    physical: bool = False,
    drill: bool = False,
    drill_server: str | None = None,
    drill_cluster: bool = False,
    jobs: int | None = None,
    pg_bin_dir: str | os.PathLike[str] | None = None,
    command_prefix: str | None = None,
    schemas: Sequence[str] = (),
    exclude_schemas: Sequence[str] = (),
    tables: Sequence[str] = (),
    exclude_tables: Sequence[str] = (),
    globals: bool = False,
    min_tables: int | None = None,
    max_replica_lag: int | str | None = None,
    replica_lag_warn: bool = False,
    lock_wait: int | str | None = None,
    also_to: Sequence[str] = (),
    recipients: Sequence[str] = (),
    recipients_file: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> BackupResult:
    """Take a backup, verify it, and commit it with its manifest.

    Args:
        source: ``sqlite:///path/app.db`` or ``postgres://user@host/db[,db2]``
            (default: ``source`` in the config file).
        sink: where backups live: ``file:///dir``, ``s3://bucket/prefix``,
            ``gs://bucket/prefix``, ``spaces://bucket/prefix?region=nyc3``
            (the CLI's ``--to``; default: ``sink`` in the config file).
        recipients: age public keys (``age1…``) to encrypt the backup to,
            after compression (also ``recipients_file``; default:
            ``[encryption]`` in the config file). Only public keys are needed.
        no_drill: skip the restore drill PostgreSQL backups run by default
            before the commit; ``drill``/``drill_server``/``drill_cluster``
            ask for one.
        physical: PostgreSQL: a physical base backup of the whole cluster
            (``pg_basebackup``), proven against its ``backup_manifest``; restore it
            with ``target="pgdata:///path"``.
        on_progress: called as ``on_progress(phase, bytes, total)`` on this thread.

    The other parameters are ``lifeboat backup``'s flags in snake_case
    (``min_size`` takes an int or ``"1 KiB"``; ``schemas``,
    ``exclude_tables``, ... are lists).

    Returns:
        ``{"backups": [{"manifest", "location", "duration_ms", "drill"}]}``.

    Raises:
        LifeboatError: a subclass naming what failed (SourceError, SinkError, ...).
    """
    return _native.run("backup", _encode("backup", locals()), on_progress)


def list(
    sink: str | None = None,
    *,
    source: str | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> ListResult:  # noqa: A001 - the CLI verb
    """List the backups in a sink, complete and incomplete.

    Args:
        sink: the sink (the CLI's ``--from``); default: ``sink`` in the config file.
        source: only this source name.

    Returns:
        ``{"location", "complete": [manifest + "assurance", ...],
        "unreadable": [...], "incomplete": [...], "leftovers": {...}}``.
        A listing failure raises; it never comes back as an empty list.
    """
    return _native.run("list", _encode("list", locals()))


def verify(
    sink: str | None = None,
    *,
    source: str | None = None,
    id: str | None = None,
    latest: bool = False,
    min_size: int | str | None = None,
    temp_dir: str | os.PathLike[str] | None = None,
    min_tables: int | None = None,
    drill: bool = False,
    drill_server: str | None = None,
    drill_cluster: bool = False,
    jobs: int | None = None,
    pg_bin_dir: str | os.PathLike[str] | None = None,
    command_prefix: str | None = None,
    identity: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> VerifyResult:
    """Prove a stored backup again: size, checksum, and the data itself.

    Args:
        sink: the sink (the CLI's ``--from``).
        id: a backup id (or unique prefix); default: the latest (``latest=True``).
        drill: also restore it in a drill (``drill_server``, ``drill_cluster``).

    Returns:
        ``{"backup_id", "source", "location", "passed", "verdicts", "duration_ms"}``.

    Raises:
        VerificationError: a check failed.
    """
    return _native.run("verify", _encode("verify", locals()), on_progress)


def drill(
    sink: str | None = None,
    *,
    source: str | None = None,
    id: str | None = None,
    latest: bool = False,
    temp_dir: str | os.PathLike[str] | None = None,
    drill_server: str | None = None,
    drill_cluster: bool = False,
    jobs: int | None = None,
    pg_bin_dir: str | os.PathLike[str] | None = None,
    command_prefix: str | None = None,
    pitr: bool = False,
    target_time: str | None = None,
    lifeboat_command: str | None = None,
    identity: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> VerifyResult:
    """Restore a stored backup into a scratch database, compare it with the
    backup, run the smoke checks, drop it, and record the evidence.

    Args:
        sink: the sink (the CLI's ``--from``).
        id: a backup id (or unique prefix); default: the latest.
        drill_server: drill into a temporary database on this server;
            ``drill_cluster=True``: a throwaway cluster from local server
            binaries (the default where they fit the backup).

    Returns:
        ``{"backup_id", "source", "location", "passed", "verdicts", "duration_ms"}``.

    Raises:
        VerificationError: the restored database differs or a smoke check failed.
        ConfigError: no drill target could be set up.
    """
    return _native.run("drill", _encode("drill", locals()), on_progress)


def restore(
    sink: str | None = None,
    target: str | None = None,
    *,
    source: str | None = None,
    id: str | None = None,
    latest: bool = False,
    force: bool = False,
    wait: bool = False,
    lock_dir: str | os.PathLike[str] | None = None,
    globals: bool = False,
    no_owner: bool = False,
    jobs: int | None = None,
    partial: bool = False,
    no_analyze: bool = False,
    target_time: str | None = None,
    target_lsn: str | None = None,
    target_xid: str | None = None,
    target_name: str | None = None,
    target_timeline: str | None = None,
    target_action: str | None = None,
    lifeboat_command: str | None = None,
    start: bool = False,
    port: int | None = None,
    keep_archiving: bool = False,
    tablespace_map: list[str] | None = None,
    pg_bin_dir: str | os.PathLike[str] | None = None,
    command_prefix: str | None = None,
    identity: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> RestoreResult:
    """Restore a backup into a database (a SQLite file or a new PostgreSQL database).

    Args:
        sink: the sink (the CLI's ``--from``).
        target: the database to create, e.g. ``sqlite:///srv/restored.db``
            (the CLI's ``--to``).
        force: replace an existing database (kept aside until the new one is proven).
        identity: the age identity file that decrypts an encrypted backup (a
            path; default: ``identity_file`` in ``[encryption]``).
        globals: PostgreSQL: create the backup's stored roles and tablespaces
            the server lacks (existing ones are left unchanged).
        no_owner: PostgreSQL: restore without ownership and privileges.
        no_analyze: PostgreSQL: skip the ANALYZE before the database takes its name.
        partial: PostgreSQL: restore what loads when the archive does not load
            cleanly, listing every error (``errors``) and every table whose
            rows differ (``tables_differing``).
        target_time: a physical backup restored into ``pgdata:///path``:
            recover to this time (with its zone); also ``target_lsn``,
            ``target_xid``, ``target_name``, ``target_timeline`` and
            ``target_action`` (promote, pause, shutdown). The restored
            server's ``restore_command`` runs ``lifeboat wal fetch``
            (``lifeboat_command`` says which lifeboat). ``start`` starts the
            server (on ``port``), waits until recovery reaches the target
            and reports where (``started``: ``state``, ``point_reached``,
            ``timeline``). The restored server gets ``archive_mode = off``
            unless ``keep_archiving`` (it replaces the primary).
        tablespace_map: a physical backup's tablespaces go back to their
            recorded directories (which must not exist or be empty) unless
            moved here, as ``["/old/dir=/new/dir", ...]`` (the CLI's
            ``--tablespace-map``, pg_basebackup's ``-T``).

    Returns:
        ``{"backup_id", "target", "bytes", "replaced", "fingerprint", "duration_ms"}``;
        PostgreSQL adds ``analyzed``/``analyze_ms``, and ``globals`` (roles
        created and skipped) with ``globals=True``.

    Raises:
        RestoreError: the restore failed, or the target exists and ``force`` was not given.
    """
    return _native.run("restore", _encode("restore", locals()), on_progress)


def prune(
    sink: str | None = None,
    *,
    source: str | None = None,
    keep_last: int | None = None,
    keep_days: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    keep_pitr: int | str | None = None,
    dry_run: bool = False,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> PruneResult:
    """Apply retention to a sink: delete the backups no rule keeps.

    Args:
        sink: the sink (the CLI's ``--from``).
        keep_last, keep_days, keep_daily, keep_weekly, keep_monthly: the rules
            (over ``[retention]`` of the config file; without any rule it
            raises UsageError).
        dry_run: decide, delete nothing.

    Returns:
        ``{"decisions": [...], "deleted": [...], "dry_run"}``. A listing
        failure raises and deletes nothing.
    """
    return _native.run("prune", _encode("prune", locals()))


def mirror(
    sink: str | None = None,
    target: str | None = None,
    *,
    source: str | None = None,
    dry_run: bool = False,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> MirrorResult:
    """Copy what ``sink`` has and ``target`` lacks (the CLI's ``--from`` and
    ``--to``): complete backups, every object checked against its manifest
    and the manifest written last; WAL files; verification and drill
    records. Resumable: an interrupted mirror leaves no manifest for what it
    did not finish. ``dry_run`` copies nothing.

    Returns:
        ``{"backups", "backups_present", "wal_files", "records", "bytes", ...}``.

    Raises:
        VerificationError: an object did not match its record (the rest was copied).
    """
    return _native.run("mirror", _encode("mirror", locals()))


def doctor(
    sink: str | None = None,
    *,
    source: str | None = None,
    identity: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> builtins.list[DoctorReport]:
    """Check what silently breaks backups, per profile (or ``sink``):
    credentials (put, read and delete a test object), clock skew against the
    sink, the source and its tools, temp space, WAL archiving, and that the
    identity decrypts the newest encrypted backup.

    Returns:
        One dict per sink: ``{"sink", "checks": [{"name", "ok", "detail"}],
        "problems"}``. Problems are a result, not an exception (the CLI
        exits 6 for them).
    """
    return _native.run("doctor", _encode("doctor", locals()))


def status(
    sink: str | None = None,
    *,
    source: str | None = None,
    max_age: int | str | None = None,
    min_size: int | str | None = None,
    max_size_drop: float | None = None,
    max_wal_age: int | str | None = None,
    server: str | None = None,
    mirror_of: str | None = None,
    max_mirror_lag: int | str | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> builtins.list[SourceStatus]:
    """Health of each source: backup age, size, last verification and drill.

    Args:
        sink: the sink (default: every profile's sink in the config file).
        max_age: ``"26h"``; min_size; max_size_drop: 0.5 = half.
        server: for a source with a WAL archive, the PostgreSQL server whose
            ``pg_stat_archiver`` is read (default: the profile's postgres
            source; ``"none"`` not to connect).

    Returns:
        One dict per source with ``healthy`` and ``problems``. An unhealthy
        source is a result, not an exception (the CLI exits 6 for it); raise
        :class:`HealthError` yourself if that suits the caller.
    """
    return _native.run("status", _encode("status", locals()))


def wal_push(
    path: str | os.PathLike[str] | None = None,
    sink: str | None = None,
    *,
    name: str | None = None,
    level: int | None = None,
    parallel: int | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    recipients: Sequence[str] = (),
    recipients_file: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> WalPushResult:
    """Archive one PostgreSQL WAL file (what ``lifeboat wal push %p`` does
    as ``archive_command``).

    Returns only once the file is stored. The same file again is success
    (``already_archived``); a different file under the same name, or a
    segment of another cluster than the archive's, raises and is never
    stored.

    Args:
        path: the WAL file (PostgreSQL's ``%p``).
        sink: where the archive lives (the CLI's ``--to``).
        name: the source name the archive is kept under.

    Raises:
        VerificationError: a different file is archived under this name, or
            the segment is another cluster's or not what its name says.
        UsageError: the file's name is not a WAL file's.
    """
    return _native.run("wal_push", _encode("wal_push", locals()))


def wal_fetch(
    file_name: str | None = None,
    path: str | os.PathLike[str] | None = None,
    sink: str | None = None,
    *,
    name: str | None = None,
    parallel: int | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    identity: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> WalFetchResult:
    """Fetch one archived WAL file into ``path`` (what ``lifeboat wal fetch
    %f %p`` does as ``restore_command``): written beside it, checked
    against the archive's SHA-256, then renamed into place.

    Raises:
        NotFoundError: the archive does not have it.
        VerificationError: the stored object does not match its record.
    """
    return _native.run("wal_fetch", _encode("wal_fetch", locals()))


def wal_setup(
    source: str | None = None,
    sink: str | None = None,
    *,
    name: str | None = None,
    check: bool = False,
    timeout: int | str | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> dict:
    """The ``postgresql.conf`` lines for archiving ``source`` into ``sink``
    (``conf_lines``); with ``check=True`` also check the server's settings,
    force a segment switch and wait until that segment is in the sink.

    Returns:
        ``{"conf_lines", "settings", "switched_segment", "archived_in_ms",
        "archiver", "problems"}``; problems are a result, not an exception.
    """
    return _native.run("wal_setup", _encode("wal_setup", locals()))


def init_logging(json: bool = False, verbose: int = 0, quiet: bool = False) -> None:
    """Send Lifeboat's logs to stderr like the CLI does (text or JSON lines).

    Off by default: a library stays quiet unless asked. Only the first call
    takes effect.
    """
    _native.init_logging(json, verbose, quiet)

