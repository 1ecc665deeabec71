"""The asyncio API: the same operations as :mod:`lifeboat`, as coroutines.

The work runs on Lifeboat's own threads; the event loop is never blocked and
no executor thread is held. Cancelling the task (``task.cancel()``, a
timeout, Ctrl-C under :func:`asyncio.run`) cancels the operation: the task
waits until the native side has dropped the work and cleaned up (nothing
half-written stays visible), then ends with :class:`asyncio.CancelledError`.
``on_progress(phase, bytes, total)`` is called on the event loop.

>>> import asyncio, lifeboat.aio
>>> asyncio.run(lifeboat.aio.backup("sqlite:///srv/app.db", to="file:///b"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

from . import _native
from ._options import encode as _encode
from .types import (
    BackupResult,
    ListResult,
    ProgressCallback,
    PruneResult,
    RestoreResult,
    SourceStatus,
    VerifyResult,
)

__all__ = ["backup", "list", "verify", "restore", "prune", "status"]

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
    to: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> BackupResult:
    """:func:`lifeboat.backup` as a coroutine."""
    return await _run("backup", _encode("backup", {"source": source, "to": to}, options), on_progress)


async def list(from_: str | None = None, **options: Any) -> ListResult:  # noqa: A001 - the CLI verb
    """:func:`lifeboat.list` as a coroutine."""
    return await _run("list", _encode("list", {"from": from_}, options), None)


async def verify(
    from_: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> VerifyResult:
    """:func:`lifeboat.verify` as a coroutine."""
    return await _run("verify", _encode("verify", {"from": from_}, options), on_progress)


async def restore(
    from_: str | None = None,
    to: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> RestoreResult:
    """:func:`lifeboat.restore` as a coroutine."""
    return await _run("restore", _encode("restore", {"from": from_, "to": to}, options), on_progress)


async def prune(from_: str | None = None, **options: Any) -> PruneResult:
    """:func:`lifeboat.prune` as a coroutine."""
    return await _run("prune", _encode("prune", {"from": from_}, options), None)


async def status(from_: str | None = None, **options: Any) -> builtins.list[SourceStatus]:
    """:func:`lifeboat.status` as a coroutine."""
    return await _run("status", _encode("status", {"from": from_}, options), None)
