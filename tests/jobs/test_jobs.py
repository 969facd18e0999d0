"""Background jobs in real worker processes: progress, cancel, a killed worker, resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from core.jobs import queue as jobs
from core.store.db import Store
from core.zoo.build import (
    build_model_set,
    create_model_set,
    delete_model_set,
    done_chunks,
    get_model_set,
    load_margins,
)
from tests.fault_fixtures import wait_for
from tests.lab_fixtures import TINY

SLOW = TINY.replace(epochs=6)  # ~1 s a chunk of 2 models: time to act mid-build


def _assert_consistent(store: Store, set_id: int) -> None:
    """Every chunk row names complete files of the right shape; no stray rows."""
    ms = get_model_set(store, set_id)
    rows = store.query_df("SELECT * FROM model_chunks WHERE set_id = ?", [set_id])
    for r in rows.itertuples():
        assert len(ms.chunk_range(r.chunk)) == r.n_models
        assert store.load_array(r.margins_file).shape == (r.n_models, 1797)
        assert store.load_array(r.masks_file).shape == (r.n_models, 1347)
        assert store.load_tensors(r.weights_file)


def test_job_runs_to_done_with_progress(db_path):
    store = Store(db_path)
    set_id = create_model_set(store, "original", TINY, 2)
    job_id = jobs.start(store, "build_models", {"set_id": set_id, "device": "cpu"})
    wait_for(lambda: jobs.get_job(store, job_id)["status"] in jobs.FINAL)
    job = jobs.get_job(store, job_id)
    assert (
        job["status"] == "done" and job["progress"] == 1.0 and job["result"] == {"set_id": set_id}
    )
    assert get_model_set(store, set_id).status == "complete"


def test_cancel_leaves_a_consistent_store(db_path):
    store = Store(db_path)
    set_id = create_model_set(store, "original", SLOW, 400, chunk_size=2)
    job_id = jobs.start(store, "build_models", {"set_id": set_id, "device": "cpu"})
    wait_for(lambda: len(done_chunks(store, set_id)) >= 1)
    df = jobs.list_jobs(store)
    assert df.loc[df["id"] == job_id, "status"].item() == "running"
    wait_for(lambda: 0 < jobs.get_job(store, job_id)["progress"] < 1, every=0.1)  # as it goes
    # a CLI run while the worker writes to the same file: works (the writers take turns)
    from tests.commands.test_cli import cli

    res = cli("models", "--json", db=db_path)
    assert res.returncode == 0, res.stderr
    jobs.cancel(store, job_id)
    wait_for(lambda: jobs.get_job(store, job_id)["status"] in jobs.FINAL, timeout=60)
    job = jobs.get_job(store, job_id)
    assert job["status"] == "cancelled" and "cancelled" in job["message"]
    assert 1 <= len(done_chunks(store, set_id)) < 200
    assert get_model_set(store, set_id).status == "building"
    _assert_consistent(store, set_id)


def test_killed_worker_is_detected_and_resumed(db_path, tmp_path):
    """kill -9 of a worker mid-build: its job is marked interrupted, the chunks it committed
    and everything stored before stay byte for byte, and the resumed build equals an
    uninterrupted one."""
    from tests.fault_fixtures import assert_kept, assert_whole, snapshot

    store = Store(db_path)
    build_model_set(store, create_model_set(store, "original", TINY, 2, seed=0, chunk_size=1))
    before = snapshot(store)  # earlier results
    # 12 chunks: the worker is still at work when the test kills it, on a quiet machine too
    set_id = create_model_set(store, "original", SLOW, 24, seed=11, chunk_size=2)
    job_id = jobs.start(store, "build_models", {"set_id": set_id, "device": "cpu"})
    wait_for(lambda: len(done_chunks(store, set_id)) >= 1)
    pid = int(jobs.get_job(store, job_id)["pid"])
    os.kill(pid, signal.SIGKILL)  # no chance to clean up
    wait_for(lambda: not jobs._alive(pid), timeout=30)
    assert jobs.reconcile(store) == [job_id]
    assert jobs.get_job(store, job_id)["status"] == "interrupted"
    _assert_consistent(store, set_id)
    assert 1 <= len(done_chunks(store, set_id)) < 12
    mid = snapshot(store)  # the chunks the killed worker had committed
    jobs.resume(store, job_id)
    wait_for(lambda: jobs.get_job(store, job_id)["status"] in jobs.FINAL)
    assert jobs.get_job(store, job_id)["status"] == "done"
    assert_whole(store)
    assert_kept(before, snapshot(store))
    assert_kept(mid, snapshot(store))
    # the resumed build equals an uninterrupted one with the same seeds
    ref = Store(tmp_path / "ref.duckdb")
    ref_id = create_model_set(ref, "original", SLOW, 24, seed=11, chunk_size=2)
    build_model_set(ref, ref_id)
    np.testing.assert_array_equal(load_margins(store, set_id), load_margins(ref, ref_id))


def test_bad_job_requests(db_path):
    store = Store(db_path)
    from core.common.errors import ConfigError, NotFoundError

    with pytest.raises(ConfigError, match="unknown job kind"):
        jobs.submit(store, "mine_bitcoin", {})
    with pytest.raises(NotFoundError):
        jobs.cancel(store, 12345)
    with pytest.raises(NotFoundError, match="no model set with id 999"):
        jobs.submit(store, "build_models", {"set_id": 999})
    # a set deleted after the job was queued: the job fails with the plain message
    set_id = create_model_set(store, "original", TINY, 2)
    job_id = jobs.submit(store, "build_models", {"set_id": set_id})
    delete_model_set(store, set_id)
    jobs.launch(store, job_id)
    wait_for(lambda: jobs.get_job(store, job_id)["status"] in jobs.FINAL)
    job = jobs.get_job(store, job_id)
    assert job["status"] == "failed" and job["message"] == f"there is no model set with id {set_id}"
    with pytest.raises(ConfigError, match="only a stopped job"):
        jobs.resume(store, jobs.submit(store, "demo", {}))


def test_dashboard_start_resumes_a_dead_workers_job(db_path):
    import subprocess
    import sys

    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    store = Store(db_path)
    set_id = create_model_set(store, "original", TINY, 2)
    job_id = jobs.submit(store, "build_models", {"set_id": set_id, "device": "cpu"})
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    with store.transaction() as con:  # as if the machine restarted mid-job
        con.execute(
            "UPDATE jobs SET status = 'running', pid = ? WHERE id = ?", [int(dead.stdout), job_id]
        )
    AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
    assert jobs.get_job(store, job_id)["status"] != "running" or jobs._alive(
        int(jobs.get_job(store, job_id)["pid"])
    )
    wait_for(lambda: jobs.get_job(store, job_id)["status"] in jobs.FINAL)
    assert jobs.get_job(store, job_id)["status"] == "done"
    assert get_model_set(store, set_id).status == "complete"


@pytest.fixture
def stranger():
    """A live process that is not a worker (as a pid reused after the worker died)."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def _pretend_running(store: Store, job_id: int, pid: int, start: str | None) -> None:
    with store.transaction() as con:
        con.execute(
            "UPDATE jobs SET status = 'running', pid = ?, worker_start = ? WHERE id = ?",
            [pid, start, job_id],
        )


