"""PostgreSQL end to end through the blocking API: an ephemeral PostgreSQL 15
cluster per test (see /work/shared/TESTING.md), backed up to a local folder,
listed, verified, restored into a new database, and the two refusals
(restore onto an existing database without ``force``, a missing database).

Skipped with a message when the PostgreSQL 15 server binaries are missing;
failed instead with LIFEBOAT_REQUIRE_SERVERS=1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lifeboat
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")

#: The sample database: table -> exact row count.
SHOP_ROWS = {"public.customers": 1_500, "public.orders": 4_000}

SHOP_SQL = """
CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id),
    total_cents integer NOT NULL,
    note text
);
CREATE INDEX orders_customer ON orders(customer_id);
INSERT INTO customers
    SELECT i, 'customer ' || i, 'c' || i || '@example.com',
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour'
    FROM generate_series(1, 1500) AS i;
INSERT INTO orders
    SELECT i, 1 + i % 1500, (i * 37) % 100000, 'order ' || i || ': the quick brown fox'
    FROM generate_series(1, 4000) AS i;
ANALYZE;
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*args: str | os.PathLike[str]) -> None:
    """Run a server tool as the postgres user (initdb refuses root)."""
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *map(str, args)],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
    )


@dataclass
class Cluster:
    dir: Path
    port: int

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db: str, sql: str) -> str:
        """Run SQL with psql (as root: client tools do not mind) and return its unaligned output."""
        out = subprocess.run(
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", db, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
            input=sql,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip()

    def row_counts(self, db: str) -> dict[str, int]:
        return {t: int(self.psql(db, f"SELECT count(*) FROM {t};")) for t in SHOP_ROWS}


@pytest.fixture
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL 15 cluster on a free port, stopped and removed afterwards."""
    if not (PG_BIN / "initdb").exists():
        msg = f"{PG_BIN / 'initdb'} is missing: no PostgreSQL 15 server binaries (apt-get install postgresql-15)"
        if os.environ.get("LIFEBOAT_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{msg}, but LIFEBOAT_REQUIRE_SERVERS=1")
        pytest.skip(msg)

    # Under /tmp itself: every parent must be traversable by postgres and the
    # socket path must stay short.
    root = Path(tempfile.mkdtemp(prefix="lb-pytest-pg.", dir="/tmp"))
    data, sock, log = root / "data", root / "s", root / "log"
    started = False
    try:
        sock.mkdir()
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
        root.chmod(0o700)
        _as_postgres(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        conf = data / "postgresql.conf"
        base_conf = conf.read_text()
        # The port is free when picked; another process may take it before
        # the server binds, so try a few.
        for attempt in range(3):
            port = _free_port()
            conf.write_text(
                base_conf
                + "\nlisten_addresses = '127.0.0.1'\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{sock}'\n"
                "fsync = off\n"
            )
            try:
                _as_postgres(PG_BIN / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "30", "start")
                started = True
                break
            except subprocess.CalledProcessError as e:
                if attempt == 2:
                    server_log = log.read_text() if log.exists() else ""
                    raise RuntimeError(f"pg_ctl start failed:\n{e.stdout.decode()}\n{server_log}") from e
        cluster = Cluster(root, port)
        yield cluster
    finally:
        if started:
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data),
                 "-m", "immediate", "-w", "-t", "30", "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def shop(pg_cluster: Cluster) -> Cluster:
    """The cluster with a database `shop`: customers and orders, a few thousand rows."""
    pg_cluster.psql("postgres", "CREATE DATABASE shop;")
    pg_cluster.psql("shop", SHOP_SQL)
    assert pg_cluster.row_counts("shop") == SHOP_ROWS
    return pg_cluster


def test_postgres_backup_list_verify_restore_and_refusals(work: Path, shop: Cluster) -> None:
    sink = work / "backups"

    out = lifeboat.backup(shop.url("shop"), sink=str(sink), lock_dir=work)
    [entry] = out["backups"]
    manifest = entry["manifest"]
    backup_id = manifest["backup_id"]
    assert manifest["source"]["kind"] == "postgres", manifest["source"]
    verdicts = {v["verifier"]: v for v in manifest["verdicts"]}
    assert "pg-toc" in verdicts and verdicts["pg-toc"]["passed"] is True, manifest["verdicts"]
    assert all(v["passed"] for v in manifest["verdicts"]), manifest["verdicts"]
    tables = {t["name"]: t["rows"] for t in manifest["fingerprint"]["tables"]}
    assert tables == SHOP_ROWS

    listed = lifeboat.list(sink=str(sink))
    assert [m["backup_id"] for m in listed["complete"]] == [backup_id]
    assert listed["complete"][0]["source"]["kind"] == "postgres"
    assert listed["incomplete"] == []

    verified = lifeboat.verify(sink=str(sink), latest=True)
    assert verified["passed"] is True
    assert verified["backup_id"] == backup_id
    verdicts = {v["verifier"]: v for v in verified["verdicts"]}
    assert "pg-toc" in verdicts and verdicts["pg-toc"]["passed"] is True, verified["verdicts"]

    restored = lifeboat.restore(sink=str(sink), target=shop.url("shop_copy"), latest=True, lock_dir=work)
    assert restored["backup_id"] == backup_id
    assert restored["replaced"] is False
    assert {t["name"]: t["rows"] for t in restored["fingerprint"]["tables"]} == SHOP_ROWS
    assert shop.row_counts("shop_copy") == shop.row_counts("shop") == SHOP_ROWS

    # shop_copy exists now: without force the restore is refused and the
    # database is left alone.
    with pytest.raises(lifeboat.RestoreError) as refused:
        lifeboat.restore(sink=str(sink), target=shop.url("shop_copy"), latest=True, lock_dir=work)
    assert refused.value.code == "restore"
    assert refused.value.exit_code == 5
    assert shop.row_counts("shop_copy") == SHOP_ROWS

    with pytest.raises(lifeboat.SourceError) as missing:
        lifeboat.backup(shop.url("nosuchdb"), sink=str(work / "missing"), lock_dir=work)
    assert missing.value.code == "source"
    assert missing.value.exit_code == 2
    # Nothing new in the sink from the refused calls.
    assert [m["backup_id"] for m in lifeboat.list(sink=str(sink))["complete"]] == [backup_id]
