"""`python -m lifeboat` is the command line: same exit codes, same stdout as
the Rust binary (one CLI, several doors)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_db


def rust_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    exe = target / "debug" / "lifeboat"
    if not exe.exists():
        cargo = shutil.which("cargo")
        if cargo is None:
            pytest.skip("no target/debug/lifeboat and no cargo to build it")
        subprocess.run(
            [cargo, "build", "--quiet", "-p", "backup-cli", "--bin", "lifeboat"],
            cwd=REPO,
            check=True,
        )
    return exe


def clean_env(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_") or k.startswith("LIFEBOAT_TEST_")}
    env["LIFEBOAT_LOCK_DIR"] = str(cwd)
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=clean_env(cwd), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )


def test_python_m_lifeboat_help_exits_0(tmp_path: Path) -> None:
    r = run([sys.executable, "-m", "lifeboat", "--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Exit codes" in r.stdout and "backup" in r.stdout


def test_python_m_lifeboat_usage_error_exits_64(tmp_path: Path) -> None:
    r = run([sys.executable, "-m", "lifeboat", "frobnicate"], tmp_path)
    assert r.returncode == 64
    assert "frobnicate" in r.stderr


def normalise(text: str, root: Path) -> str:
    text = text.replace(str(root), "<DIR>")
    text = re.sub(r"\d{8}T\d{6}Z-[0-9a-z]+", "<ID>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?", "<TIME>", text)
    text = re.sub(r"\b\d+(\.\d+)?\s?(ms|s)\b", "<DURATION>", text)
    return text


#: The same session through each door, in a fresh directory each time.
SESSION: list[list[str]] = [
    ["--help"],
    ["backup", "--help"],
    ["--version"],
    ["backup", "sqlite:app.db", "--to", "b"],
    ["list", "--from", "b"],
    ["verify", "--from", "b", "--latest"],
    ["restore", "--from", "b", "--latest", "--to", "sqlite:restored.db"],
    ["restore", "--from", "b", "--latest", "--to", "sqlite:restored.db"],  # exists: 5
    ["backup", "sqlite:missing.db", "--to", "b"],  # 2
    ["backup", "mysql://db/app", "--to", "b"],  # 64
    ["--config", "bad.toml", "backup"],  # 78
    ["list", "--from", "b", "--source", "nope"],
    ["frobnicate"],  # 64
]


def play(door: list[str], root: Path) -> list[tuple[list[str], int, str]]:
    root.mkdir()
    make_db(root / "app.db", 1_500)
    (root / "bad.toml").write_text('[profiles.prod]\nsource = "sqlite:app.db"\nretain = 7\n')
    transcript = []
    for args in SESSION:
        r = run([*door, *args], root)
        transcript.append((args, r.returncode, normalise(r.stdout, root)))
    return transcript


def test_one_cli_through_the_rust_binary_and_python_m_lifeboat(tmp_path: Path) -> None:
    rust = play([str(rust_binary())], tmp_path / "rust")
    python = play([sys.executable, "-m", "lifeboat"], tmp_path / "python")
    codes = [code for _, code, _ in rust]
    assert codes == [0, 0, 0, 0, 0, 0, 0, 5, 2, 64, 78, 0, 64], codes
    for (args, rust_code, rust_out), (_, py_code, py_out) in zip(rust, python):
        assert (py_code, py_out) == (rust_code, rust_out), f"lifeboat {' '.join(args)}"


@pytest.mark.slow
def test_python_m_lifeboat_interrupted_exits_130_and_leaves_nothing(tmp_path: Path, big_db: Path) -> None:
    import signal
    import time

    from conftest import all_files

    child = subprocess.Popen(
        [sys.executable, "-m", "lifeboat", "backup", f"sqlite://{big_db}", "--to", "b",
         "--level", "19", "--threads", "1"],
        cwd=tmp_path, env=clean_env(tmp_path), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1.5)
        assert child.poll() is None, "backup finished before the interrupt"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert "Traceback" not in err, err
    assert all_files(tmp_path / "b") == []