def test_a_stale_pid_is_not_taken_for_the_worker(db_path, stranger):
    store = Store(db_path)
    set_id = create_model_set(store, "original", TINY, 2)
    params = {"set_id": set_id, "device": "cpu"}
    own_start = jobs.process_start(stranger.pid)
    assert own_start and jobs.is_worker(stranger.pid, own_start)  # the check itself works
    assert not jobs.is_worker(stranger.pid, None)
    # no start time stored (a row from before schema 5), or another process's start time
    no_start, wrong_start, still_running = (
        jobs.submit(store, "build_models", params) for _ in "abc"
    )
    _pretend_running(store, no_start, stranger.pid, None)
    _pretend_running(store, wrong_start, stranger.pid, "ticks:1")
    _pretend_running(store, still_running, stranger.pid, own_start)  # truly "its" process

    jobs.cancel(store, no_start)  # must not signal the stranger
    time.sleep(0.3)
    assert stranger.poll() is None, "cancel signalled a process that is not the job's worker"
    assert jobs.get_job(store, no_start)["status"] == "cancelled"

    assert jobs.reconcile(store) == [wrong_start]
    assert jobs.get_job(store, wrong_start)["status"] == "interrupted"
    assert jobs.get_job(store, still_running)["status"] == "running"
    assert jobs.active_job(store) == still_running  # its worker (truly) runs: others wait
    jobs._finish(store, still_running, "done", "done")
    jobs.resume(store, wrong_start)
    wait_for(lambda: jobs.get_job(store, wrong_start)["status"] in jobs.FINAL)
    assert jobs.get_job(store, wrong_start)["status"] == "done"
    assert get_model_set(store, set_id).status == "complete"
    assert stranger.poll() is None

    # resume straight from a stale "running" row (no reconcile first) works as well
    _pretend_running(store, no_start, stranger.pid, "ticks:1")
    jobs.resume(store, no_start)
    wait_for(lambda: jobs.get_job(store, no_start)["status"] in jobs.FINAL)
    assert jobs.get_job(store, no_start)["status"] == "done"
    assert stranger.poll() is None


