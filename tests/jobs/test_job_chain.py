"""Job chains and prerequisites: a job known to fail is never queued or resumed; what is missing
is built first, in order; a waiting job's message names the queue as it is now."""

from __future__ import annotations

import json
import os

import pytest

from core.common.errors import ConfigError
from core.common.processes import process_start
from core.forget.sets import random_forget_set
from core.forget.store import save_forget_set
from core.jobs import queue as jobs
from core.jobs.prerequisites import chain, needs
from tests.dashboard.test_dashboard_klom import lab, lab_template  # noqa: F401  (fixtures)
from tests.jobs.test_jobs import wait_for


def _fake_running(store, kind: str = "evaluate") -> int:
    """A job row that counts as running: its worker is this test process."""
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO jobs (kind, params, status, message, pid, worker_start) "
            "VALUES (?, '{}', 'running', 'busy', ?, ?) RETURNING id",
            [kind, os.getpid(), process_start(os.getpid())],
        ).fetchone()
    return int(row[0])


def _set(store, job_id: int, status: str) -> None:
    with store.transaction() as con:
        con.execute("UPDATE jobs SET status = ? WHERE id = ?", [status, job_id])


def _fresh_forget_set(store) -> int:
    return save_forget_set(store, random_forget_set(1347, 10, seed=7, name="fresh"), "digits")


def test_dmm_without_a_logits_datamodel_is_refused_before_it_is_queued(lab):  # noqa: F811
    """The dashboard once queued dm_matching with only a margin datamodel (or none): the job
    failed in the background and its Resume could only fail again."""
    store = lab["store"]
    grid = [{"budget": 0.05}]
    with pytest.raises(ConfigError, match="logits datamodel") as err:
        jobs.start(store, "unlearn", {"forget_set_id": lab["forget_set"],
                                      "method": "dm_matching", "grid": grid})  # fmt: skip
    assert "datamodels fit" in str(err.value) and "--target logits" in str(err.value)
    assert jobs.list_jobs(store).empty  # no row
    # a failed row from before (an older version queued it): its Resume is refused, not queued
    with store.transaction() as con:
        con.execute(
            "INSERT INTO jobs (kind, params, status, message) VALUES ('unlearn', ?, 'failed', "
            "'x')",
            [json.dumps({"forget_set_id": lab["forget_set"], "method": "dm_matching",
                         "grid": grid})],
        )  # fmt: skip
    job_id = int(jobs.list_jobs(store)["id"][0])
    with pytest.raises(ConfigError, match=f"job {job_id} cannot be resumed yet"):
        jobs.resume(store, job_id)
    assert jobs.get_job(store, job_id)["status"] == "failed"


def test_needs_names_oracles_then_the_datamodel_in_order(lab):  # noqa: F811
    store = lab["store"]
    fs = _fresh_forget_set(store)
    got = needs(store, fs, "dm_matching", datamodel_models=30)
    assert [n.what for n in got] == ["oracles", "datamodel"]
    assert got[0].params == {"forget_set_id": fs, "original_set_id": lab["original"]}
    assert got[1].params == {"dataset": "digits", "models": 30, "target": "logits",
                             "original_set_id": lab["original"]}  # fmt: skip
    assert needs(store, lab["forget_set"], "gradient_descent") == []  # oracles built
    assert [n.what for n in needs(store, lab["forget_set"], "dm_direct")] == ["datamodel"]
    final = ("unlearn", {"forget_set_id": fs, "method": "dm_matching", "grid": [{}]})
    assert [k for k, _ in chain(store, fs, "dm_matching", final)] == [
        "oracles", "datamodel", "unlearn"]  # fmt: skip


def test_waiting_messages_follow_the_queue_and_cancel_stops_the_chain(lab):  # noqa: F811
    """'waiting for job 3' stayed after job 3 had ended; a chain waits for its links."""
    store = lab["store"]
    busy = _fake_running(store)
    a = jobs.submit(store, "evaluate", {"forget_set_id": lab["forget_set"],
                                        "method": "do_nothing"})  # fmt: skip
    b = jobs.submit(store, "evaluate", {"forget_set_id": lab["forget_set"],
                                        "method": "do_nothing", "after": [a]})  # fmt: skip
    assert jobs.pump(store) is None  # a worker is at work: nothing launches
    assert jobs.get_job(store, a)["message"] == f"waiting for job {busy} to finish"
    assert jobs.get_job(store, b)["message"] == f"waiting for job {a} (Evaluate), which it needs"
    _set(store, busy, "done")
    other = _fake_running(store, "oracles")
    jobs.pump(store)
    assert jobs.get_job(store, a)["message"] == f"waiting for job {other} to finish"
    # a failed link: the next one says which job to resume
    _set(store, a, "failed")
    jobs.pump(store)
    assert f"needs job {a} (Evaluate), which ended failed: resume job {a}" in jobs.get_job(
        store, b)["message"]  # fmt: skip
    # cancelling a queued link cancels what waits on it
    _set(store, a, "queued")
    jobs.cancel(store, a)
    job_b = jobs.get_job(store, b)
    assert job_b["status"] == "cancelled" and f"it needed job {a}" in job_b["message"]
    _set(store, other, "done")


def test_a_chain_builds_the_oracles_then_unlearns(lab):  # noqa: F811
    """Real worker processes: the oracles job runs first, the unlearn job only after it."""
    store = lab["store"]
    fs = _fresh_forget_set(store)
    final = ("unlearn", {"forget_set_id": fs, "method": "gradient_descent",
                         "grid": [{"budget": 0.1}], "original_set_id": lab["original"]})  # fmt: skip
    with pytest.raises(ConfigError, match="no oracles"):  # alone it is refused
        jobs.start(store, *final)
    ids = jobs.start_chain(store, chain(store, fs, "gradient_descent", final))
    assert [jobs.get_job(store, j)["kind"] for j in ids] == ["oracles", "unlearn"]
    assert jobs.get_job(store, ids[1])["params"]["after"] == [ids[0]]
    # the same step again joins the queued one instead of queueing it twice
    again = jobs.start_chain(store, chain(store, fs, "gradient_descent", final))
    assert again[0] == ids[0]
    wait_for(lambda: all(jobs.get_job(store, j)["status"] in jobs.FINAL for j in ids + again),
             timeout=240)  # fmt: skip
    rows = [jobs.get_job(store, j) for j in ids]
    assert [r["status"] for r in rows] == ["done", "done"], [r["message"] for r in rows]
    assert rows[1]["started_at"] >= rows[0]["finished_at"]
    assert rows[1]["result"]["run_ids"]
