"""Processes killed mid-job and processes that share one database, provoked for real: each
test then checks that nothing stored before was lost or changed (rows and array-file bytes),
that the file is whole, and that the job ends where it should (resumed builds equal
uninterrupted ones). A full disk and a read-only folder: ``test_faults_disk.py``; a Ray worker
lost mid-chunk: ``test_ray.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.forget.store import list_forget_sets
from core.jobs import queue as jobs
from core.store.db import Store
from core.zoo.build import (
    build_model_set,
    create_model_set,
    done_chunks,
    get_model_set,
    load_margins,
)
from tests.conftest import ROOT
from tests.fault_fixtures import assert_kept, assert_whole, cli, snapshot, wait_for
from tests.lab_fixtures import TINY

APP = str(ROOT / "dashboard" / "app.py")
SLOW = TINY.replace(epochs=6)  # ~1 s a chunk of 2 models: time to act mid-build
BUILD = dict(n_models=12, seed=11, chunk_size=2)  # 6 chunks
LONG = 24  # models of a 12-chunk build


@pytest.fixture
def lab(db_path) -> Store:
    """Earlier results: a built model set."""
    store = Store(db_path)
    build_model_set(store, create_model_set(store, "original", TINY, 2, seed=0, chunk_size=1))
    return store


def _new_build(store: Store, n_models: int = BUILD["n_models"]) -> int:
    b = dict(BUILD)
    b.pop("n_models")
    return create_model_set(store, "original", SLOW, n_models, **b)


def _reference(tmp_path, n_models: int = BUILD["n_models"]) -> np.ndarray:
    """The margins of the same build, uninterrupted, in a store of its own."""
    ref = Store(tmp_path / "ref.duckdb")
    set_id = _new_build(ref, n_models)
    build_model_set(ref, set_id)
    return load_margins(ref, set_id)


# the dashboard's server: the app opened once (store checked, dead workers' jobs resumed),
# then a build started the way its pages start one; it then waits, as a server does
SERVER = """
import sys, time
from streamlit.testing.v1 import AppTest

AppTest.from_file(sys.argv[1], default_timeout=120).run()
page = (
    "from dashboard.jobs_panel import start_job; "
    f"start_job('build_models', {{'set_id': {int(sys.argv[2])}, 'device': 'cpu'}})"
)
at = AppTest.from_string(page, default_timeout=120).run()
assert not at.exception and not at.error, (at.exception, at.error)
print("started", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("also_worker", [False, True], ids=["server", "server-and-worker"])
def test_a_server_killed_mid_job(lab, tmp_path, also_worker):
    """kill -9 of the dashboard's server while its job builds. The worker runs in a session of
    its own, so it finishes the job alone. Killed with it (the machine stopped), the job is
    marked interrupted when the dashboard next starts, resumed from its last chunk, and ends
    equal to an uninterrupted build."""
    before = snapshot(lab)
    # 12 chunks: the server's start-up (two app runs) overlaps the build, and the kill must
    # still land mid-build (6 chunks had all finished by then once, on a quiet machine)
    set_id = _new_build(lab, LONG)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, APP, str(set_id)], cwd=ROOT, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "LAB_DB": str(lab.path)},
    )  # fmt: skip
    try:
        assert server.stdout.readline().strip() == "started"
        job_id = int(jobs.list_jobs(lab)["id"][0])
        wait_for(lambda: len(done_chunks(lab, set_id)) >= 1)
        worker = int(jobs.get_job(lab, job_id)["pid"])
        server.kill()
        if also_worker:
            os.kill(worker, signal.SIGKILL)
        server.wait(timeout=30)
    finally:
        server.kill()
    if also_worker:
        wait_for(lambda: not jobs._alive(worker), timeout=30)
        kept = done_chunks(lab, set_id)
        assert 1 <= len(kept) < LONG // 2, "killed mid-job"
        assert jobs.get_job(lab, job_id)["status"] == "running"  # as it was left
        mid = snapshot(lab)  # the chunks it had committed
        at = AppTest.from_file(APP, default_timeout=120).run()  # the dashboard starts again
        assert not at.exception
        assert jobs.get_job(lab, job_id)["status"] in ("queued", "running", "done")
    wait_for(lambda: jobs.get_job(lab, job_id)["status"] in jobs.FINAL)
    assert jobs.get_job(lab, job_id)["status"] == "done"
    assert get_model_set(lab, set_id).status == "complete"
    assert_whole(lab)
    assert_kept(before, snapshot(lab))
    if also_worker:
        assert_kept(mid, snapshot(lab))
        np.testing.assert_array_equal(load_margins(lab, set_id), _reference(tmp_path, LONG))


