"""Datamodels on a tiny lab: fitting from subset models, Datamodel-Direct against the shift
computed by hand, DMM with exact cost accounting, recipe mismatches refused, the readers."""

from __future__ import annotations

import numpy as np
import pytest

from core.attribution.datamodels import (
    get_datamodel,
    list_datamodels,
    load_lds,
    load_weights,
    moved_by_forget_set,
    self_influence,
    top_influencers,
)
from core.attribution.fit import DEFAULT_MODELS, fit_datamodel
from core.common.errors import ConfigError
from core.evaluation.run import evaluate, evaluation, evaluation_margins
from core.zoo.build import create_model_set, get_model_set, load_ensemble, load_margins
from tests.lab_fixtures import TINY, tiny_datamodel, tiny_lab

SUBSETS = 40  # tiny subset models (2 epochs each)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = tiny_lab(tmp_path_factory.mktemp("dm") / "lab.duckdb", n_models=4)
    with pytest.raises(ConfigError) as err:  # before any datamodel exists
        evaluate(lab["store"], lab["forget_set"], "dm_matching", budget=0.1)
    lab["no_datamodel_error"] = str(err.value)
    lab["logits_dm"] = tiny_datamodel(lab["store"], lab["original"], "logits", SUBSETS)
    return lab


def test_fit_stores_weights_scores_and_the_recipe(lab):
    store = lab["store"]
    dm = get_datamodel(store, lab["logits_dm"])
    sub = get_model_set(store, dm.subset_set_id)
    assert (sub.kind, sub.fraction, sub.recipe_id) == ("subset", 0.5, TINY.recipe_id())
    assert dm.recipe_id == get_model_set(store, lab["original"]).recipe_id
    assert (dm.n_models, dm.n_heldout, dm.n_fit) == (SUBSETS, 4, 36)
    assert (dm.n_train, dm.n_targets, dm.num_classes) == (1347, 1797, 10)
    w, b = load_weights(store, dm.id)
    assert w.shape == (1797, 10, 1347) and b.shape == (1797, 10) and np.isfinite(w).all()
    assert dm.lam > 0 and [c["m"] for c in dm.lds_curve][-1] == dm.n_fit
    assert -1 <= dm.lds_train <= 1 and -1 <= dm.lds_val <= 1
    rho = load_lds(store, dm.id)  # per target; the stored means are theirs
    assert rho.shape == (1797,) and np.nanmean(rho[:1347]) == pytest.approx(dm.lds_train)
    assert np.nanmean(rho[1347:]) == pytest.approx(dm.lds_val)
    assert len(dm.config["grid"]) > 1
    assert list_datamodels(store)["id"].tolist()[0] == dm.id
    # the weights are the closed-form ridge of the fit models' logits at the stored λ
    from core.attribution.regression import ridge_fit
    from core.attribution.subsets import subset_outputs

    x, y = subset_outputs(store, dm.subset_set_id, SUBSETS, "logits")
    pts = [0, 5, 1500]  # a few targets (ridge is per target)
    w_ref, b_ref = ridge_fit(
        x[: dm.n_fit].astype(float), y[: dm.n_fit, pts].reshape(36, -1), dm.lam
    )
    np.testing.assert_allclose(w[pts].reshape(-1, 1347).T, w_ref.numpy(), atol=1e-4)
    np.testing.assert_allclose(b[pts].reshape(-1), b_ref.numpy(), atol=1e-4)


def test_no_datamodel_names_the_command(lab):
    assert "datamodels fit" in lab["no_datamodel_error"]
    assert "--target logits" in lab["no_datamodel_error"]


def test_recipe_mismatch_is_refused_and_stores_nothing(lab):
    store = lab["store"]
    other = create_model_set(store, "subset", TINY.replace(epochs=3), 20, fraction=0.5)
    n = len(list_datamodels(store))
    with pytest.raises(ConfigError, match="never mix recipes"):
        fit_datamodel(store, "digits", original_set_id=lab["original"], n_models=20,
                      subset_set_id=other)  # fmt: skip
    assert len(list_datamodels(store)) == n


