"""A checkpoint that fails on a really full disk (a small tmpfs): the command says so and exits
non-zero, nothing is lost, and the file with its pending write-ahead log is never called
damaged — before or after space is freed. And a size that cuts a block is damage only when
DuckDB cannot read every table.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from core.common.errors import StoreError
from core.forget.sets import manual_forget_set
from core.forget.store import list_forget_sets, save_forget_set
from core.store import check as store_check
from core.store import wal as store_wal
from core.store.db import Store
from tests.fault_fixtures import assert_whole, cli, fill, tmpfs

CREATE = ("forget-set", "create", "--kind", "random", "--k", "5", "--name")


@pytest.fixture
def disk(tmp_path):
    with tmpfs(tmp_path / "disk", "4m") as mnt:
        yield mnt


def test_a_failed_checkpoint_is_reported_and_nothing_is_lost(disk):
    """Issue 22 item 2: with ~76 KB free the commit fits in the .wal but the checkpoint does
    not; DuckDB swallowed that at close and the command printed success (exit 0)."""
    db = disk / "lab.duckdb"
    assert cli(*CREATE, "a", db=db).returncode == 0
    filler = fill(disk, 76 * 1024)
    res = cli(*CREATE, "b", db=db)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert err[0].startswith(f"error: no space left on the disk holding {db}"), err
    assert "nothing was lost" in err[0] and "lab.duckdb.wal" in err[0], err
    assert store_wal.wal_path(db).exists()  # the change waits in the log
    outputs = [res.stderr]
    # the disk still full: reads work, from the log, and nothing is called damaged
    res = cli("forget-set", "list", "--json", db=db)
    outputs.append(res.stderr)
    assert res.returncode == 0 and '"b"' in res.stdout, res.stderr
    filler.unlink()  # room again: every row is there and writes work
    res = cli("forget-set", "list", "--json", db=db)
    outputs.append(res.stderr)
    assert res.returncode == 0 and '"a"' in res.stdout and '"b"' in res.stdout, res.stderr
    res = cli(*CREATE, "c", db=db)
    outputs.append(res.stderr)
    assert res.returncode == 0, res.stderr
    assert not store_wal.wal_path(db).exists()
    store = Store(db)
    assert sorted(list_forget_sets(store)["name"]) == ["a", "b", "c"]
    assert_whole(store)
    assert not any("damaged" in out for out in outputs), outputs


def _add_a_missing_block(db) -> None:
    """Make the file's size cut a block its headers know (as a failed checkpoint's partial
    growth does): one more block counted in both database headers, 100 KB more bytes."""
    with open(db, "r+b") as fh:
        for offset in (store_check.HEADER_SIZE, 2 * store_check.HEADER_SIZE):
            fh.seek(offset)
            buf = bytearray(fh.read(store_check.HEADER_SIZE))
            count = struct.unpack_from("<Q", buf, 32)[0]
            struct.pack_into("<Q", buf, 32, count + 1)
            words = np.frombuffer(bytes(buf[8:]), dtype="<u8").reshape(1, -1)
            struct.pack_into("<Q", buf, 0, int(store_check._checksum(words)[0]))
            fh.seek(offset)
            fh.write(buf)
        fh.seek(0, os.SEEK_END)
        fh.write(os.urandom(100_000))


def test_a_cut_size_that_duckdb_reads_whole_is_not_damage(tmp_path):
    db = tmp_path / "lab.duckdb"
    save_forget_set(Store(db), manual_forget_set([1, 2], 1347, name="a"), "digits")
    _add_a_missing_block(db)
    with pytest.raises(store_check.CutFile, match="truncated"):
        store_check.read_header(db)
    assert list(list_forget_sets(Store(db))["name"]) == ["a"]
    save_forget_set(Store(db), manual_forget_set([3], 1347, name="b"), "digits")
    assert len(list_forget_sets(Store(db))) == 2  # (the made-up block stays unused)


def test_a_reader_that_cannot_apply_the_log_says_recovery_pending(tmp_path, monkeypatch):
    """A cut file that DuckDB cannot read, with a pending log and no write access: not
    "damaged" but "recovery pending"; with write access (no log), it is damage."""
    db = tmp_path / "lab.duckdb"
    save_forget_set(Store(db), manual_forget_set([1, 2], 1347, name="a"), "digits")
    _add_a_missing_block(db)
    monkeypatch.setattr(store_wal, "size_is_damage", lambda con: True)
    with pytest.raises(StoreError, match="is damaged .*truncated"):
        list_forget_sets(Store(db))
    store_wal.wal_path(db).write_bytes(b"")  # a log DuckDB could not apply (read-only)
    monkeypatch.setattr(Store, "_writable", lambda self: False)
    with pytest.raises(StoreError, match="recovery pending — it is not damaged") as err:
        list_forget_sets(Store(db))
    assert "lab.duckdb.wal" in str(err.value)
