"""Each failure raises its own class, with the CLI's exit code."""

from __future__ import annotations

import fcntl
from pathlib import Path

import lifeboat
import pytest
from lifeboat import errors

from conftest import all_files, make_db


def test_the_classes_form_one_hierarchy() -> None:
    for cls in (
        lifeboat.LockError,
        lifeboat.SourceError,
        lifeboat.SinkError,
        lifeboat.VerificationError,
        lifeboat.RestoreError,
        lifeboat.HealthError,
        lifeboat.ConfigError,
        lifeboat.CancelledError,
    ):
        assert issubclass(cls, lifeboat.LifeboatError)
        assert cls is getattr(errors, cls.__name__)
    assert issubclass(lifeboat.UsageError, lifeboat.ConfigError)
    assert issubclass(lifeboat.LifeboatError, Exception)


def test_missing_database_is_a_source_error_exit_2_and_creates_nothing(work: Path) -> None:
    with pytest.raises(lifeboat.SourceError) as e:
        lifeboat.backup(f"sqlite://{work / 'missing.db'}", sink=str(work / "b"))
    err = e.value
    assert (err.code, err.exit_code, err.retryable) == ("source", 2, False)
    assert "missing.db" in str(err) and "\n" not in str(err)
    assert not (work / "missing.db").exists()
    assert all_files(work / "b") == []


@pytest.mark.parametrize(
    ("source", "to", "needle"),
    [
        ("mysql://db/app", "b", "unknown source scheme"),
        ("sqlite:app.db", "ftp://host/x", "unknown sink scheme"),
    ],
)
def test_unknown_schemes_are_usage_errors_exit_64(work: Path, source: str, to: str, needle: str) -> None:
    make_db(work / "app.db", 10)
    with pytest.raises(lifeboat.ConfigError) as e:
        lifeboat.backup(source, sink=to)
    assert type(e.value) is lifeboat.UsageError
    assert (e.value.code, e.value.exit_code) == ("usage", 64)
    assert needle in str(e.value)


def test_unknown_options_and_wrong_types_are_refused(work: Path) -> None:
    # Real keyword parameters: an unknown one is Python's own TypeError,
    # before anything runs; an option of another verb too.
    with pytest.raises(TypeError, match="frobnicate"):
        lifeboat.backup("sqlite:app.db", sink="b", frobnicate=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no_owner"):
        lifeboat.backup("sqlite:app.db", sink="b", no_owner=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="schemas"):
        lifeboat.restore("b", "sqlite:r.db", schemas=["public"])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        lifeboat.list("b", **{"from": "c"})
    # A wrong type is the native side's UsageError naming the option.
    with pytest.raises(lifeboat.UsageError, match="level"):
        lifeboat.backup("sqlite:app.db", sink="b", level="high")  # type: ignore[arg-type]
    with pytest.raises(lifeboat.UsageError):
        lifeboat.list(sink="b", source=object())  # type: ignore[arg-type]


def test_the_signatures_are_the_core_operations_options() -> None:
    """Sync and asyncio signatures take exactly the fields of the core's
    typed arguments (``_native.option_names``), so the three doors cannot
    drift."""
    import inspect

    from lifeboat import _native

    ops = ["backup", "list", "verify", "drill", "restore", "prune", "status", "wal_push", "wal_fetch", "wal_setup", "mirror", "doctor"]
    for op in ops:
        expected = set(_native.option_names(op))
        for fn in (getattr(lifeboat, op), getattr(lifeboat.aio, op)):
            params = set(inspect.signature(fn).parameters) - {"on_progress"}
            assert params == expected, (op, fn, params ^ expected)


def test_config_file_with_an_unknown_key_is_a_config_error_exit_78(work: Path) -> None:
    bad = work / "bad.toml"
    bad.write_text('[profiles.prod]\nsource = "sqlite:app.db"\nretain = 7\n')
    with pytest.raises(lifeboat.ConfigError) as e:
        lifeboat.backup(config=str(bad))
    assert type(e.value) is lifeboat.ConfigError
    assert (e.value.code, e.value.exit_code) == ("config", 78)
    assert "retain" in str(e.value)
    with pytest.raises(lifeboat.ConfigError, match="profile"):
        lifeboat.list(sink="b", profile="prod")


def test_restore_onto_an_existing_database_is_a_restore_error_exit_5(work: Path, small_db: Path) -> None:
    live = make_db(work / "live.db", 3)
    before = live.read_bytes()
    lifeboat.backup(f"sqlite://{small_db}", sink="b")
    with pytest.raises(lifeboat.RestoreError) as e:
        lifeboat.restore(sink="b", target=f"sqlite://{live}", latest=True)
    assert (e.value.code, e.value.exit_code) == ("restore", 5)
    assert "--force" in str(e.value) or "force" in str(e.value)
    assert live.read_bytes() == before
    out = lifeboat.restore(sink="b", target=f"sqlite://{live}", latest=True, force=True)
    assert out["replaced"] is True


def test_a_corrupted_stored_backup_is_a_verification_error_exit_4(work: Path, small_db: Path) -> None:
    lifeboat.backup(f"sqlite://{small_db}", sink="b")
    [data] = [p for p in all_files(work / "b") if p.name.startswith("data.")]
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    with pytest.raises(lifeboat.VerificationError) as e:
        lifeboat.verify(sink="b", latest=True)
    assert (e.value.code, e.value.exit_code, e.value.retryable) == ("verification", 4, False)
    assert "checksum" in str(e.value)


def test_a_locked_source_is_a_lock_error_exit_1_and_retryable(work: Path, small_db: Path) -> None:
    (work / "locks").mkdir()
    lifeboat.backup(f"sqlite://{small_db}", sink="b", lock_dir=work / "locks")
    [lock_file] = (work / "locks").glob("lifeboat-*.lock")
    with open(lock_file, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(lifeboat.LockError) as e:
            lifeboat.backup(f"sqlite://{small_db}", sink="b", lock_dir=work / "locks")
    assert (e.value.code, e.value.exit_code, e.value.retryable) == ("locked", 1, True)
    # Released: the next run goes through.
    lifeboat.backup(f"sqlite://{small_db}", sink="b", lock_dir=work / "locks")
    assert len(lifeboat.list(sink="b")["complete"]) == 2


def test_errors_survive_pickling_with_their_attributes(work: Path) -> None:
    import pickle

    with pytest.raises(lifeboat.SourceError) as e:
        lifeboat.backup(f"sqlite://{work / 'missing.db'}", sink="b")
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is lifeboat.SourceError
    assert (again.code, again.exit_code, str(again)) == ("source", 2, str(e.value))


def test_a_tablespace_map_is_for_physical_restores(work: Path, small_db: Path) -> None:
    """``tablespace_map`` reaches the core: on a SQLite target it is refused
    as the CLI's ``--tablespace-map`` is, and a malformed pair is named."""
    lifeboat.backup(f"sqlite://{small_db}", sink="b")
    with pytest.raises(lifeboat.UsageError, match="--tablespace-map") as e:
        lifeboat.restore(sink="b", target=f"sqlite://{work / 'x.db'}", latest=True, tablespace_map=["/a=/b"])
    assert e.value.exit_code == 64
    assert not (work / "x.db").exists()
