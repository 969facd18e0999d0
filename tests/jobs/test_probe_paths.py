"""Issue 22, item 1: a job started from another folder with relative paths runs against the
lab it was started for (its worker runs in the repository, so every path it inherits must be
absolute before it crosses the process boundary)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from core.jobs import queue as jobs
from core.store.db import Store, resolve_db_path
from core.zoo.build import create_model_set, get_model_set
from tests.lab_fixtures import TINY


def test_a_relative_db_from_another_folder_is_the_job_s_lab(tmp_path, monkeypatch):
    here = tmp_path / "elsewhere"
    (here / "sub").mkdir(parents=True)
    monkeypatch.chdir(here)
    monkeypatch.delenv("LAB_DB", raising=False)
    store = Store("sub/lab.duckdb")  # relative to this folder, not to the repository
    set_id = create_model_set(store, "original", TINY, 2)
    job_id = jobs.submit(store, "build_models", {"set_id": set_id, "device": "cpu"})
    proc = jobs.launch(store, job_id)
    assert proc.wait(timeout=180) == 0, (
        (here / "sub").joinpath("lab.files", "jobs", f"{job_id}.log").read_text()
    )
    job = jobs.get_job(Store(here / "sub" / "lab.duckdb"), job_id)
    assert job["status"] == "done" and job["result"] == {"set_id": set_id}
    assert get_model_set(store, set_id).status == "complete"


def test_paths_handed_to_the_worker_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAB_DB", "rel.duckdb")
    monkeypatch.setenv("LAB_DATA_ROOT", "datasets")
    monkeypatch.setenv("LAB_LOG", "logs/errors.log")
    assert resolve_db_path() == tmp_path / "rel.duckdb"
    assert resolve_db_path("a/b.duckdb") == tmp_path / "a" / "b.duckdb"
    seen = {}

    class Proc:
        pid = 0

    def fake_popen(cmd, **kw):
        seen.update(cmd=cmd, **kw)
        return Proc()

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    monkeypatch.setattr(jobs, "process_start", lambda pid: None)
    store = Store()
    set_id = create_model_set(store, "original", TINY, 2)
    jobs.launch(store, jobs.submit(store, "build_models", {"set_id": set_id, "device": "cpu"}))
    assert seen["cmd"][seen["cmd"].index("--db") + 1] == str(tmp_path / "rel.duckdb")
    env = seen["env"]
    assert env["LAB_DATA_ROOT"] == str(tmp_path / "datasets")
    assert env["LAB_LOG"] == str(tmp_path / "logs" / "errors.log")
    assert env["LAB_DB"] == str(tmp_path / "rel.duckdb")
    assert str(seen["stdout"].name).startswith(str(tmp_path))


def test_a_fifo_or_device_as_the_database_is_refused_at_once(tmp_path):
    """``--db`` naming a FIFO blocked forever (opening it waits for a writer); ``--db /dev/null``
    was called a damaged database and its user advised to delete it."""
    import os
    import sys

    from tests.conftest import ROOT

    fifo = tmp_path / "db.fifo"
    os.mkfifo(fifo)
    for db, args in ((fifo, ["models"]), ("/dev/null", ["models"]),
                     ("/dev/null", ["forget-set", "create", "--kind", "random", "--k", "5"])):  # fmt: skip
        res = subprocess.run([sys.executable, "-m", "core", *args, "--db", str(db)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert res.returncode == 2, res.stderr
        assert res.stderr == f"error: the database path {db} is a device, FIFO or socket\n"
        assert "delete" not in res.stderr
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_the_error_log_falls_back_to_a_private_folder(tmp_path, monkeypatch):
    """With no folder beside the database, the traceback went to ``/tmp/lab-errors.log``, a
    file in a folder every user may write (one could place a link there, or read it)."""
    import os
    import stat
    import tempfile

    from core import cli

    monkeypatch.delenv("LAB_LOG", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    where = cli._log_traceback(KeyError("x"), tmp_path / "missing" / "lab.duckdb")
    private = tmp_path / f"unlearning-lab-{os.getuid()}"
    assert where == str(private / "lab-errors.log") and "KeyError" in Path(where).read_text()
    assert stat.S_IMODE(os.lstat(private).st_mode) == 0o700
    # a folder of that name that others may write (or a link to one) is not used
    os.chmod(private, 0o777)
    assert cli._private_dir() is None
    private.rename(tmp_path / "other")
    private.symlink_to(tmp_path / "other")
    os.chmod(tmp_path / "other", 0o700)
    assert cli._private_dir() is None
