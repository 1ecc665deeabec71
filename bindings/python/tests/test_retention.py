"""prune and status, the two unattended-operation verbs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import lifeboat
import lifeboat.aio
import pytest


def three_backups(db: Path, sink: str) -> list[str]:
    return [lifeboat.backup(f"sqlite://{db}", sink=sink)["backups"][0]["manifest"]["backup_id"] for _ in range(3)]


def test_prune_keeps_the_newest_and_dry_run_deletes_nothing(work: Path, small_db: Path) -> None:
    sink = str(work / "b")
    ids = three_backups(small_db, sink)
    plan = lifeboat.prune(sink=sink, keep_last=1, dry_run=True)
    assert plan["dry_run"] is True and plan["deleted"] == []
    kept = [d["backup_id"] for d in plan["decisions"] if d["keep"]]
    assert kept == [ids[-1]], plan["decisions"]
    assert len(lifeboat.list(sink=sink)["complete"]) == 3

    done = lifeboat.prune(sink=sink, keep_last=1)
    assert len(done["deleted"]) == 2
    assert [m["backup_id"] for m in lifeboat.list(sink=sink)["complete"]] == [ids[-1]]


def test_prune_without_a_rule_is_a_usage_error(work: Path, small_db: Path) -> None:
    lifeboat.backup(f"sqlite://{small_db}", sink=str(work / "b"))
    with pytest.raises(lifeboat.UsageError, match="retention rule"):
        lifeboat.prune(sink=str(work / "b"))


def test_status_reports_health_as_a_result(work: Path, small_db: Path) -> None:
    sink = str(work / "b")
    lifeboat.backup(f"sqlite://{small_db}", sink=sink)
    [healthy] = lifeboat.status(sink=sink)
    assert healthy["source"] == "app" and healthy["backups"] == 1
    assert healthy["healthy"] is True, healthy["problems"]
    [small] = lifeboat.status(sink=sink, min_size="1 GiB")
    assert small["healthy"] is False and small["problems"]


def test_prune_and_status_through_asyncio(work: Path, small_db: Path) -> None:
    sink = str(work / "b")
    three_backups(small_db, sink)

    async def main() -> None:
        done = await lifeboat.aio.prune(sink=sink, keep_last=2)
        assert len(done["deleted"]) == 1
        [s] = await lifeboat.aio.status(sink=sink)
        assert s["backups"] == 2

    asyncio.run(main())


def test_mirror_copies_what_the_other_sink_lacks_and_doctor_checks_it(work: Path, small_db: Path) -> None:
    a, b = str(work / "a"), str(work / "b")
    ids = three_backups(small_db, a)
    dry = lifeboat.mirror(sink=a, target=b, dry_run=True)
    assert sorted(dry["backups"]) == sorted(ids) and lifeboat.list(sink=b)["complete"] == []
    done = lifeboat.mirror(a, b)
    assert sorted(done["backups"]) == sorted(ids) and done["bytes"] > 0
    assert [m["backup_id"] for m in lifeboat.list(sink=b)["complete"]] == ids
    again = asyncio.run(lifeboat.aio.mirror(a, b))
    assert again["backups"] == [] and again["backups_present"] == 3
    [report] = lifeboat.doctor(sink=b)
    assert report["problems"] == [], report
    assert {c["name"] for c in report["checks"]} >= {"credentials", "clock", "temp-space"}
