"""A full disk and a read-only data folder, provoked for real in a subprocess: the command
stops with one clear line (no traceback), and everything stored before is still there, whole.

A full disk is a file-size limit (``RLIMIT_FSIZE``: writes past it fail with EFBIG, as on a full
disk they fail with ENOSPC); a read-only folder is ``chmod a-w`` with the capabilities that let
root ignore it dropped (tests and CI run as root).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys

import pytest

from core.forget.sets import random_forget_set
from core.forget.store import list_forget_sets, save_forget_set
from core.jobs import queue as jobs
from core.store.db import Store
from core.zoo.build import build_model_set, create_model_set, get_model_set
from tests.conftest import ROOT
from tests.fault_fixtures import (
    assert_kept,
    assert_whole,
    cli,
    fill,
    size_limit,
    snapshot,
    tmpfs,
    wait_for,
    without_override,
)
from tests.lab_fixtures import TINY

TRAIN = ("train", "--models", "2", "--epochs", "1", "--chunk-size", "1", "--seed", "40")


@pytest.fixture
def lab(db_path) -> Store:
    """Earlier results: a built model set and a forget set."""
    store = Store(db_path)
    build_model_set(store, create_model_set(store, "original", TINY, 2, seed=0, chunk_size=1))
    save_forget_set(store, random_forget_set(1347, 20, seed=0, name="r20"), "digits")
    return store


def _one_clear_line(res, needle: str) -> None:
    err = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and err.startswith("error: ") and needle in err, err


def test_a_full_disk_stops_the_cli_with_a_clear_message(lab):
    """The file-size limit stops the write-ahead log's first write: nothing stored."""
    before = snapshot(lab)
    res = cli(*TRAIN, db=lab.path, preexec=size_limit(500))
    _one_clear_line(res, "lab.duckdb: it reached the largest file size allowed")
    assert "at most 500 bytes" in res.stderr and "ulimit -f" in res.stderr
    _finishes_with_room(lab, before)


@contextlib.contextmanager
def full_set_folder(lab: Store, set_id: int):
    """The set's array-files folder on a tmpfs that is really full (the database beside it
    has room: a file-size limit would stop its checkpoint first); yields a function that
    gives it room. Unmounted afterwards."""
    folder = lab.files_dir / "model_sets" / str(set_id)
    with tmpfs(folder, "64k"):
        fill(folder, 0)
        yield lambda: subprocess.run(["mount", "-o", "remount,size=16m", str(folder)], check=True)


def test_a_full_disk_for_array_files_stops_the_cli_with_a_clear_message(lab):
    before = snapshot(lab)
    with full_set_folder(lab, 2) as make_room:
        res = cli(*TRAIN, db=lab.path)
        _one_clear_line(res, "no space left on the disk holding")
        assert ".weights.pt" in res.stderr, res.stderr
        make_room()
        _finishes_with_room(lab, before)


def _finishes_with_room(lab: Store, before) -> None:
    assert_whole(lab)
    assert_kept(before, snapshot(lab))
    again = cli(*TRAIN, "--json", db=lab.path)  # room again: the same command finishes
    assert again.returncode == 0, again.stderr
    assert get_model_set(lab, 2).status == "complete"
    assert_whole(lab)
    assert_kept(before, snapshot(lab))


