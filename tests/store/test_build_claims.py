"""One builder per model set (issue 22 item 8): a second builder of a set is refused with a
message naming the first, instead of deleting its unrecorded chunk files; a claim whose
process is gone is taken over."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from core.common.processes import process_start
from core.store.claims import TABLE, SetBusyError
from core.store.db import Store
from core.zoo.build import build_model_set, create_model_set, get_model_set
from tests.conftest import ROOT
from tests.fault_fixtures import assert_whole, wait_for
from tests.lab_fixtures import TINY

SLOW = TINY.replace(epochs=6)  # ~1 s a chunk of 2 models: time to act mid-build

BUILD = """
import sys
from core.common.errors import LabError
from core.store.db import Store
from core.zoo.build import build_model_set
try:
    build_model_set(Store(sys.argv[1]), int(sys.argv[2]))
except LabError as err:
    print("error:", err)
    sys.exit(2)
"""


def _builder(db, set_id: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BUILD, str(db), str(set_id)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _claims(store: Store):
    with store.transaction() as con:
        con.execute(TABLE)
    return store.query_df("SELECT * FROM build_claims")


def test_a_second_builder_of_a_set_is_refused_and_the_first_finishes(db_path):
    store = Store(db_path)
    set_id = create_model_set(store, "original", SLOW, 60, seed=11, chunk_size=2)
    first = _builder(db_path, set_id)
    try:
        wait_for(lambda: len(_claims(store)) == 1, timeout=120)
        second = _builder(db_path, set_id)  # 30 chunks of ~1 s: the first still builds
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2, (out, err)
        assert f"model set {set_id} is being built by another process (process {first.pid}" in out
        assert first.poll() is None  # the first builder goes on, its files untouched
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        first.kill()
    assert get_model_set(store, set_id).status == "complete"
    assert _claims(store).empty  # released
    assert_whole(store)


def _fake_claim(store: Store, set_id: int, pid: int) -> None:
    start = process_start(pid) or "gone"
    with store.transaction() as con:
        con.execute(TABLE)
        con.execute(
            "INSERT INTO build_claims VALUES (?, ?, ?, ?, now())",
            [set_id, pid, start, socket.gethostname()],
        )


def test_a_live_claim_refuses_and_a_dead_one_is_taken_over(db_path):
    store = Store(db_path)
    set_id = create_model_set(store, "original", TINY, 2, seed=0, chunk_size=1)
    folder = store.files_dir / "model_sets" / str(set_id)
    folder.mkdir(parents=True)
    unrecorded = folder / "chunk00000.weights.pt"  # the live builder's file, not yet recorded
    unrecorded.write_bytes(b"in the making")
    holder = subprocess.Popen(["sleep", "60"])
    try:
        _fake_claim(store, set_id, holder.pid)
        with pytest.raises(SetBusyError, match=f"process {holder.pid}"):
            build_model_set(store, set_id)
        assert unrecorded.read_bytes() == b"in the making"  # not cleaned up under it
    finally:
        holder.kill()
        holder.wait()
    build_model_set(store, set_id)  # its process gone: the claim is taken over
    assert get_model_set(store, set_id).status == "complete"
    assert _claims(store).empty
    assert_whole(store)