def test_dm_direct_is_the_hand_computed_shift(lab):
    store, f = lab["store"], lab["forget"]
    from core.zoo.data import load_dataset

    # logits datamodel: each original's logits minus Σ_{j∈F} W[x, :, j], then margins
    run = evaluate(store, lab["forget_set"], "dm_direct")
    row = evaluation(store, run)["evaluation"]
    assert row["compute_cost"] == 0.0 and row["unlearned_set_id"] is None
    w, _ = load_weights(store, lab["logits_dm"])
    data = load_dataset("digits")
    x, y = data.all_points()
    z = load_ensemble(store, lab["original"], "cpu").logits(x).numpy().astype(np.float64)
    shift = np.zeros((1797, 10))
    for j in f:
        shift -= w[:, :, j]
    zz = z + shift
    yy = y.numpy()
    z_y = zz[:, np.arange(1797), yy]
    others = zz.copy()
    others[:, np.arange(1797), yy] = -np.inf
    hand = z_y - np.log(np.exp(others).sum(-1))
    got = evaluation_margins(store, run)[0]
    np.testing.assert_allclose(got, hand, atol=1e-3)
    config = store.run(run)["config"]
    assert config["consumed_cost"] == SUBSETS / 4  # M subset models over N = 4 originals
    assert config["info"]["datamodel_id"] == lab["logits_dm"]
    # margin datamodel (preferred once it exists): each original's margins plus the shift
    dm_m = tiny_datamodel(store, lab["original"], "margin", SUBSETS)
    run = evaluate(store, lab["forget_set"], "dm_direct", recompute=True)
    wm = load_weights(store, dm_m)[0]
    hand = load_margins(store, lab["original"]) - np.array([wm[t, f].sum() for t in range(1797)])
    np.testing.assert_allclose(evaluation_margins(store, run)[0], hand, atol=1e-4)
    assert store.run(run)["config"]["info"]["datamodel_id"] == dm_m
    # top_k: each target keeps its k largest |weights| over all train points (a naive loop)
    run = evaluate(store, lab["forget_set"], "dm_direct", top_k=3, budget=0.1)
    kept = np.zeros_like(wm)
    for t in range(wm.shape[0]):
        top = np.argsort(-np.abs(wm[t]), kind="stable")[:3]
        kept[t, top] = wm[t, top]
    hand = load_margins(store, lab["original"]) - kept[:, f].sum(1)
    np.testing.assert_allclose(evaluation_margins(store, run)[0], hand, atol=1e-4)
    assert store.run(run)["config"]["options"] == {"top_k": 3}  # a predictor: no budget kept
    # the readers agree with the weights
    assert self_influence(store, dm_m)[7] == wm[7, 7]
    top = top_influencers(store, dm_m, 3, k=5)
    assert abs(top["weight"].iloc[0]) == np.abs(wm[3]).max() and len(top) == 5
    moved = moved_by_forget_set(store, dm_m, f, k=4)
    shift = -wm[:, f].sum(1)  # (n_points,)
    assert moved["shift"].tolist() == pytest.approx(shift[moved["point"]].tolist(), rel=1e-5)
    assert abs(moved["shift"].iloc[0]) == pytest.approx(np.abs(shift).max(), rel=1e-5)
    with pytest.raises(ConfigError, match="margin datamodel"):
        self_influence(store, lab["logits_dm"])


def test_dm_matching_runs_with_exact_costs_and_moves_towards_its_targets(lab):
    from core.zoo.data import load_dataset

    store, f = lab["store"], lab["forget"]
    run = evaluate(store, lab["forget_set"], "dm_matching", budget=0.1, recompute=True)
    row = evaluation(store, run)["evaluation"]
    assert row["compute_cost"] == 256 / 2688  # ⌊0.1 × 2688 / 64⌋ = 4 steps of 64
    config = store.run(run)["config"]
    assert config["consumed_cost"] == SUBSETS / 4
    assert config["info"]["datamodel_id"] == lab["logits_dm"]
    u = load_margins(store, int(row["unlearned_set_id"]))
    assert np.isfinite(u).all() and not np.array_equal(u, load_margins(store, lab["original"]))
    # a longer run: the forget logits end closer to z_i − Σ_{j∈F} W than the originals were
    run = evaluate(store, lab["forget_set"], "dm_matching", budget=2.0, lr=0.02, recompute=True)
    x = load_dataset("digits").x_train[f.copy()]
    o = load_ensemble(store, lab["original"], "cpu").logits(x).numpy()
    w, _ = load_weights(store, lab["logits_dm"])
    t = o - w[f][:, :, f].sum(-1)[None]
    u_id = int(evaluation(store, run)["evaluation"]["unlearned_set_id"])
    uz = load_ensemble(store, u_id, "cpu").logits(x).numpy()
    assert ((uz - t) ** 2).mean() < 0.5 * ((o - t) ** 2).mean()


