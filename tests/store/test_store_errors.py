"""A full disk, damaged array files and unexpected errors: one clear line, nothing changed."""

from __future__ import annotations

import errno
import hashlib

import duckdb
import numpy as np
import pytest
import torch

from core import cli
from core.common.errors import StoreError
from core.forget.sets import manual_forget_set
from core.forget.store import list_forget_sets, save_forget_set
from core.store.check import storage_error
from core.store.db import Store


@pytest.fixture
def store(db_path) -> Store:
    s = Store(db_path).create()
    save_forget_set(s, manual_forget_set([1, 2], 1347, name="a"), "digits")
    return s


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_disk_full_while_saving_an_array(store, monkeypatch):
    before = _digest(store.path)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(StoreError, match="no space left on the disk holding .*x.npy.*nothing"):
        store.save_array("sets/1/x.npy", np.zeros(3))
    assert list((store.files_dir / "sets" / "1").iterdir()) == []  # no temp file left
    assert _digest(store.path) == before


def test_disk_full_while_saving_weights(store, monkeypatch):
    def full(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"PK")  # a partial file, as torch leaves one
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 2")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(StoreError, match="no space left.*w.pt"):
        store.save_tensors("sets/1/w.pt", {"w": torch.zeros(2)})
    assert list((store.files_dir / "sets" / "1").iterdir()) == []


def test_disk_full_inside_a_transaction_stores_nothing(store):
    full = pytest.raises(StoreError, match=f"no space left on the disk holding {store.path}")
    with full, store.transaction() as con:
        con.execute("DELETE FROM forget_sets")
        raise duckdb.IOException('IO Error: Could not write file "x": No space left on device')
    assert len(list_forget_sets(store)) == 1


