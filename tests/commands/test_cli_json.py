"""Every command's ``--json`` output is strict JSON (no NaN / Infinity), on a tiny lab."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core.cli import plain
from core.jobs import queue as jobs
from core.store.db import Store
from tests.commands.test_cli import cli


def _refuse(name: str):
    raise ValueError(f"not JSON: {name}")


def strict(*args: str, db) -> dict:
    """Run ``python -m core ARGS --json`` and parse its stdout, refusing NaN and ±Infinity."""
    res = cli(*args, "--json", db=db)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout, parse_constant=_refuse)
    assert isinstance(out, dict)
    return out


def test_plain_makes_json_values():
    value = {
        "nan": float("nan"), "inf": np.float32("-inf"), "n": np.int64(3), "b": np.bool_(True),
        "when": pd.Timestamp("2026-01-02 03:04:05"), "never": pd.NaT, "na": pd.NA,
        "arr": np.array([1.5, np.nan]), "t": (1, 2), 7: "key",
    }  # fmt: skip
    assert plain(value) == {
        "nan": None, "inf": None, "n": 3, "b": True, "when": "2026-01-02T03:04:05",
        "never": None, "na": None, "arr": [1.5, None], "t": [1, 2], "7": "key",
    }  # fmt: skip
    assert math.isnan(value["nan"])  # the input is left as it was


@pytest.mark.timeout(1200)  # one CLI process per command: slow on a loaded machine
def test_every_command_prints_strict_json(db_path):
    out = strict("linear", "--steps", "20", db=db_path)
    assert set(out["methods"]) >= {"GD", "OM"}
    out = strict("train", "--models", "2", "--epochs", "1", db=db_path)
    assert out["n_models"] == 2 and out["status"] == "complete"
    assert isinstance(out["created_at"], str)
    assert strict("models", db=db_path)["model_sets"][0]["id"] == out["id"]
    fs = strict("forget-set", "create", "--kind", "random", "--k", "10", db=db_path)
    assert len(fs["indices"]) == 10
    assert strict("forget-set", "list", db=db_path)["forget_sets"][0]["id"] == fs["id"]
    assert strict("forget-set", "show", str(fs["id"]), db=db_path)["indices"] == fs["indices"]
    fid = str(fs["id"])
    assert set(strict("oracles", "--forget-set", fid, "--models", "2", db=db_path)) == {
        "oracle_set_id",
        "floor_set_id",
    }
    ev = strict("evaluate", "--forget-set", fid, db=db_path)
    assert "forget/klom" in ev["summaries"]
    rows = strict("collateral", "--run", str(ev["run_id"]), db=db_path)["rows"]
    assert [r["decile"] for r in rows] == [*range(1, 11)] * 2  # retain, then val

    # a queued job has no start, no elapsed time and no estimate: NaN / NaT in the listing
    job_id = jobs.submit(Store(db_path), "demo", {"models": 2})
    listed = strict("jobs", db=db_path)["jobs"]
    assert listed[0]["id"] == job_id and listed[0]["eta_s"] is None
    assert listed[0]["started_at"] is None and isinstance(listed[0]["created_at"], str)
    # listing pumps the queue, so the job may have started by now: it ends cancelled either way
    row = strict("jobs", "cancel", str(job_id), db=db_path)["jobs"][0]
    assert row["status"] in ("cancelled", "running"), row
    from tests.jobs.test_jobs import wait_for

    wait_for(lambda: jobs.get_job(Store(db_path), job_id)["status"] in jobs.FINAL)
    done = jobs.get_job(Store(db_path), job_id)
    assert done["status"] == "cancelled", done

    demo = strict("demo", "--models", "2", "--epochs", "1", db=db_path)
    assert len(demo["evaluations"]) == 3
    assert strict("forget-set", "delete", fid, db=db_path) == {"deleted": fs["id"]}


def test_models_needed_card_and_reproduce_print_strict_json(tmp_path):
    """``models-needed``, ``card`` and ``reproduce`` with ``--json``, on one tiny lab (4 models
    a side)."""
    from core.evaluation.run import evaluate
    from tests.lab_fixtures import tiny_lab

    lab = tiny_lab(tmp_path / "lab.duckdb", n_models=4)
    run = evaluate(lab["store"], lab["forget_set"], "do_nothing")
    out = strict("models-needed", "--forget-set", str(lab["forget_set"]), "--run", str(run),
                 "--sizes", "2,4", "--draws", "2", db=tmp_path / "lab.duckdb")  # fmt: skip
    assert out["sizes"] == [2, 4] and len(out["table"]) == 6
    assert all(r["resolved"] is None for r in out["table"] if r["n"] == 4)
    c = strict("card", str(run), db=lab["store"].path)
    assert c["run_id"] == run and c["figures"]["forget"]["klom_p95"] is not None
    assert (
        strict("card", "--set", str(lab["oracle"]), db=lab["store"].path)["set_id"] == lab["oracle"]
    )
    (tmp_path / "card.json").write_text(json.dumps(c))
    rep = strict("reproduce", str(tmp_path / "card.json"), db=tmp_path / "new.duckdb")
    assert rep["ok"] and rep["match"] == "exact" and rep["card_id"] == run
