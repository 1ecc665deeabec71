"""The asyncio API: the same operations as :mod:`lifeboat`, as coroutines.

The work runs on Lifeboat's own threads; the event loop is never blocked and
no executor thread is held. Cancelling the task (``task.cancel()``, a
timeout, Ctrl-C under :func:`asyncio.run`) cancels the operation: the task
waits until the native side has dropped the work and cleaned up (nothing
half-written stays visible), then ends with :class:`asyncio.CancelledError`.
``on_progress(phase, bytes, total)`` is called on the event loop.

>>> import asyncio, lifeboat.aio
>>> asyncio.run(lifeboat.aio.backup("sqlite:///srv/app.db", "file:///b"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import builtins
import os
from typing import Any, Sequence

from . import _native
from ._options import encode as _encode
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

__all__ = [
    "backup",
    "list",
    "verify",
    "drill",
    "restore",
    "prune",
    "mirror",
    "doctor",
    "status",
    "wal_push",
    "wal_fetch",
    "wal_setup",
]

#: How often progress is handed to ``on_progress`` while an operation runs.
PROGRESS_INTERVAL = 0.1


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _run(op: str, payload: str, on_progress: ProgressCallback | None) -> Any:
    loop = asyncio.get_running_loop()
    operation = _native.start(op, payload, on_progress is not None)
    finished: asyncio.Future[None] = loop.create_future()

    def wake() -> None:  # called on a Lifeboat worker thread, or right here if already done
        try:
            loop.call_soon_threadsafe(_resolve, finished)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    operation.add_done_callback(wake)
    try:
        if on_progress is None:
            # shield: a cancelled task must not cancel `finished`, which the
            # cleanup below still waits on.
            await asyncio.shield(finished)
        else:
            while not finished.done():
                await asyncio.wait((finished,), timeout=PROGRESS_INTERVAL)
                for event in operation.take_progress():
                    on_progress(*event)
    except BaseException:
        # Cancelled, or on_progress raised: stop the work and wait for the
        # native cleanup before the exception leaves this task.
        operation.cancel()
        await asyncio.shield(finished)
        raise
    return operation.result()


async def backup(
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
    """:func:`lifeboat.backup` as a coroutine."""
    return await _run("backup", _encode("backup", locals()), on_progress)


async def list(
    sink: str | None = None,
    *,
    source: str | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> ListResult:  # noqa: A001 - the CLI verb
    """:func:`lifeboat.list` as a coroutine."""
    return await _run("list", _encode("list", locals()), None)


async def verify(
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
    """:func:`lifeboat.verify` as a coroutine."""
    return await _run("verify", _encode("verify", locals()), on_progress)


async def drill(
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
    """:func:`lifeboat.drill` as a coroutine."""
    return await _run("drill", _encode("drill", locals()), on_progress)


async def restore(
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
    """:func:`lifeboat.restore` as a coroutine."""
    return await _run("restore", _encode("restore", locals()), on_progress)


async def prune(
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
    """:func:`lifeboat.prune` as a coroutine."""
    return await _run("prune", _encode("prune", locals()), None)


async def mirror(
    sink: str | None = None,
    target: str | None = None,
    *,
    source: str | None = None,
    dry_run: bool = False,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> MirrorResult:
    """:func:`lifeboat.mirror` as a coroutine."""
    return await _run("mirror", _encode("mirror", locals()), None)


async def doctor(
    sink: str | None = None,
    *,
    source: str | None = None,
    identity: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> builtins.list[DoctorReport]:
    """:func:`lifeboat.doctor` as a coroutine."""
    return await _run("doctor", _encode("doctor", locals()), None)


async def status(
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
    """:func:`lifeboat.status` as a coroutine."""
    return await _run("status", _encode("status", locals()), None)


async def wal_push(
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
    """:func:`lifeboat.wal_push` as a coroutine."""
    return await _run("wal_push", _encode("wal_push", locals()), None)


async def wal_fetch(
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
    """:func:`lifeboat.wal_fetch` as a coroutine."""
    return await _run("wal_fetch", _encode("wal_fetch", locals()), None)


async def wal_setup(
    source: str | None = None,
    sink: str | None = None,
    *,
    name: str | None = None,
    check: bool = False,
    timeout: int | str | None = None,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> dict:
    """:func:`lifeboat.wal_setup` as a coroutine."""
    return await _run("wal_setup", _encode("wal_setup", locals()), None)
