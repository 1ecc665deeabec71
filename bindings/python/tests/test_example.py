"""examples/python-ops runs and reports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "examples" / "python-ops" / "backup_and_verify.py"


def test_python_ops_example_backs_up_verifies_and_reports(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "demo.db")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "LIFEBOAT_LOCK_DIR": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    assert "created sample database" in r.stdout
    assert re.search(r"^backup\s+\d{8}T\d{6}Z-\w+", r.stdout, re.M), r.stdout
    assert re.search(r"sizes\s+[\d.]+ \w+ raw -> [\d.]+ \w+ stored", r.stdout), r.stdout
    assert "ok   checksum" in r.stdout and r.stdout.rstrip().endswith("verified")
    assert (tmp_path / "ops-backups").is_dir()


def test_python_ops_example_exits_with_the_cli_code_on_failure(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "demo.db"), "--to", "ftp://nowhere/x"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "LIFEBOAT_LOCK_DIR": str(tmp_path)},
    )
    assert r.returncode == 64, r.stderr
    assert "UsageError" in r.stderr
