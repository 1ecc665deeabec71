#!/usr/bin/env python3
"""benches/binding_overhead_python.py: the same SQLite backup through the
Python package (`lifeboat.backup(...)`) and through the release `lifeboat`
binary (`target/release/lifeboat -q backup ...`), to see what the binding
costs. Target: at most 5% slower.

Usage (from the repository root, with the package built in release mode):

    (cd bindings/python && maturin develop --release)
    .venv/bin/python benches/binding_overhead_python.py [--size-mb 100] [--runs 5]

The database is generated once by `target/release/gen-sqlite` into
bench-data/ and reused. Each round runs both doors once, in alternating
order, each to a fresh local sink; one unmeasured warm-up round comes first
so both start with the source in the page cache. Before each run the
script waits (up to --quiet-wait s) for a second in which other processes
use less than --max-other % of the CPUs: the machine may be shared. Reported: the median wall
time per door (the binary's includes its process start, as a user would
see it) and the median `duration_ms` the pipeline itself reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RELEASE = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"


def ensure_release_tools(skip_build: bool) -> None:
    if skip_build and (RELEASE / "lifeboat").exists() and (RELEASE / "gen-sqlite").exists():
        return
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "backup-cli", "--bin", "lifeboat",
         "-p", "lifeboat-benches", "--bin", "gen-sqlite"],
        cwd=REPO, check=True,
    )


def cpu_busy(interval: float = 1.0) -> float:
    """Share of all CPUs busy during `interval` (this process is idle meanwhile)."""

    def snap() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    b0, t0 = snap()
    time.sleep(interval)
    b1, t1 = snap()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(max_busy: float, timeout: float) -> float:
    """Wait (up to `timeout` s) for a second in which other processes keep
    less than `max_busy` of the CPUs busy: the machine may be shared."""
    deadline = time.monotonic() + timeout
    busy = cpu_busy()
    while busy > max_busy and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


def binary_run(db: Path, sink: Path, lock_dir: Path) -> tuple[float, int]:
    started = time.perf_counter()
    r = subprocess.run(
        [str(RELEASE / "lifeboat"), "-q", "--no-progress", "backup", f"sqlite://{db}",
         "--to", f"file://{sink}", "--lock-dir", str(lock_dir), "--json"],
        capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit(f"lifeboat binary failed ({r.returncode}): {r.stderr}")
    [out] = json.loads(r.stdout)
    return wall, out["duration_ms"]


def binding_run(db: Path, sink: Path, lock_dir: Path) -> tuple[float, int]:
    import lifeboat

    started = time.perf_counter()
    out = lifeboat.backup(f"sqlite://{db}", to=f"file://{sink}", lock_dir=str(lock_dir))
    wall = time.perf_counter() - started
    return wall, out["backups"][0]["duration_ms"]


def main() -> int:
    ap = argparse.ArgumentParser(description="Python binding overhead vs the lifeboat binary")
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-build", action="store_true", help="use the binaries already in target/release")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON too")
    ap.add_argument("--max-other", type=float, default=15,
                    help="before each run, wait for a second with at most this %% of CPU used by others")
    ap.add_argument("--quiet-wait", type=float, default=300, help="how long to wait for that second")
    args = ap.parse_args()

    import lifeboat  # fail early if the package is not installed

    ensure_release_tools(args.skip_build)
    db = REPO / "bench-data" / f"app-{args.size_mb}mb-seed{args.seed}.db"
    if not db.exists():
        db.parent.mkdir(exist_ok=True)
        subprocess.run([str(RELEASE / "gen-sqlite"), str(db), "--size-mb", str(args.size_mb),
                        "--seed", str(args.seed)], check=True)
    size = db.stat().st_size

    work = Path(tempfile.mkdtemp(prefix="lifeboat-py-bench."))
    doors = {"binary": binary_run, "python": binding_run}
    results: dict[str, list[tuple[float, int]]] = {d: [] for d in doors}
    try:
        for round_no in range(args.runs + 1):  # round 0 is the warm-up
            order = list(doors) if round_no % 2 == 0 else list(reversed(doors))
            for door in order:
                sink = work / f"{door}-{round_no}"
                busy = wait_quiet(args.max_other / 100, args.quiet_wait)
                wall, pipeline_ms = doors[door](db, sink, work)
                shutil.rmtree(sink)
                if round_no > 0:
                    results[door].append((wall, pipeline_ms))
                print(f"round {round_no}{' (warm-up)' if round_no == 0 else ''} {door:<6}"
                      f" wall {wall:7.3f}s  pipeline {pipeline_ms / 1000:7.3f}s"
                      f"  (others busy {100 * busy:.0f}% before)", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(door: str, i: int) -> float:
        return statistics.median(r[i] for r in results[door])

    b_wall, p_wall = med("binary", 0), med("python", 0)
    b_pipe, p_pipe = med("binary", 1) / 1000, med("python", 1) / 1000
    summary = {
        "database": str(db.relative_to(REPO)),
        "database_mib": round(size / 2**20, 1),
        "runs": args.runs,
        "python": sys.version.split()[0],
        "lifeboat": lifeboat.__version__,
        "binary_wall_s": round(b_wall, 3),
        "python_wall_s": round(p_wall, 3),
        "wall_overhead_pct": round(100 * (p_wall - b_wall) / b_wall, 2),
        "binary_pipeline_s": round(b_pipe, 3),
        "python_pipeline_s": round(p_pipe, 3),
        "pipeline_overhead_pct": round(100 * (p_pipe - b_pipe) / b_pipe, 2),
    }
    print(f"\n{summary['database']} ({summary['database_mib']} MiB), median of {args.runs} runs, "
          f"CPython {summary['python']}")
    print("| door | wall (median) | pipeline duration_ms (median) |")
    print("|---|---:|---:|")
    print(f"| `target/release/lifeboat -q backup` | {b_wall:.3f} s | {b_pipe:.3f} s |")
    print(f"| `lifeboat.backup(...)` (Python) | {p_wall:.3f} s | {p_pipe:.3f} s |")
    print(f"| overhead | {summary['wall_overhead_pct']:+.1f}% | {summary['pipeline_overhead_pct']:+.1f}% |")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0 if summary["wall_overhead_pct"] <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
