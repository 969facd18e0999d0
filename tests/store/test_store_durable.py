"""Array files are on the disk before a row names them (issue 22 item 8): each file is
fsynced before its rename into place and its folder after it, all before the chunk's row is
committed — a power loss can no longer leave a committed row naming an empty file."""

from __future__ import annotations

import contextlib
import os

from core.store.db import Store
from core.zoo.build import build_model_set, create_model_set
from tests.lab_fixtures import TINY


def test_chunk_files_are_synced_before_their_row_is_committed(db_path, monkeypatch):
    store = Store(db_path)
    set_id = create_model_set(store, "original", TINY, 1, seed=0, chunk_size=1)
    events: list[tuple[str, str]] = []
    real_fsync, real_transaction = os.fsync, Store.transaction

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    @contextlib.contextmanager
    def transaction(self):
        with real_transaction(self) as con:
            yield con
        events.append(("commit", ""))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Store, "transaction", transaction)
    build_model_set(store, set_id)
    folder = str(store.files_dir / "model_sets" / str(set_id))
    first_sync = next(i for i, (what, _) in enumerate(events) if what == "fsync")
    row = events.index(("commit", ""), first_sync)  # the chunk's row (the set's claim before)
    before = events[:row]
    for name in ("weights.pt", "margins.npy", "masks.npy", "correct.npy"):
        tmp = next(i for i, (_, p) in enumerate(before)
                   if p.startswith(f"{folder}/.chunk00000.{name}.") and p.endswith(".tmp"))  # fmt: skip
        synced_dir = [i for i, (_, p) in enumerate(before) if p == folder and i > tmp]
        assert synced_dir, (name, before)  # the file, then its folder, then the row
    assert ("fsync", str(store.files_dir / "model_sets")) in before  # the new folder's entry