def test_a_worker_killed_while_the_dashboard_runs(lab):
    """The jobs panel polls its jobs: a worker killed (kill -9, out of memory) while the
    dashboard runs is shown interrupted at the next poll, with Resume — it stayed "running"
    until the dashboard restarted. Resume from the panel finishes the build."""
    before = snapshot(lab)
    # the dashboard is up before the job starts (its start-up can outlast a short build on a
    # busy machine), and the build is long: the kill lands mid-build
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/models.py").run()
    assert not at.exception
    set_id = create_model_set(lab, "original", SLOW, 24, seed=70, chunk_size=2)  # 12 chunks
    job_id = jobs.start(lab, "build_models", {"set_id": set_id, "device": "cpu"})
    wait_for(lambda: done_chunks(lab, set_id))
    worker = int(jobs.get_job(lab, job_id)["pid"])
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not jobs._alive(worker), timeout=30)
    assert len(done_chunks(lab, set_id)) < 12, "the build had finished before the kill"
    mid = snapshot(lab)
    at.run()  # the panel's next poll
    assert not at.exception
    assert jobs.get_job(lab, job_id)["status"] == "interrupted"
    assert any(f"job {job_id}" in c.value and "interrupted" in c.value for c in at.caption)
    at.button(key=f"resume_{job_id}").click().run()
    wait_for(lambda: jobs.get_job(lab, job_id)["status"] in jobs.FINAL)
    assert jobs.get_job(lab, job_id)["status"] == "done"
    assert_whole(lab)
    assert_kept(before, snapshot(lab))
    assert_kept(mid, snapshot(lab))


# a dashboard: the Forget sets page saves sets (writes), the Models page lists (reads)
DASHBOARD = """
import json, sys
from streamlit.testing.v1 import AppTest

tag, n = sys.argv[2], int(sys.argv[3])
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
at.switch_page("views/forget_sets.py").run()
saved, said = [], []
for i in range(n):
    at.radio(key="fs_kind").set_value("random").run()
    at.number_input(key="fs_k").set_value(5)
    at.number_input(key="fs_seed").set_value(i)
    at.text_input(key="fs_name").set_value(f"{tag}-{i}")
    at.button(key="fs_preview_btn").click().run()
    at.button(key="fs_save").click().run()
    if any("Saved as forget set" in s.value for s in at.success):
        saved.append(f"{tag}-{i}")
    said += [e.value for e in (*at.error, *at.exception)]
at.switch_page("views/models.py").run()
said += [e.value for e in (*at.error, *at.exception)]
print(json.dumps({"saved": saved, "said": said}))
"""


