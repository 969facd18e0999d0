"""Datamodel-Direct's accuracy (issue 22, item 13): with a logits datamodel it is argmax accuracy
(recomputed here from the shifted logits); with a margin datamodel only margins are predicted, so
it is the share of positive margins — a lower bound of argmax accuracy — and labelled so in the
run's info, the summaries, the Compare table and the CLI JSON."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.attribution.datamodels import load_weights
from core.evaluation.compare import runs_table
from core.evaluation.run import accuracy_kind, evaluate, evaluation, evaluation_margins
from core.zoo.build import load_ensemble
from core.zoo.data import load_dataset
from tests.lab_fixtures import tiny_datamodel, tiny_lab

SUBSETS = 20  # the fewest subset models a fit takes
N_TRAIN, N_POINTS = 1347, 1797


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = tiny_lab(tmp_path_factory.mktemp("dmacc") / "lab.duckdb", n_models=2)
    store = lab["store"]
    lab["logits_dm"] = tiny_datamodel(store, lab["original"], "logits", SUBSETS)
    lab["logits_run"] = evaluate(store, lab["forget_set"], "dm_direct")  # the only datamodel
    lab["margin_dm"] = tiny_datamodel(store, lab["original"], "margin", SUBSETS)
    lab["margin_run"] = evaluate(store, lab["forget_set"], "dm_direct", recompute=True)
    return lab


def _splits(forget: np.ndarray) -> dict[str, np.ndarray]:
    retain = np.array([i for i in range(N_TRAIN) if i not in set(forget.tolist())])
    return {"forget": forget, "retain": retain, "val": np.arange(N_TRAIN, N_POINTS)}


def _stored(store, run: int) -> dict[str, tuple[float, str]]:
    s = evaluation(store, run)["summaries"]
    k = s[s["metric"] == "klom"]
    return {r.split: (r.accuracy, r.accuracy_kind) for r in k.itertuples()}


def test_logits_datamodel_run_stores_argmax_accuracy(lab):
    store, f = lab["store"], lab["forget"]
    assert store.run(lab["logits_run"])["config"]["info"]["datamodel_id"] == lab["logits_dm"]
    w, _ = load_weights(store, lab["logits_dm"])  # (n_points, K, n_train)
    x, y = load_dataset("digits").all_points()
    z = load_ensemble(store, lab["original"], "cpu").logits(x).numpy().astype(np.float64)
    for j in f:  # a naive sum of the forget set's weights
        z -= w[None, :, :, j]
    hit = z.argmax(-1) == y.numpy()[None]  # (N, n_points)
    stored = _stored(store, lab["logits_run"])
    for split, idx in _splits(f).items():
        acc, kind = stored[split]
        assert kind == "argmax"
        assert acc == pytest.approx(hit[:, idx].mean(), abs=1e-9), split


def test_margin_datamodel_run_is_labelled_positive_margin_share(lab, tmp_path):
    store, f, run = lab["store"], lab["forget"], lab["margin_run"]
    cfg = store.run(run)["config"]
    assert cfg["info"]["datamodel_id"] == lab["margin_dm"]
    assert cfg["info"]["accuracy_kind"] == "positive-margin share"
    margins = evaluation_margins(store, run)[0]  # (N, n_points)
    stored = _stored(store, run)
    for split, idx in _splits(f).items():
        acc, kind = stored[split]
        assert kind == "positive-margin share"
        share = sum(int(m > 0) for m in margins[:, idx].ravel()) / margins[:, idx].size
        assert acc == pytest.approx(share, abs=1e-9), split
    # the noise-floor oracles' accuracy beside it stays argmax
    s = evaluation(store, run)["summaries"]
    assert set(s.loc[s["metric"] == "floor", "accuracy_kind"]) == {"argmax"}
    # Compare's table marks the row, and only that one
    table = runs_table(store, lab["forget_set"]).set_index("run_id")
    assert table.loc[run, "acc_kind"] == "positive-margin share"
    assert table.loc[lab["logits_run"], "acc_kind"] == "argmax"
    # the CLI's JSON (a copy of the lab: the evaluation is reused, not run again)
    from tests.commands.test_cli import cli

    shutil.copy(store.path, tmp_path / "copy.duckdb")
    shutil.copytree(store.files_dir, tmp_path / "copy.files")
    res = cli("evaluate", "--forget-set", str(lab["forget_set"]), "--method", "dm_direct",
              "--json", db=tmp_path / "copy.duckdb")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["run_id"] == run
    assert out["summaries"]["forget/klom"]["accuracy_kind"] == "positive-margin share"
    assert out["summaries"]["forget/floor"]["accuracy_kind"] == "argmax"


def test_runs_stored_before_the_label_are_derived():
    old_margin = {"info": {"datamodel_target": "margin"}}  # no accuracy_kind recorded
    assert accuracy_kind("dm_direct", old_margin) == "positive-margin share"
    assert accuracy_kind("dm_direct", {"info": {"datamodel_target": "logits"}}) == "argmax"
    assert accuracy_kind("gradient_descent", {"options": {}}) == "argmax"


def test_pages_label_the_positive_margin_share(lab, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    store = lab["store"]
    shutil.copy(store.path, tmp_path / "lab.duckdb")
    shutil.copytree(store.files_dir, tmp_path / "lab.files")
    monkeypatch.setenv("LAB_DB", str(tmp_path / "lab.duckdb"))
    app = str(ROOT / "dashboard" / "app.py")
    note = "**positive-margin share**"
    for run, shown in ((lab["margin_run"], True), (lab["logits_run"], False)):
        at = AppTest.from_file(app, default_timeout=120)
        at.query_params["run"] = str(run)
        at.switch_page("views/klom.py").run()
        assert not at.exception, at.exception
        assert at.selectbox(key="klom_eval").value == run
        assert (note in "\n".join(c.value for c in at.caption)) is shown
    at = AppTest.from_file(app, default_timeout=120)
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("run_id")
    assert table.loc[lab["margin_run"], "acc_kind"] == "positive-margin share"
    assert table.loc[lab["logits_run"], "acc_kind"] == "argmax"