def test_cli_fits_lists_refuses_and_makes_forget_sets(lab, tmp_path):
    import json
    import shutil

    from tests.commands.test_cli import cli

    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    db = tmp_path / "copy.duckdb"
    res = cli("datamodels", "fit", "--models", str(SUBSETS), "--json", db=db)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["target"] == "margin" and out["n_models"] == SUBSETS and "lds_train" in out
    # so few models are allowed (tests, a first look) but named as too few, with an M to use
    assert "warning: " in res.stderr and f"use --models {DEFAULT_MODELS} or more" in res.stderr
    listed = json.loads(cli("datamodels", "list", "--json", db=db).stdout)["datamodels"]
    assert out["id"] in [r["id"] for r in listed]
    for args, needle in ((("--models", "5"), "models must be at least 20"),
                         (("--fraction", "1.5"), "fraction"),
                         (("--kind", "lasso", "--target", "logits"), "lasso"),
                         (("--kind", "elastic"), "invalid choice")):  # fmt: skip
        res = cli("datamodels", "fit", *args, db=db)
        assert res.returncode == 2 and needle in res.stderr, (args, res.stderr)
    assert len(json.loads(cli("datamodels", "list", "--json", db=db).stdout)["datamodels"]) == len(
        listed
    )
    for args, size in ((("--preset", "dm-pc1-top10"), 10),
                       (("--kind", "datamodel_pc", "--component", "2", "--top", "25",
                         "--bottom", "25"), 50),
                       (("--kind", "knn", "--space", "datamodel", "--anchor", "4", "--k", "7"), 7)):  # fmt: skip
        res = cli("forget-set", "create", *args, "--json", db=db)
        assert res.returncode == 0, res.stderr
        fs = json.loads(res.stdout)
        assert len(fs["indices"]) == size and fs["params"]["datamodel_id"] == out["id"]
    assert cli("datamodels", "delete", str(out["id"]), db=db).returncode == 0
    listed = json.loads(cli("datamodels", "list", "--json", db=db).stdout)["datamodels"]
    assert out["id"] not in [r["id"] for r in listed]
    assert not (tmp_path / "copy.files" / "datamodels" / f"{out['id']}.weights.npy").exists()
    res = cli("datamodels", "delete", str(out["id"]), db=db)
    assert res.returncode == 2 and "no datamodel" in res.stderr


def test_datamodel_job_checks_its_parameters_and_fits(lab, tmp_path):
    import shutil

    from core.jobs import queue as jobs
    from core.store.db import Store

    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    store = Store(tmp_path / "copy.duckdb")
    for params, needle in (({"models": 5}, "models must be at least 20"),
                           ({"kind": "elastic"}, "kind must be one of ridge, lasso"),
                           ({"fraction": 1.0}, "fraction"), ({"speed": 1}, "unknown parameter")):  # fmt: skip
        with pytest.raises(ConfigError, match=needle):
            jobs.submit(store, "datamodel", params)
    job_id = jobs.submit(store, "datamodel", {"models": SUBSETS, "target": "margin"})
    assert jobs.run_job(store, job_id) == "done"
    result = jobs.get_job(store, job_id)["result"]
    dm = get_datamodel(store, result["datamodel_id"])
    assert dm.target == "margin" and dm.n_models == SUBSETS
    assert result["lds_train"] == pytest.approx(dm.lds_train)