def test_two_dashboards_and_the_cli_beside_a_running_job(lab):
    """DuckDB lets one process write at a time; every access is a short connection that waits
    for a held lock (``LAB_DB_TIMEOUT``), so two dashboards, the CLI and a job's worker take
    turns: every save lands once, the job finishes, the file stays whole."""
    before = snapshot(lab)
    set_id = _new_build(lab)
    job_id = jobs.start(lab, "build_models", {"set_id": set_id, "device": "cpu"})
    wait_for(lambda: done_chunks(lab, set_id))  # the worker writes
    env = {**os.environ, "LAB_DB": str(lab.path)}
    dashboards = [
        subprocess.Popen(
            [sys.executable, "-c", DASHBOARD, APP, tag, "2"],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for tag in ("left", "right")
    ]
    cli_saved = []
    for i in range(2):
        res = cli("forget-set", "create", "--k", "5", "--seed", str(10 + i), "--name", f"cli-{i}",
                  "--json", db=lab.path)  # fmt: skip
        assert res.returncode == 0, res.stderr
        cli_saved.append(f"cli-{i}")
        res = cli("models", "--json", db=lab.path)
        assert res.returncode == 0, res.stderr
    outs = []
    for d in dashboards:
        out, err = d.communicate(timeout=300)
        assert d.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    for o in outs:
        assert o["said"] == [], o["said"]  # no error, no exception on either page
        assert len(o["saved"]) == 2
    wait_for(lambda: jobs.get_job(lab, job_id)["status"] in jobs.FINAL)
    assert jobs.get_job(lab, job_id)["status"] == "done"
    names = list_forget_sets(lab)["name"].tolist()
    assert sorted(names) == sorted(cli_saved + [n for o in outs for n in o["saved"]])
    assert get_model_set(lab, set_id).status == "complete"
    assert_whole(lab)
    assert_kept(before, snapshot(lab))


def test_a_held_database_gives_the_cli_a_clear_message(lab):
    """A process that keeps the file open for writing past ``LAB_DB_TIMEOUT``: the CLI's read
    and write both say who holds it, in one line, and change nothing."""
    before = snapshot(lab)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, time
            con = duckdb.connect({str(lab.path)!r})
            print("holding", flush=True)
            time.sleep(120)
        """)], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "holding"
        env = {"LAB_DB_TIMEOUT": "0.5"}
        for args in (("forget-set", "create", "--k", "5"), ("models",)):
            res = cli(*args, db=lab.path, env=env)
            last = res.stderr.strip().splitlines()[-1]
            assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
            assert last == (
                f"error: the database {lab.path} is in use by another process (process "
                f"{holder.pid}); wait for it to finish or stop it (e.g. close the dashboard's "
                "running job), then retry"
            )
    finally:
        holder.kill()
        holder.wait()
    assert_whole(lab)
    assert_kept(before, snapshot(lab))
    assert list_forget_sets(lab).empty


def _other_process_opens(path) -> bool:
    """Whether another process can open the database for writing right now."""
    code = f"import duckdb; duckdb.connect({str(path)!r}).close()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_the_lock_holds_while_the_store_checks_the_file(lab):
    """Found by the test above (a CLI write failed with "Could not read enough bytes"): the
    file checks read the database with open() … close(), and closing any descriptor of a file
    drops the process's POSIX locks on it — DuckDB's too — so a second process could write
    into the file beside a connection. Checked with a connection open, after a second one in
    the same process (another dashboard session) opened, checked and closed."""
    for read_only in (False, True):
        with lab.connect(read_only=read_only) as con:
            con.execute("SELECT count(*) FROM model_sets").fetchall()
            assert not _other_process_opens(lab.path)
            other = Store(lab.path)  # a fresh Store checks every block on first use
            if read_only:
                assert len(other.query_df("SELECT * FROM model_sets")) == 1
            else:
                with other.transaction() as c2:
                    c2.execute("SELECT 1")
            assert not _other_process_opens(lab.path)
        assert _other_process_opens(lab.path)  # released when the last connection closed


def test_a_read_waits_for_a_write_in_another_thread(lab, monkeypatch):
    """Two sessions of one dashboard server are two threads of one process: a read while the
    other session writes failed at once ("Can't open a connection to same database file with
    a different configuration"); it now waits for the write, as for another process's."""
    import threading

    import core.store.db

    holding, release, retried = threading.Event(), threading.Event(), threading.Event()
    real_sleep = core.store.db.time.sleep

    def sleep(s):
        retried.set()
        real_sleep(s)

    def writer():
        with lab.transaction() as con:
            con.execute("DELETE FROM meta WHERE key = 'nothing'")
            holding.set()
            release.wait(30)

    monkeypatch.setattr(core.store.db.time, "sleep", sleep)
    t = threading.Thread(target=writer)
    t.start()
    assert holding.wait(30)
    out = {}
    reader = threading.Thread(target=lambda: out.update(n=len(Store(lab.path).query_df(
        "SELECT * FROM model_sets"))))  # fmt: skip
    reader.start()
    assert retried.wait(30)  # the read found the write's connection and waits
    release.set()
    t.join(30)
    reader.join(30)
    assert out == {"n": 1}


def test_a_worker_dead_before_its_job_began_is_not_left_starting(lab, monkeypatch):
    """A worker that dies before it marks its job running (a broken environment here; a full
    disk or no memory elsewhere) left the job "queued — starting" for ever: the jobs panel now
    shows it interrupted, with its log named, and Resume runs it."""
    set_id = create_model_set(lab, "original", TINY, 2, seed=60)
    at = AppTest.from_file(APP, default_timeout=120).run()  # the dashboard is up
    at.switch_page("views/models.py").run()
    job_id = jobs.submit(lab, "build_models", {"set_id": set_id, "device": "cpu"})
    monkeypatch.setenv("LAB_DB_TIMEOUT", "soon")  # the worker refuses to start
    assert jobs.launch(lab, job_id).wait(timeout=120) == 2
    monkeypatch.delenv("LAB_DB_TIMEOUT")
    assert jobs.get_job(lab, job_id)["status"] == "queued"  # as the worker left it
    at.run()  # the panel's next poll
    assert not at.exception
    job = jobs.get_job(lab, job_id)
    assert job["status"] == "interrupted" and "before the job began" in job["message"]
    at.button(key=f"resume_{job_id}").click().run()
    wait_for(lambda: jobs.get_job(lab, job_id)["status"] in jobs.FINAL)
    assert jobs.get_job(lab, job_id)["status"] == "done"
    assert get_model_set(lab, set_id).status == "complete"