def test_a_full_disk_fails_a_dashboard_job_clearly_and_resume_finishes(lab):
    """A job started as the dashboard starts one, its set's folder on a full disk: the job ends
    failed with the plain message; resumed with room, it finishes."""
    set_id = create_model_set(lab, "original", TINY, 4, seed=50, chunk_size=2)
    before = snapshot(lab)
    code = (
        "import sys; from core.jobs import queue as jobs; from core.store.db import Store; "
        f"print(jobs.start(Store(sys.argv[1]), 'build_models', {{'set_id': {set_id}}}))"
    )
    with full_set_folder(lab, set_id) as make_room:
        out = subprocess.run(
            [sys.executable, "-c", code, str(lab.path)], cwd=ROOT, capture_output=True,
            text=True, timeout=120, check=True,
        )  # fmt: skip
        job_id = int(out.stdout)
        wait_for(lambda: jobs.get_job(lab, job_id)["status"] in jobs.FINAL)
        job = jobs.get_job(lab, job_id)
        assert job["status"] == "failed" and job["message"].startswith("no space left on the disk")
        assert ".weights.pt" in job["message"] and "\n" not in job["message"]
        assert_whole(lab)
        assert_kept(before, snapshot(lab))
        make_room()
        jobs.resume(lab, job_id)
        wait_for(lambda: jobs.get_job(lab, job_id)["status"] in jobs.FINAL)
        assert jobs.get_job(lab, job_id)["status"] == "done"
        assert get_model_set(lab, set_id).status == "complete"
        assert_whole(lab)
        assert_kept(before, snapshot(lab))


def _read_only(lab: Store, folder):
    """``folder`` and all in it made read-only (restored afterwards); yields the
    ``preexec_fn`` under which that binds (None when not root)."""
    try:
        pre = without_override()
    except OSError as err:
        pytest.skip(f"root here cannot give up its override of file permissions ({err})")
    paths = [folder, *folder.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield pre
    for p in reversed(paths):
        p.chmod(modes[p])


@pytest.fixture
def read_only(lab):
    """The lab's folder read-only: its database and its array files."""
    yield from _read_only(lab, lab.path.parent)


@pytest.fixture(params=["data folder", "files folder"])
def read_only_part(request, lab):
    """The whole data folder read-only, or only the array files' folder."""
    folder = lab.path.parent if request.param == "data folder" else lab.files_dir
    for pre in _read_only(lab, folder):
        yield request.param, pre


def test_a_read_only_data_folder_is_refused_clearly_and_reads_still_work(lab, read_only):
    before = snapshot(lab)
    res = cli(*TRAIN, db=lab.path, preexec=read_only)
    _one_clear_line(res, f"the database {lab.path} is not writable")
    res = cli("forget-set", "create", "--k", "5", db=lab.path, preexec=read_only)
    _one_clear_line(res, "is not writable")
    res = cli("models", "--json", db=lab.path, preexec=read_only)  # reading is fine
    assert res.returncode == 0 and '"n_models": 2' in res.stdout, res.stderr
    assert not list(lab.path.parent.glob("*.wal"))
    assert_kept(before, snapshot(lab))
    assert_whole(lab)


DASHBOARD = """
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
at.button(key="home_demo").click().run()
print("EXC", [e.value for e in at.exception])
from tests.dashboard.test_probe_markdown import shown  # the text a reader sees (the page escapes Markdown)
print("ERR", [shown(e.value) for e in at.error])
"""


def test_a_read_only_data_folder_in_the_dashboard(lab, read_only_part):
    """The Home page opens and reads; its demo button says why nothing could start. Only the
    files folder read-only: the job's worker cannot write its log — the job was left queued
    for ever and the page showed a traceback (a PermissionError); now it fails, and says so."""
    part, pre = read_only_part
    before = snapshot(lab)
    res = subprocess.run(
        [sys.executable, "-c", DASHBOARD, str(ROOT / "dashboard" / "app.py")], cwd=ROOT,
        capture_output=True, text=True, timeout=180, preexec_fn=pre,
        env={**os.environ, "LAB_DB": str(lab.path)},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "EXC []" in res.stdout, res.stdout
    if part == "data folder":
        assert f"The job could not start: the database {lab.path} is not writable" in res.stdout
        assert jobs.list_jobs(lab).empty
    else:
        log_dir = lab.files_dir / "jobs"
        assert (
            f"The job could not start: job 1 cannot start its worker: cannot write {log_dir}: "
            "Permission denied; make the lab's folders writable" in res.stdout
        ), res.stdout
        job = jobs.get_job(lab, 1)
        assert job["status"] == "failed" and "cannot start its worker" in job["message"]
    assert_kept(before, snapshot(lab))
    assert len(list_forget_sets(lab)) == 1
