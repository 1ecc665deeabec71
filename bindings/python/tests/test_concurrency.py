"""The GIL is released, asyncio works and cancels, Ctrl-C stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import lifeboat
import lifeboat.aio
import pytest

from conftest import SLOW, all_files, count_rows, make_db


def test_the_gil_is_released_while_a_backup_runs(work: Path) -> None:
    db = make_db(work / "mid.db", 30_000)
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(0.05)
        before = ticks
        started = time.monotonic()
        lifeboat.backup(f"sqlite://{db}", sink=str(work / "b"), **SLOW)
        elapsed = time.monotonic() - started
        during = ticks - before
    finally:
        stop.set()
        counter.join()
    assert elapsed > 0.2, f"backup too quick ({elapsed:.2f}s) to show anything"
    # A held GIL would leave the counter at a handful of ticks (one per
    # 50 ms poll at most); released, it runs freely for the whole backup.
    assert during > 10_000 * elapsed, f"{during} ticks in {elapsed:.2f}s"


def test_asyncio_round_trip(work: Path, small_db: Path) -> None:
    sink = str(work / "b")
    events: list[tuple[str, int, int | None]] = []

    async def main() -> None:
        out = await lifeboat.aio.backup(f"sqlite://{small_db}", sink=sink, on_progress=lambda *e: events.append(e))
        backup_id = out["backups"][0]["manifest"]["backup_id"]
        listed, verified = await asyncio.gather(
            lifeboat.aio.list(sink=sink), lifeboat.aio.verify(sink=sink, id=backup_id)
        )
        assert [m["backup_id"] for m in listed["complete"]] == [backup_id]
        assert verified["passed"] is True
        restored = await lifeboat.aio.restore(sink=sink, target=f"sqlite://{work / 'r.db'}", latest=True)
        assert restored["backup_id"] == backup_id

    asyncio.run(main())
    assert count_rows(work / "r.db") == 2_000
    assert "upload" in [e[0] for e in events]


def test_asyncio_errors_are_the_same_classes(work: Path) -> None:
    async def main() -> None:
        with pytest.raises(lifeboat.SourceError) as e:
            await lifeboat.aio.backup(f"sqlite://{work / 'missing.db'}", sink="b")
        assert e.value.exit_code == 2
        with pytest.raises(TypeError):
            await lifeboat.aio.list(sink="b", nonsense=True)  # type: ignore[call-arg]
        with pytest.raises(lifeboat.UsageError):
            await lifeboat.aio.backup("sqlite:a.db", sink="b", level="high")  # type: ignore[arg-type]

    asyncio.run(main())


@pytest.mark.slow
def test_cancelling_the_task_cancels_the_backup_and_leaves_nothing_visible(work: Path, big_db: Path) -> None:
    sink = work / "b"
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main() -> float:
        beat = asyncio.create_task(ticker())
        task = asyncio.create_task(lifeboat.aio.backup(f"sqlite://{big_db}", sink=str(sink), **SLOW))
        await asyncio.sleep(1.5)
        assert not task.done(), "backup finished before the cancel; make the database bigger"
        assert ticks > 50, "the event loop was blocked during the backup"
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        beat.cancel()
        return time.monotonic() - cancelled_at

    took = asyncio.run(main())
    assert took < 5, f"cancellation took {took:.1f}s"
    assert all_files(sink) == [], all_files(sink)
    assert lifeboat.list(sink=str(sink))["complete"] == []


@pytest.mark.slow
def test_a_timeout_around_an_aio_backup_cancels_it(work: Path, big_db: Path) -> None:
    sink = work / "b"

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(lifeboat.aio.backup(f"sqlite://{big_db}", sink=str(sink), **SLOW), 0.5)

    asyncio.run(main())
    assert all_files(sink) == []


@pytest.mark.slow
def test_ctrl_c_stops_a_long_backup_cleanly(work: Path, big_db: Path) -> None:
    sink = work / "b"
    script = textwrap.dedent(
        f"""
        import signal, sys, lifeboat
        # As in a terminal: a test runner started in the background of a
        # non-interactive shell ignores SIGINT, and its children inherit
        # that, so Python would never raise KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("started", flush=True)
        lifeboat.backup({f"sqlite://{big_db}"!r}, sink={str(sink)!r}, level=19, threads=1)
        print("finished", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LIFEBOAT_LOCK_DIR": str(work)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        time.sleep(1.5)
        assert child.poll() is None, "backup finished before the interrupt; make it bigger"
        interrupted_at = time.monotonic()
        child.send_signal(signal.SIGINT)
        # A guard against a hang, not a timing: a backup that ignored the
        # interrupt would finish and print "finished" within it.
        out, err = child.communicate(timeout=90)
        took = time.monotonic() - interrupted_at
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    assert "KeyboardInterrupt" in err, err
    assert "finished" not in out
    print(f"stopped {took:.1f}s after SIGINT")
    assert all_files(sink) == [], all_files(sink)
    assert lifeboat.list(sink=str(sink))["complete"] == []


def test_a_forked_child_gets_its_own_runtime(work: Path, small_db: Path) -> None:
    # Start the parent's runtime first, then fork and use it in the child.
    lifeboat.list(sink=str(work / "b"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            out = lifeboat.backup(f"sqlite://{small_db}", sink=str(work / "b"))
            code = 0 if out["backups"] else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung using lifeboat")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(lifeboat.list(sink=str(work / "b"))["complete"]) == 1