@pytest.mark.parametrize(
    "message,needle",
    [
        ("IO Error: Could not write file: No space left on device", "no space left"),
        ("Corrupt database file: computed checksum 1 does not match stored checksum 2 in "
         "block at location 798720", "damaged (the block at byte 798720 fails its checksum)"),
        ("IO Error: Cannot open file: Permission denied", "not writable"),
        ("IO Error: Could not set lock on file: Conflicting lock is held in python (PID 42)",
         "in use by another process (process 42)"),
    ],
)  # fmt: skip
def test_storage_errors_become_one_line(tmp_path, message, needle):
    msg = str(storage_error(duckdb.IOException(message), tmp_path / "lab.duckdb"))
    assert needle in msg and str(tmp_path / "lab.duckdb") in msg and "\n" not in msg


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_margins_file(store, damage):
    store.save_array("m.npy", np.arange(1000, dtype=np.float32))
    path = store.file_path("m.npy")
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 100 if damage == "garbage" else data[: len(data) // 2])
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"the array file {path} is damaged"):
        store.load_array("m.npy")
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zip"])
def test_damaged_weights_file(store, damage):
    store.save_tensors("w.pt", {"w": torch.arange(1000.0)})
    path = store.file_path("w.pt")
    data = path.read_bytes()
    bad = {"garbage": b"\x80\x02garbage" * 100, "truncated": data[: len(data) // 2],
           "zip": b"PK\x03\x04" + b"\x00" * 200}[damage]  # fmt: skip
    path.write_bytes(bad)
    with pytest.raises(StoreError, match=f"the weights file {path} is damaged"):
        store.load_tensors("w.pt")
    assert path.read_bytes() == bad


def _failing_command(monkeypatch, exc: Exception) -> None:
    """Make ``models`` fail inside the engine with ``exc``."""

    def boom(self, *a, **k):
        raise exc

    monkeypatch.setattr(Store, "query_df", boom)


def test_a_bug_is_one_line_with_the_log_named(db_path, tmp_path, monkeypatch, capsys):
    log = tmp_path / "errors.log"
    monkeypatch.setenv("LAB_LOG", str(log))
    _failing_command(monkeypatch, KeyError("oops"))
    Store(db_path).create()
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error in models (KeyError" in err
    assert str(log) in err and "Traceback" not in err
    assert "Traceback" in log.read_text() and "boom" in log.read_text()


def test_a_full_disk_outside_the_store_is_one_line(db_path, monkeypatch, capsys):
    _failing_command(monkeypatch, OSError(errno.ENOSPC, "No space left on device", "/x/out"))
    Store(db_path).create()
    assert cli.main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on the disk holding /x/out" in err


def test_a_wal_removed_while_opening_is_retried(tmp_path, monkeypatch):
    """Seen in a job: another process's checkpoint removed the write-ahead log between DuckDB
    seeing it and opening it ("Cannot open file ….wal: No such file or directory"); the job
    failed. Such an open is retried like a held lock."""
    import duckdb

    from core.store.db import Store

    store = Store(tmp_path / "lab.duckdb").create()
    real = duckdb.connect
    calls = {"n": 0}

    def flaky(path, read_only=False):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise duckdb.IOException(
                f'IO Error: Cannot open file "{path}.wal": No such file or directory'
            )
        return real(path, read_only=read_only)

    monkeypatch.setattr(duckdb, "connect", flaky)
    assert store.query_df("SELECT 42 AS x")["x"][0] == 42 and calls["n"] == 3


def test_a_short_read_beside_a_writer_is_retried(tmp_path, monkeypatch):
    """Seen under load in CI: a job-status poll failed with "Could not read enough bytes"
    while worker processes wrote to the file. Reads are retried on a fresh connection."""
    import duckdb

    from core.store.db import Store

    store = Store(tmp_path / "lab.duckdb").create()
    real = duckdb.connect
    calls = {"n": 0}

    class Short:
        def __init__(self, con):
            self.con = con

        def execute(self, *a, **k):
            raise duckdb.IOException(
                f'IO Error: Could not read enough bytes from file "{store.path}": attempted to '
                "read 262144 bytes from location 3682304"
            )

        def close(self):
            self.con.close()

    def flaky(path, read_only=False):
        calls["n"] += 1
        con = real(path, read_only=read_only)
        return Short(con) if read_only and calls["n"] <= 2 else con

    monkeypatch.setattr(duckdb, "connect", flaky)
    assert store.query_df("SELECT 7 AS x")["x"][0] == 7


def test_a_write_waits_for_a_read_open_in_another_thread(db_path):
    """The dashboard's jobs panel reads while a page saves: DuckDB refuses a read-write open
    while a read-only connection to the same file is open in the process ("different
    configuration than existing connections"). The write waits for the reader to close."""
    import threading

    from core.store.db import Store

    store = Store(db_path).create()
    opened, release = threading.Event(), threading.Event()

    def read():
        with store.connect(read_only=True):
            opened.set()
            release.wait(5)

    reader = threading.Thread(target=read)
    reader.start()
    opened.wait(5)
    threading.Timer(0.5, release.set).start()
    with store.connect() as con:  # refused at once before the fix
        con.execute("SELECT 1")
    reader.join()


def test_a_corrupt_file_is_refused_at_once_not_waited_on_as_a_lock(store, monkeypatch):
    """DuckDB's "… checksum … in block at location 4096" held the word "lock" (in "block"), so
    every command on a file with a damaged header waited out the 5 s lock timeout, retrying."""
    from core.store import db as store_module

    corrupt = "Corrupt database file: computed checksum 1 does not match stored checksum 2 in "
    assert not store_module._transient(duckdb.Error(corrupt + "block at location 4096"))
    assert store_module._transient(duckdb.IOException(
        'IO Error: Could not set lock on file "x": Conflicting lock is held in python (PID 42)'))  # fmt: skip
    assert "in use" not in str(storage_error(duckdb.Error(corrupt + "block conflict"), store.path))
    with open(store.path, "r+b") as fh:  # a damaged database header, as DuckDB reads it
        fh.seek(4096 + 100)
        fh.write(b"\xff" * 8)
    waits = []
    monkeypatch.setattr(store_module.time, "sleep", waits.append)
    with pytest.raises(StoreError, match="damaged"):
        list_forget_sets(Store(store.path))
    assert waits == [], f"waited {len(waits)} times on a corrupt file"
