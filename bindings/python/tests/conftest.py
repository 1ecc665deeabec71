"""Shared fixtures: sample SQLite databases (stdlib sqlite3), an isolated
working directory per test, and the moto S3 server when scripts/test runs one."""

from __future__ import annotations

import os
import sqlite3
import uuid
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def make_db(path: Path, rows: int) -> Path:
    """A WAL-mode database with two tables: `items` (rows) and `notes` (rows // 10)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=wal")
        conn.executescript(
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " price_cents INTEGER, tags TEXT, created_at TEXT);"
            "CREATE INDEX IF NOT EXISTS items_name ON items(name);"
            "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT);"
        )
        with conn:
            conn.executemany(
                "INSERT INTO items (name, price_cents, tags, created_at) VALUES (?, ?, ?, ?)",
                (
                    (
                        f"item number {i}",
                        i * 37 % 10_000,
                        f'{{"colour":"c{i % 7}","size":{i % 13}}}',
                        f"2026-11-{1 + i % 28:02}T03:00:00Z",
                    )
                    for i in range(rows)
                ),
            )
            conn.executemany(
                "INSERT INTO notes (body) VALUES (?)",
                ((f"note {i}: the quick brown fox jumps over the lazy dog",) for i in range(rows // 10)),
            )
    finally:
        conn.close()
    return path


def count_rows(path: Path, table: str = "items") -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def all_files(root: Path) -> list[Path]:
    """Every regular file below root, hidden ones included."""
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory: cwd, lock dir, no config file or profile from outside."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIFEBOAT_LOCK_DIR", str(tmp_path))
    for var in ("LIFEBOAT_CONFIG", "LIFEBOAT_PROFILE", "LIFEBOAT_LOG_FORMAT", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def small_db(work: Path) -> Path:
    return make_db(work / "app.db", 2_000)


@pytest.fixture(scope="session")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Big enough that a level-19, one-thread backup takes several seconds:
    room to cancel it mid-flight. Only ever read by the tests."""
    return make_db(tmp_path_factory.mktemp("big") / "big.db", 400_000)


#: Options that make a backup slow (zstd level 19 on one thread).
SLOW = {"level": 19, "threads": 1}


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto endpoint from scripts/test, exported as AWS_ENDPOINT_URL.

    Skips outside scripts/test; fails instead with LIFEBOAT_REQUIRE_SERVERS=1."""
    endpoint = os.environ.get("LIFEBOAT_TEST_S3_ENDPOINT", "").rstrip("/")
    if not endpoint:
        if os.environ.get("LIFEBOAT_REQUIRE_SERVERS") == "1":
            pytest.fail("LIFEBOAT_TEST_S3_ENDPOINT is not set but LIFEBOAT_REQUIRE_SERVERS=1")
        pytest.skip("LIFEBOAT_TEST_S3_ENDPOINT is not set; run scripts/test to start moto")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for var, default in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ):
        if not os.environ.get(var):
            monkeypatch.setenv(var, default)
    return endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket on moto."""
    name = f"py-{uuid.uuid4().hex[:12]}"
    req = urllib.request.Request(f"{s3_endpoint}/{name}", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200, resp.status
    return name


def s3_keys(endpoint: str, bucket: str) -> list[str]:
    """Every key in the bucket (ListObjectsV2, first page is enough here)."""
    import re

    with urllib.request.urlopen(f"{endpoint}/{bucket}?list-type=2", timeout=10) as resp:
        body = resp.read().decode()
    return re.findall(r"<Key>([^<]+)</Key>", body)


def s3_pending_uploads(endpoint: str, bucket: str) -> list[str]:
    """Multipart uploads started and neither completed nor aborted."""
    import re

    with urllib.request.urlopen(f"{endpoint}/{bucket}?uploads", timeout=10) as resp:
        body = resp.read().decode()
    return re.findall(r"<UploadId>([^<]+)</UploadId>", body)