@pytest.mark.parametrize(
    "kind,params,needle",
    [
        ("demo", {"models": -5}, "models must be at least 1, got -5"),
        ("demo", {"models": 0}, "models must be at least 1"),
        ("demo", {"models": 1_000_000}, "models must be at most 100000"),
        ("demo", {"models": "5"}, "models must be a whole number"),
        ("demo", {"models": 2.5}, "models must be a whole number"),
        ("demo", {"epochs": 0}, "epochs must be at least 1"),
        ("demo", {"device": "tpu"}, "unknown device 'tpu'"),
        ("demo", {"device": 3}, "device must be a device name"),
        ("demo", {"modles": 5}, "unknown parameter 'modles' for a demo job"),
        ("demo", [5], "must be a mapping"),
        ("oracles", {"models": 5}, "needs the parameter 'forget_set_id'"),
        ("oracles", {"forget_set_id": 77}, "no forget set with id 77"),
        ("oracles", {"forget_set_id": "1"}, "forget_set_id must be a whole number"),
        ("evaluate", {"method": "magic", "forget_set_id": 1}, "unknown method 'magic'"),
        ("evaluate", {"forget_set_id": 1}, "needs the parameter 'method'"),
        ("build_models", {}, "needs the parameter 'set_id'"),
        ("build_models", {"set_id": None}, "set_id must be a whole number"),
        ("build_models", {"set_id": 999}, "no model set with id 999"),
    ],
)
def test_bad_job_parameters_never_become_a_row(db_path, kind, params, needle):
    from core.common.errors import LabError

    store = Store(db_path)
    with pytest.raises(LabError, match=re.escape(needle)):
        jobs.submit(store, kind, params)
    assert store.query_df("SELECT count(*) AS n FROM jobs")["n"][0] == 0


def test_a_stored_job_with_bad_parameters_fails_with_a_plain_message(db_path):
    """Rows written before parameters were checked (or by hand) fail clearly in the worker."""
    store = Store(db_path)
    with store.transaction() as con:
        job_id = con.execute(
            "INSERT INTO jobs (kind, params, status) VALUES ('demo', ?, 'queued') RETURNING id",
            [json.dumps({"models": -5})],
        ).fetchone()[0]
    jobs.launch(store, job_id)
    wait_for(lambda: jobs.get_job(store, job_id)["status"] in jobs.FINAL)
    job = jobs.get_job(store, job_id)
    assert (job["status"], job["message"]) == ("failed", "models must be at least 1, got -5")


def test_process_start_without_proc_uses_ps(monkeypatch, stranger):
    """Where there is no /proc (macOS), the start time comes from ``ps``; same answers."""
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: False if p == "/proc/self" else real_isdir(p))
    start = jobs.process_start(stranger.pid)
    assert start and start.startswith("ps:") and start == jobs.process_start(stranger.pid)
    assert jobs.is_worker(stranger.pid, start) and not jobs.is_worker(stranger.pid, "ps:Jan 1")
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert jobs.process_start(dead.pid) is None


def test_one_worker_at_a_time_the_rest_wait_their_turn(db_path):
    """Jobs started while another runs wait, and start by themselves, oldest first."""
    store = Store(db_path)
    sets = [create_model_set(store, "original", SLOW, 4, chunk_size=2) for _ in range(3)]
    ids = [jobs.start(store, "build_models", {"set_id": s, "device": "cpu"}) for s in sets]
    first = jobs.get_job(store, ids[0])
    assert first["pid"] is not None  # launched at once
    for j in ids[1:]:
        job = jobs.get_job(store, j)
        assert job["status"] == "queued" and pd.isna(job["pid"])
        assert job["message"] == f"waiting for job {ids[0]} to finish"
    wait_for(lambda: all(jobs.get_job(store, j)["status"] in jobs.FINAL for j in ids), timeout=240)
    rows = [jobs.get_job(store, j) for j in ids]
    assert [r["status"] for r in rows] == ["done"] * 3
    # never two at once: each started after the one before it had finished
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["started_at"] >= before["finished_at"]
