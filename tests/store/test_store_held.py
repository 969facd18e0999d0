"""Store.held: one connection for a burst of bookkeeping, with every guarantee of the
short-lived ones (each transaction atomic, storage errors translated, other processes wait)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from core.store.db import Store
from tests.conftest import ROOT


def _count_opens(monkeypatch, store: Store) -> list[int]:
    opened = [0]
    real = Store._connect

    def counting(self, read_only):
        opened[0] += 1
        return real(self, read_only)

    monkeypatch.setattr(Store, "_connect", counting)
    return opened


def _notes(store: Store) -> list[str]:
    return list(store.query_df("SELECT v FROM t ORDER BY v")["v"])


@pytest.fixture
def store(db_path) -> Store:
    s = Store(db_path).create()
    with s.transaction() as con:
        con.execute("CREATE TABLE t (v VARCHAR)")
    return s


def test_reads_and_writes_inside_share_one_open(store, monkeypatch):
    opened = _count_opens(monkeypatch, store)
    with store.held():
        for i in range(5):
            with store.transaction() as con:
                con.execute("INSERT INTO t VALUES (?)", [f"n{i}"])
            assert len(_notes(store)) == i + 1  # reads see the block's own commits
    assert opened[0] == 1
    with store.connect(read_only=True):  # after the block: each call opens again
        pass
    assert opened[0] == 2
    assert _notes(Store(store.path)) == [f"n{i}" for i in range(5)]  # on disk, for a new reader


def test_a_failed_transaction_inside_rolls_back_alone(store):
    with store.held():
        with store.transaction() as con:
            con.execute("INSERT INTO t VALUES ('kept')")
        with pytest.raises(RuntimeError), store.transaction() as con:
            con.execute("INSERT INTO t VALUES ('dropped')")
            raise RuntimeError("the method failed half-way")
        with store.transaction() as con:  # the held connection goes on
            con.execute("INSERT INTO t VALUES ('after')")
    assert _notes(Store(store.path)) == ["after", "kept"]


def test_nested_blocks_and_a_missing_lab_hold_nothing_more(store, monkeypatch, tmp_path):
    opened = _count_opens(monkeypatch, store)
    with store.held(), store.held():
        _notes(store)
        _notes(store)
    assert opened[0] == 1
    missing = Store(tmp_path / "none.duckdb")
    with missing.held():  # nothing to hold: a read of a missing lab reads as empty
        assert missing.query_df("SELECT 1 AS x")["x"][0] == 1
    assert not missing.path.exists()


def test_another_process_waits_for_the_block_then_writes(store):
    """The block holds DuckDB's lock like any write: a CLI write waits, then lands."""
    code = (
        "import sys; from core.store.db import Store; s = Store(sys.argv[1], timeout=60)\n"
        "with s.transaction() as con: con.execute(\"INSERT INTO t VALUES ('other')\")\n"
    )
    with store.held():
        with store.transaction() as con:
            con.execute("INSERT INTO t VALUES ('mine')")
        other = subprocess.Popen([sys.executable, "-c", code, str(store.path)], cwd=ROOT)
        time.sleep(3)  # it started and is waiting on our lock
        assert other.poll() is None
    assert other.wait(timeout=120) == 0
    assert _notes(Store(store.path)) == ["mine", "other"]
