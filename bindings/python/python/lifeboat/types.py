"""Shapes of the dicts the operations return (the CLI's ``--json`` output)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, TypedDict

__all__ = [
    "ProgressCallback",
    "Manifest",
    "Verdict",
    "BackupOutput",
    "BackupResult",
    "ListResult",
    "VerifyResult",
    "RestoreResult",
    "GlobalsReport",
    "PruneResult",
    "MirrorResult",
    "DoctorReport",
    "SourceStatus",
]

#: ``on_progress(phase, bytes, total)``: ``phase`` is "snapshot", "upload",
#: "verify" or "download"; ``bytes`` is how much of the phase is done;
#: ``total`` is the phase's size when known, else None.
ProgressCallback = Callable[[str, int, Optional[int]], object]

#: A backup's manifest, as stored next to it (``manifest.json``): keys
#: ``backup_id``, ``source``, ``started_at``, ``finished_at``, ``host``,
#: ``tool``, ``artifact`` (``key``, ``raw_size``, ``stored_size``, ``sha256``,
#: ...), ``fingerprint``, ``verdicts``, ``attachments``.
Manifest = Dict[str, Any]


class Verdict(TypedDict):
    """One verifier's judgement of a backup."""

    verifier: str
    passed: bool
    detail: str
    duration_ms: int
    checked_at: str


class _BackupOutputBase(TypedDict):
    manifest: Manifest
    location: str
    duration_ms: int
    drill: Optional[Verdict]


class BackupOutput(_BackupOutputBase, total=False):
    """One database's backup.

    ``drill``: the restore drill's verdict when one ran before the commit
    (PostgreSQL backups drill by default where a drill can run; pass
    ``no_drill=True`` to skip it). A failed drill raises
    :class:`VerificationError`; the backup is committed but not verified.
    ``drill_error``: why a drill could not run (the backup is committed as
    checked).
    """

    drill_error: str


class BackupResult(TypedDict):
    """What :func:`lifeboat.backup` returns: one entry per database."""

    backups: List[BackupOutput]


class ListResult(TypedDict):
    """What :func:`lifeboat.list` returns.

    ``complete``: the manifests, oldest first, each with ``assurance``:
    ``"drilled"`` (restored in a drill), ``"checked"`` or ``"failed"``.
    ``unreadable``: backups whose manifest exists but cannot be read (kept,
    never pruned, never restored from). ``incomplete``: backups with no
    manifest (interrupted runs). ``leftovers``: ``{"uploads": [{"key", "id",
    "started", "stale"}], "local": [{"path", "bytes"}]}``, what interrupted
    runs left in the sink and in this host's temp dir.
    """

    location: str
    complete: List[Dict[str, Any]]
    unreadable: List[Dict[str, Any]]
    incomplete: List[Dict[str, Any]]
    leftovers: Dict[str, List[Dict[str, Any]]]


class VerifyResult(TypedDict):
    """What :func:`lifeboat.verify` returns."""

    backup_id: str
    source: str
    location: str
    passed: bool
    verdicts: List[Verdict]
    duration_ms: int


class GlobalsReport(TypedDict):
    """What applying a backup's stored roles (``globals=True`` on restore) did.

    ``roles_skipped``: roles that already existed, left exactly as they were
    (attributes, passwords, memberships).
    """

    roles_created: List[str]
    roles_skipped: List[str]
    tablespaces_created: List[str]
    tablespaces_skipped: List[str]
    not_applied: List[str]
    errors: List[str]
    without_passwords: bool


class _RestoreResultBase(TypedDict):
    backup_id: str
    target: str
    bytes: int
    replaced: bool
    fingerprint: Dict[str, Any]
    duration_ms: int


class RestoreResult(_RestoreResultBase, total=False):
    """What :func:`lifeboat.restore` returns.

    PostgreSQL adds ``analyzed`` and ``analyze_ms`` (the restored database
    is analyzed before it takes the name, unless ``no_analyze=True``),
    ``leftovers_cleaned`` (databases killed runs had left, removed or
    renamed back), ``partial``, ``errors`` and ``tables_differing`` (with
    ``partial=True``),
    ``globals`` (with ``globals=True``) and ``settings_skipped`` (with
    ``no_owner=True``: database settings for roles the server lacks).
    """

    analyzed: bool
    analyze_ms: int
    leftovers_cleaned: List[str]
    partial: bool
    errors: List[str]
    tables_differing: List[str]
    globals: GlobalsReport
    settings_skipped: List[str]


class DoctorReport(TypedDict):
    """What :func:`lifeboat.doctor` found for one sink."""

    sink: str
    checks: List[Dict[str, Any]]
    problems: List[str]


class MirrorResult(TypedDict):
    """What :func:`lifeboat.mirror` copied (or, dry, would copy)."""

    to: str
    dry_run: bool
    backups: List[str]
    backups_present: int
    wal_files: int
    records: int
    bytes: int
    failures: List[str]
    duration_ms: int


class PruneResult(TypedDict):
    """What :func:`lifeboat.prune` returns.

    ``decisions``: one per backup, ``{"backup_id", "dir", "started_at", "keep",
    "reasons", "incomplete", "unreadable"}``; ``deleted``: the backups removed
    (none with ``dry_run=True``); ``leftovers``: what interrupted writes left,
    ``leftovers_removed``: how many of the stale ones went.
    """

    decisions: List[Dict[str, Any]]
    deleted: List[Any]
    dry_run: bool
    leftovers: List[Dict[str, Any]]
    leftovers_removed: int


class SourceStatus(TypedDict):
    """One source's health, as :func:`lifeboat.status` returns it (a list of these)."""

    source: str
    backups: int
    incomplete: int
    unreadable: int
    newest: Optional[Dict[str, Any]]
    last_verification: Optional[Dict[str, Any]]
    last_drill: Optional[Dict[str, Any]]
    problems: List[str]
    healthy: bool


class WalPushResult(TypedDict):
    """What :func:`lifeboat.wal_push` returns."""

    name: str
    key: str
    size: int
    stored_size: int
    sha256: str
    already_archived: bool
    duration_ms: int


class WalFetchResult(TypedDict):
    """What :func:`lifeboat.wal_fetch` returns."""

    name: str
    path: str
    size: int
    sha256: str
    duration_ms: int
