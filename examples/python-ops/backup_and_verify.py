#!/usr/bin/env python3
"""Nightly-job shape: back up a SQLite database, verify the latest backup,
print a short report. Exit codes follow the lifeboat CLI (2 source, 3 sink,
4 verification, ...), so a scheduler can alert on them.

    python examples/python-ops/backup_and_verify.py [DB] [--to SINK]

DB defaults to ./ops-demo.db and is created with sample data if missing;
SINK defaults to ./ops-backups next to it (any lifeboat sink URL works:
file://, s3://, gs://, spaces://).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

import lifeboat


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def create_sample(path: Path, rows: int = 5_000) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, cents INTEGER)")
        conn.executemany(
            "INSERT INTO orders (customer, cents) VALUES (?, ?)",
            ((f"customer {i % 97}", i * 31 % 10_000) for i in range(rows)),
        )
    conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", nargs="?", default="ops-demo.db", type=Path)
    parser.add_argument("--to", help="sink URL (default: ./ops-backups next to the database)")
    args = parser.parse_args(argv)

    db: Path = args.db.resolve()
    sink = args.to or f"file://{db.parent / 'ops-backups'}"
    if not db.exists():
        create_sample(db)
        print(f"created sample database {db}")

    def progress(phase: str, done: int, total: int | None) -> None:
        if total:
            print(f"  {phase:<8} {100 * done // total:3d}%", file=sys.stderr)

    try:
        out = lifeboat.backup(f"sqlite://{db}", sink=sink, on_progress=progress)
        [backup] = out["backups"]
        check = lifeboat.verify(sink=sink, latest=True, source=backup["manifest"]["source"]["name"])
    except lifeboat.LifeboatError as e:
        print(f"FAILED ({type(e).__name__}, exit {e.exit_code}): {e}", file=sys.stderr)
        return e.exit_code

    m = backup["manifest"]
    art = m["artifact"]
    print(f"backup   {m['backup_id']}")
    print(f"location {backup['location']}")
    print(f"sizes    {human(art['raw_size'])} raw -> {human(art['stored_size'])} stored")
    print(f"duration backup {backup['duration_ms']} ms, verify {check['duration_ms']} ms")
    for v in check["verdicts"]:
        print(f"  {'ok  ' if v['passed'] else 'FAIL'} {v['verifier']}: {v['detail']}")
    print("verified" if check["passed"] else "NOT VERIFIED")
    return 0 if check["passed"] else 4


if __name__ == "__main__":
    sys.exit(main())
