"""backup → list → verify → restore through the blocking API, locally and on S3."""

from __future__ import annotations

import threading
from pathlib import Path

import lifeboat
import pytest

from conftest import SLOW, all_files, count_rows, make_db, s3_keys, s3_pending_uploads


def test_backup_list_verify_restore_round_trip_to_a_local_folder(work: Path, small_db: Path) -> None:
    sink = f"file://{work / 'backups'}"
    out = lifeboat.backup(f"sqlite://{small_db}", sink=sink, min_size="1 KiB")
    [entry] = out["backups"]
    manifest = entry["manifest"]
    backup_id = manifest["backup_id"]
    assert entry["location"].startswith(sink)
    assert manifest["artifact"]["raw_size"] > manifest["artifact"]["stored_size"] > 0
    assert all(v["passed"] for v in manifest["verdicts"]), manifest["verdicts"]
    assert isinstance(entry["duration_ms"], int)

    listed = lifeboat.list(sink=sink)
    assert [m["backup_id"] for m in listed["complete"]] == [backup_id]
    assert listed["incomplete"] == []

    verified = lifeboat.verify(sink=sink, id=backup_id)
    assert verified["passed"] is True
    assert verified["backup_id"] == backup_id
    assert {v["verifier"] for v in verified["verdicts"]} >= {"checksum"}

    target = work / "restored.db"
    restored = lifeboat.restore(sink=sink, target=f"sqlite://{target}", latest=True)
    assert restored["backup_id"] == backup_id
    assert restored["replaced"] is False
    rows = {t["name"]: t["rows"] for t in restored["fingerprint"]["tables"]}
    assert rows["items"] == 2_000 and rows["notes"] == 200
    assert count_rows(target) == 2_000


def test_options_accept_paths_and_the_sink_positionally(work: Path, small_db: Path) -> None:
    sink = work / "b"
    lifeboat.backup(f"sqlite://{small_db}", sink, lock_dir=work, temp_dir=work)
    assert lifeboat.list(sink)["complete"]
    assert lifeboat.list(sink=str(sink), source="app")["complete"]
    assert lifeboat.list(sink=str(sink), source="other")["complete"] == []


def test_on_progress_reports_phases_on_the_calling_thread(work: Path, small_db: Path) -> None:
    events: list[tuple[str, int, int | None, int]] = []
    lifeboat.backup(
        f"sqlite://{small_db}",
        sink=str(work / "b"),
        on_progress=lambda phase, done, total: events.append((phase, done, total, threading.get_ident())),
    )
    assert events, "no progress reported"
    assert {e[3] for e in events} == {threading.get_ident()}
    phases = [e[0] for e in events]
    assert "upload" in phases, phases
    last_upload = [e for e in events if e[0] == "upload"][-1]
    assert last_upload[1] > 0, events

    events.clear()
    lifeboat.restore(sink=str(work / "b"), target=f"sqlite://{work / 'r.db'}", latest=True,
                     on_progress=lambda *e: events.append(e))
    assert "download" in [e[0] for e in events], events


@pytest.mark.slow
def test_an_exception_in_on_progress_cancels_the_backup_and_propagates(work: Path, big_db: Path) -> None:
    class Stop(Exception):
        pass

    def stop(phase: str, done: int, total: int | None) -> None:
        raise Stop(phase)

    sink = work / "b"
    with pytest.raises(Stop):
        lifeboat.backup(f"sqlite://{big_db}", sink=str(sink), on_progress=stop, **SLOW)
    assert all_files(sink) == []
    assert lifeboat.list(sink=str(sink))["complete"] == []


def test_several_databases_back_up_from_several_threads(work: Path) -> None:
    dbs = [make_db(work / f"db{i}.db", 500 + i) for i in range(4)]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            out = lifeboat.backup(f"sqlite://{dbs[i]}", sink=str(work / "b"))
            results[i] = out["backups"][0]["manifest"]["backup_id"]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    listed = lifeboat.list(sink=str(work / "b"))
    assert sorted(m["backup_id"] for m in listed["complete"]) == sorted(results.values())


@pytest.mark.s3
def test_round_trip_on_s3_lands_data_and_manifest_only(
    work: Path, small_db: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    sink = f"s3://{s3_bucket}/prod"
    out = lifeboat.backup(f"sqlite://{small_db}", sink=sink)
    backup_id = out["backups"][0]["manifest"]["backup_id"]
    keys = s3_keys(s3_endpoint, s3_bucket)
    assert len(keys) == 3, keys  # data, manifest, and the source's restore.md
    assert any(k.endswith("/restore.md") for k in keys)
    assert any(k.endswith("/manifest.json") for k in keys) and any(k.endswith(".zst") for k in keys)

    assert [m["backup_id"] for m in lifeboat.list(sink=sink)["complete"]] == [backup_id]
    assert lifeboat.verify(sink=sink, latest=True)["passed"] is True
    target = work / "from-s3.db"
    lifeboat.restore(sink=sink, target=f"sqlite://{target}", id=backup_id)
    assert count_rows(target) == 2_000


@pytest.mark.s3
def test_missing_bucket_is_a_sink_error(work: Path, small_db: Path, s3_endpoint: str) -> None:
    with pytest.raises(lifeboat.SinkError) as e:
        lifeboat.backup(f"sqlite://{small_db}", sink="s3://lifeboat-no-such-bucket-py/x")
    assert e.value.exit_code == 3 and e.value.code == "sink"


@pytest.mark.s3
@pytest.mark.slow
def test_cancelled_s3_backup_leaves_no_object_and_no_pending_upload(
    work: Path, big_db: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    import asyncio

    async def main() -> None:
        task = asyncio.create_task(
            lifeboat.aio.backup(f"sqlite://{big_db}", sink=f"s3://{s3_bucket}/p", **SLOW)
        )
        await asyncio.sleep(2.0)
        assert not task.done(), "backup finished before the cancel"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert s3_keys(s3_endpoint, s3_bucket) == []
    assert s3_pending_uploads(s3_endpoint, s3_bucket) == []


def test_wal_push_and_fetch_a_history_file(work: Path) -> None:
    """The archive_command/restore_command pair from Python: a round trip,
    a re-push is ``already_archived``, a missing file is NotFoundError."""
    sink = (work / "archive").as_uri()
    hist = work / "00000002.history"
    hist.write_bytes(b"1\t0/3000000\tno recovery target specified\n")
    pushed = lifeboat.wal_push(hist, sink, name="app")
    assert pushed["key"] == "app/wal/00000002/00000002.history.zst"
    assert lifeboat.wal_push(hist, sink, name="app")["already_archived"] is True
    out = work / "RECOVERYHISTORY"
    fetched = lifeboat.wal_fetch("00000002.history", out, sink, name="app")
    assert fetched["sha256"] == pushed["sha256"]
    assert out.read_bytes() == hist.read_bytes()
    with pytest.raises(lifeboat.NotFoundError):
        lifeboat.wal_fetch("00000003.history", out, sink, name="app")
    with pytest.raises(lifeboat.UsageError, match="not the name of a WAL file"):
        lifeboat.wal_push(work / "notes.txt", sink, name="app")
