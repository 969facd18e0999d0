"""The model-zoo and KLoM commands as real subprocesses: JSON, progress, refusals."""

from __future__ import annotations

import json

import pytest

from core.store.db import Store
from core.zoo.build import list_model_sets
from tests.commands.test_cli import cli


def test_train_models_forget_set_oracles_evaluate(db_path, tmp_path):
    res = cli("train", "--models", "3", "--epochs", "2", "--json", db=db_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["id"] == 1 and out["n_models"] == 3 and out["status"] == "complete"
    assert 0.5 < out["mean_val_acc"] <= 1.0
    res = cli(
        "train",
        "--models",
        "2",
        "--epochs",
        "1",
        "--kind",
        "subset",
        "--fraction",
        "0.5",
        db=db_path,
    )
    assert res.returncode == 0 and "subset" in res.stdout
    listed = json.loads(cli("models", "--json", db=db_path).stdout)["model_sets"]
    assert [m["kind"] for m in listed] == ["subset", "original"]

    res = cli(
        "forget-set",
        "create",
        "--kind",
        "class",
        "--cls",
        "3",
        "--fraction",
        "0.1",
        "--json",
        db=db_path,
    )
    assert res.returncode == 0, res.stderr
    fs = json.loads(res.stdout)
    assert fs["kind"] == "class" and fs["id"] == 1
    up = tmp_path / "ids.csv"
    up.write_text("index\n4\n8\n8\n15\n")
    res = cli("forget-set", "create", "--kind", "upload", "--file", str(up), "--json", db=db_path)
    assert res.returncode == 0 and json.loads(res.stdout)["indices"] == [4, 8, 15]
    assert "duplicate" in json.loads(res.stdout)["warnings"][0]

    res = cli("oracles", "--forget-set", "1", "--models", "3", "--json", db=db_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"oracle_set_id": 3, "floor_set_id": 4}
    res = cli("evaluate", "--forget-set", "1", "--method", "do_nothing", "--json", db=db_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out["summaries"]) == {
        f"{s}/{m}" for s in ("forget", "retain", "val") for m in ("klom", "floor")
    }
    assert out["summaries"]["forget/klom"]["count"] == fs["params"]["k"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--dataset", "mnist"], "unknown dataset"),
        (["train", "--arch", "transformer"], "unknown architecture"),
        (["train", "--models", "0"], "models must be at least 1"),
        (["train", "--kind", "subset", "--fraction", "1.5"], "fraction"),
        (
            ["train", "--dataset", "cifar10", "--data-root", "/nonexistent/cifar"],
            "/nonexistent/cifar",
        ),
        (["forget-set", "create", "--kind", "random", "--k", "0"], "k must be at least 1"),
        (["forget-set", "create", "--kind", "random", "--k", "1347"], "at most"),
        (["forget-set", "create", "--kind", "manual", "--indices", "1,x"], "not an integer"),
        (["forget-set", "create", "--kind", "manual", "--indices", "5000"], "5000"),
        (
            ["forget-set", "create", "--kind", "manual", "--indices", "1,x,5000,7,-2"],
            "3 entries are not train indices (valid indices are 0 to 1346): item 2: 'x' is not "
            "an integer; item 3: 5000 is out of range; item 5: -2 is out of range",
        ),
        (["forget-set", "create", "--kind", "manual", "--indices", ""], "empty"),
        (["forget-set", "create", "--kind", "random"], "needs --k"),
        (
            ["forget-set", "create", "--kind", "random", "--preset", "random-50"],
            "cannot be combined",
        ),
        (["forget-set", "create", "--kind", "preset"], "needs --preset NAME"),
        (["forget-set", "create", "--preset", "random-7"], "unknown preset"),
        (["forget-set", "show", "77"], "no forget set with id 77"),
        (["oracles", "--forget-set", "77"], "no forget set with id 77"),
        (["evaluate", "--forget-set", "77"], "no forget set with id 77"),
        (["jobs", "cancel", "77"], "no job with id 77"),
    ],
)
def test_bad_input_is_refused_clearly(db_path, args, needle):
    Store(db_path).create()  # an empty lab (a missing one is refused before any id is looked up)
    res = cli(*args, db=db_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    if db_path.exists():
        assert list_model_sets(Store(db_path)).empty


def test_preset_flag_alone_creates_the_preset(db_path):
    """Probe: ``forget-set create --preset knn-pixel-20`` (no --kind) answered "k must be a whole
    number, got None": --kind defaulted to random and the preset was ignored."""
    res = cli("forget-set", "create", "--preset", "knn-pixel-20", "--json", db=db_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (
        out["name"] == "knn-pixel-20" and out["kind"] == "knn_pixel" and len(out["indices"]) == 20
    )


def test_malformed_upload(db_path, tmp_path):
    bad = tmp_path / "ids.json"
    bad.write_text("{not json")
    res = cli("forget-set", "create", "--kind", "upload", "--file", str(bad), db=db_path)
    assert res.returncode == 2 and "not valid JSON" in res.stderr


def test_train_resumes_after_kill_9_and_models_delete(db_path):
    """Review item: after ``kill -9`` of ``train``, rerunning it started a new set from
    scratch and orphaned the unfinished one; no command resumed or deleted it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.commands.test_cli import ROOT

    # 20 chunks: the build is still running when the first is seen, on a quiet machine too
    args = ["train", "--models", "40", "--epochs", "30", "--chunk-size", "2", "--db", str(db_path)]
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 90
    store = None
    while time.monotonic() < deadline:  # wait for the first committed chunk, then kill -9
        time.sleep(0.2)
        if db_path.exists():
            try:
                store = Store(db_path)
                done = store.query_df("SELECT count(*) AS n FROM model_chunks")["n"][0]
            except Exception:  # the file is busy or still being created
                continue
            if done >= 1:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store is not None
    sets = list_model_sets(store)
    assert len(sets) == 1 and sets["status"][0] == "building"
    listed = cli("models", db=db_path)
    assert "unfinished (" in listed.stdout and "resume" in listed.stdout
    res = subprocess.run([sys.executable, "-m", "core", *args, "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["id"] == 1  # the same set, finished
    sets = list_model_sets(store)
    assert len(sets) == 1 and sets["status"][0] == "complete" and sets["models_done"][0] == 40

    res = cli("models", "delete", "1", "--json", db=db_path)
    assert res.returncode == 0, res.stderr
    assert list_model_sets(store).empty and not store.file_path("model_sets/1").exists()
    res = cli("models", "delete", "1", db=db_path)
    assert res.returncode == 2 and "no model set with id 1" in res.stderr


def test_builds_that_could_never_finish_are_refused_before_any_row(db_path):
    """Review item: ``train --kind subset --fraction 1e-9`` and ``oracles`` on a forget set of
    1,346 of 1,347 points left 'building' rows that could never complete."""
    assert cli("train", "--models", "2", "--epochs", "1", db=db_path).returncode == 0
    res = cli("forget-set", "create", "--kind", "random", "--k", "1346", db=db_path)
    assert res.returncode == 0, res.stderr
    before = list_model_sets(Store(db_path))
    files = sorted(p.name for p in (db_path.parent / "lab.files").rglob("*"))
    for args in (
        ("oracles", "--forget-set", "1"),
        ("train", "--kind", "subset", "--fraction", "1e-9", "--models", "2"),
        ("train", "--seed", "-5", "--models", "2"),
        ("train", "--seed", "100000", "--models", "2"),  # set 1's seeds: overlap
        ("train", "--device", "bogus", "--models", "2"),
    ):
        res = cli(*args, db=db_path)
        assert res.returncode == 2, (args, res.stderr)
        last = res.stderr.strip().splitlines()[-1]  # argparse's own refusals follow a usage line
        assert "error: " in last and "Traceback" not in res.stderr
    after = list_model_sets(Store(db_path))
    assert after[["id", "status"]].equals(before[["id", "status"]])
    assert sorted(p.name for p in (db_path.parent / "lab.files").rglob("*")) == files
