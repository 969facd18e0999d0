"""Unlearning methods, every one of the registry on a tiny lab: shapes, finite outputs, the
originals untouched, forget margins moving the expected way, exact cost accounting, refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest

from core.common.errors import ConfigError
from core.evaluation.run import evaluate, evaluation, list_evaluations
from core.store.db import Store
from core.unlearning import METHODS, PARAMS, method_params
from core.unlearning.params import Choice, Range
from core.zoo.build import get_model_set, list_model_sets, load_margins
from tests.lab_fixtures import TINY, tiny_datamodel, tiny_lab

PREDICTORS = ("do_nothing", "dm_direct")  # keep no models of their own (tests of their own)
TRAINING = sorted(m for m in METHODS if m not in PREDICTORS)
# retraining a TINY model: 2 epochs × ⌊1347 / 64⌋ = 42 steps of 64 = 2,688 example-gradients


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = tiny_lab(tmp_path_factory.mktemp("unlearn") / "lab.duckdb", n_models=4)
    tiny_datamodel(lab["store"], lab["original"])  # for Datamodel Matching
    return lab


def _weights_bytes(store, set_id):
    return {p.name: p.read_bytes() for p in store.file_path(f"model_sets/{set_id}").iterdir()}


@pytest.mark.parametrize("method", TRAINING)
def test_every_method_on_a_tiny_lab(lab, method):
    store = lab["store"]
    before = _weights_bytes(store, lab["original"])
    orig = load_margins(store, lab["original"])
    run = evaluate(store, lab["forget_set"], method, budget=0.1)
    ev = evaluation(store, run)
    row = ev["evaluation"]
    if method == "retrain":  # the reference: an independent oracle group, at the floor
        pts = ev["points"]
        np.testing.assert_array_equal(pts["klom"], pts["floor"])
        assert row["compute_cost"] == 1.0 and row["unlearned_set_id"] == lab["floor"]
        return
    unlearned = load_margins(store, int(row["unlearned_set_id"]))
    assert unlearned.shape == orig.shape and np.isfinite(unlearned).all()
    assert not np.array_equal(unlearned, orig)  # the method did something
    assert _weights_bytes(store, lab["original"]) == before  # the originals are untouched
    ms = get_model_set(store, int(row["unlearned_set_id"]))
    assert (ms.kind, ms.status, ms.base_set_id, ms.forget_set_id) == (
        "unlearned", "complete", lab["original"], lab["forget_set"])  # fmt: skip
    f = lab["forget"]
    if method in ("gradient_ascent", "ga_gd", "random_labels"):  # pushed down
        assert unlearned[:, f].mean() < orig[:, f].mean()
    if method == "oracle_matching":  # towards the held-out oracles, which never saw F
        from core.zoo.build import find_model_set

        held = find_model_set(store, "oracle", "digits", forget_set_id=lab["forget_set"],
                              role="heldout")  # fmt: skip
        assert held not in (lab["oracle"], lab["floor"]) and held is not None
        assert store.run(run)["config"]["consumed_cost"] == 1.0
    # exact cost: ⌊0.1 × 2688 / examples per step⌋ steps of that many examples, over 2688
    p = method_params(method)
    per_step = p["batch"] + p.get("forget_batch", 0)
    steps = int(0.1 * 2688 // per_step)
    extra = len(f) if method in ("salun", "del") else 0  # their scoring pass over F
    spent = steps * per_step + extra
    if method == "scrub":  # 3 steps of 64 retain, forget batches (16) only in the first round(1.5)
        spent = 3 * 64 + 2 * 16  # (tests/unlearning/test_scrub_accounting.py counts them)
    assert row["compute_cost"] == pytest.approx(spent / 2688)
    assert store.run(run)["config"]["options"] == {"budget": 0.1, **p}
    # the same grid point is reused, not run again
    assert evaluate(store, lab["forget_set"], method, budget=0.1) == run


def test_gradient_descent_cost_by_hand(lab):
    """budget 0.1 of 2,688 = 268.8 example-gradients → 4 steps of 64 = 256 → cost 256/2688."""
    run = evaluate(lab["store"], lab["forget_set"], "gradient_descent", budget=0.1, batch=64)
    assert evaluation(lab["store"], run)["evaluation"]["compute_cost"] == 256 / 2688


@pytest.mark.parametrize(
    "method,kwargs,needle",
    [
        ("gradient_descent", {"budget": 0.1, "lr": "fast"}, "lr must be a number"),
        ("gradient_descent", {"budget": 0.1, "lr": 5.0}, "lr must be a number in (0, 1]"),
        (
            "gradient_descent",
            {"budget": 0.1, "batch": 1.5},
            "batch must be a whole number in [1, 4096]",
        ),
        ("gradient_descent", {"budget": 0.1, "temperature": 2}, "has no parameter 'temperature'"),
        ("gradient_descent", {"budget": 0.0}, "budget must be greater than 0"),
        ("gradient_descent", {"budget": 1e-4}, "buys no step"),
        ("forget_harder", {"budget": 0.1}, "unknown method"),
    ],
)
def test_bad_input_stores_nothing(lab, method, kwargs, needle):
    store = lab["store"]
    sets, runs = len(list_model_sets(store)), len(list_evaluations(store))
    with pytest.raises(ConfigError, match=re.escape(needle)):
        evaluate(store, lab["forget_set"], method, recompute=True, **kwargs)
    assert len(list_model_sets(store)) == sets and len(list_evaluations(store)) == runs


def test_a_forget_set_of_another_dataset_is_refused(lab, tmp_path):
    """Originals of digits cannot unlearn a CIFAR-10 forget set: refused, nothing stored."""
    import shutil

    from core.forget.sets import random_forget_set
    from core.forget.store import save_forget_set

    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    store = Store(tmp_path / "copy.duckdb")
    cifar = save_forget_set(store, random_forget_set(50_000, 10, 0, "c10"), "cifar10")
    sets, runs = len(list_model_sets(store)), len(list_evaluations(store))
    with pytest.raises(ConfigError, match="not originals of cifar10"):
        evaluate(store, cifar, "gradient_descent", budget=0.1, original_set_id=lab["original"])
    with pytest.raises(ConfigError, match="no oracle models yet"):
        evaluate(store, cifar, "gradient_descent", budget=0.1)
    assert len(list_model_sets(store)) == sets and len(list_evaluations(store)) == runs


DIVERGE = {"budget": 0.5, "lr": 1.0, "momentum": 0.99}  # ascent at lr 1: the margins overflow


def test_a_diverged_method_is_recorded_not_scored(lab, tmp_path):
    """Issue 9: a method that diverges ends with status "diverged" and a message, never NaN in
    the store; a sweep goes on past it, a rerun does not train it again, recompute does."""
    import json
    import shutil

    from core.common.errors import Diverged
    from core.evaluation.cleanup import delete_forget_set
    from core.evaluation.compare import runs_table
    from core.evaluation.divergence import diverged_runs
    from tests.commands.test_cli import cli

    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    store = Store(tmp_path / "copy.duckdb")
    fs = lab["forget_set"]
    sets, runs = len(list_model_sets(store)), len(list_evaluations(store))
    with pytest.raises(Diverged, match="diverged: its models produce non-finite") as err:
        evaluate(store, fs, "gradient_ascent", **DIVERGE)
    first = err.value.run_id
    assert len(list_model_sets(store)) == sets and len(list_evaluations(store)) == runs
    d = diverged_runs(store, fs)
    assert d["run_id"].tolist() == [first] and d["method"].tolist() == ["gradient_ascent"]
    assert "non-finite" in d["message"][0] and first not in runs_table(store, fs)["run_id"].tolist()
    with pytest.raises(Diverged, match=f"before \\(run {first}\\)"):  # reused, not retrained
        evaluate(store, fs, "gradient_ascent", **DIVERGE)
    with pytest.raises(Diverged) as again:
        evaluate(store, fs, "gradient_ascent", recompute=True, **DIVERGE)
    assert again.value.run_id != first and len(diverged_runs(store, fs)) == 2
    res = cli("unlearn", "--forget-set", str(fs), "--method", "gradient_ascent", "--budget", "0.5",
              "--param", "lr=1.0,0.001", "--param", "momentum=0.99", "--json",
              db=tmp_path / "copy.duckdb")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)["runs"]
    assert [r["status"] for r in out] == ["diverged", "ok"] and "klom" not in json.dumps(out[0])
    assert np.isfinite(out[1]["forget_p95"])
    store = Store(tmp_path / "copy.duckdb")
    assert (
        store.query_df("SELECT count(*) AS n FROM klom_points WHERE NOT isfinite(klom)")["n"][0]
        == 0
    )
    delete_forget_set(store, fs)
    assert store.query_df("SELECT count(*) AS n FROM runs WHERE kind = 'diverged'")["n"][0] == 0


def test_every_hyperparameter_has_a_range_and_default():
    for name, spec in PARAMS.items():
        for p in spec:
            assert p.default == p.check(p.default), (name, p.name)
            assert isinstance(p.limits, Range | Choice) and p.help, (name, p.name)
    assert PARAMS["do_nothing"] == []
    assert TINY.total_steps(1347) * TINY.batch_size == 2688


def test_unlearn_command_runs_a_grid_and_refuses_bad_points_first(lab, tmp_path):
    import json
    import shutil

    from tests.commands.test_cli import cli

    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    db = tmp_path / "copy.duckdb"
    fs = str(lab["forget_set"])
    res = cli("unlearn", "--forget-set", fs, "--method", "gradient_ascent", "--budget",
              "0.05,0.1", "--param", "lr=0.001,0.002", "--json", db=db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    runs = json.loads(res.stdout)["runs"]
    assert [(r["budget"], r["lr"]) for r in runs] == [
        (0.05, "0.001"), (0.05, "0.002"), (0.1, "0.001"), (0.1, "0.002")]  # fmt: skip
    assert all(0 < r["cost"] <= r["budget"] for r in runs)
    n = len(list_evaluations(type(lab["store"])(db)))
    for args in (("--param", "lr=0.001,7"), ("--param", "speed=1"), ("--budget", "0.1,x"),
                 ("--param", "lr")):  # fmt: skip
        res = cli("unlearn", "--forget-set", fs, "--method", "gradient_ascent", *args, db=db)
        assert res.returncode == 2 and res.stderr.startswith("error: "), (args, res.stderr)
    assert len(list_evaluations(type(lab["store"])(db))) == n  # nothing ran


@pytest.mark.parametrize("target", ["shift", "mean", "paired"])
def test_oracle_matching_moves_forget_logits_to_its_targets(lab, target):
    """The targets recomputed with numpy from the stored originals and held-out oracles: after
    OM the unlearned models' forget-set logits are much closer to them than the originals'."""
    from core.zoo.build import find_model_set, load_ensemble
    from core.zoo.data import load_dataset

    store = lab["store"]
    run = evaluate(store, lab["forget_set"], "oracle_matching", budget=2.0, lr=0.02,
                   target=target, recompute=True)  # fmt: skip
    held = find_model_set(store, "oracle", "digits", forget_set_id=lab["forget_set"],
                          role="heldout")  # fmt: skip
    x = load_dataset("digits").x_train[lab["forget"].copy()]
    o, h = (load_ensemble(store, i, "cpu").logits(x).numpy() for i in (lab["original"], held))
    u_id = int(evaluation(store, run)["evaluation"]["unlearned_set_id"])
    u = load_ensemble(store, u_id, "cpu").logits(x).numpy()  # (N, |F|, K)
    t = {"mean": np.broadcast_to(h.mean(0), o.shape), "paired": h,
         "shift": o + h.mean(0) - o.mean(0)}[target]  # fmt: skip
    mse = lambda a: float(((a - t) ** 2).mean())  # noqa: E731
    assert mse(u) < 0.5 * mse(o), (mse(u), mse(o))
    with pytest.raises(ConfigError, match="target must be one of shift, mean, paired"):
        evaluate(store, lab["forget_set"], "oracle_matching", budget=0.1, target="median")


def _state(store, set_id):
    from core.zoo.build import load_ensemble

    return load_ensemble(store, set_id, "cpu").state_dict()


def test_salun_changes_exactly_the_salient_entries(lab):
    import torch

    from core.unlearning.more import saliency_masks
    from core.zoo.build import load_ensemble
    from core.zoo.data import load_dataset

    store = lab["store"]
    run = evaluate(store, lab["forget_set"], "salun", budget=0.5, fraction=0.2, recompute=True)
    after = _state(store, int(evaluation(store, run)["evaluation"]["unlearned_set_id"]))
    before = _state(store, lab["original"])
    data = load_dataset("digits")
    ens = load_ensemble(store, lab["original"], "cpu")
    masks = saliency_masks(ens, data.x_train, data.y_train, lab["forget"], 16, 0.2)
    names = [n for n, _ in ens.net.named_parameters()]
    moved = chosen = 0
    for name, mask in zip(names, masks, strict=True):
        changed = before[name] != after[name]
        assert not (changed & ~mask).any(), name  # nothing outside the chosen entries moved
        moved += int(changed.sum())
        chosen += int(mask.sum())
    total = sum(before[n].numel() for n in names)
    assert chosen == pytest.approx(0.2 * total, rel=0.05) and moved > 0.5 * chosen
    del torch


def test_scrub_moves_the_student_and_never_the_teacher(lab):
    """A public reimplementation optimised the teacher's parameters: the student never moved
    and every setting gave the same numbers."""
    store = lab["store"]
    teacher_before = _weights_bytes(store, lab["original"])
    runs = [evaluate(store, lab["forget_set"], "scrub", budget=0.5, max_share=m, recompute=True)
            for m in (0.0, 0.8)]  # fmt: skip
    states = [_state(store, int(evaluation(store, r)["evaluation"]["unlearned_set_id"]))
              for r in runs]  # fmt: skip
    orig = _state(store, lab["original"])
    key = "fc.weight"
    assert not np.array_equal(states[0][key], orig[key])  # the student moved
    assert not np.array_equal(states[0][key], states[1][key])  # settings matter
    assert _weights_bytes(store, lab["original"]) == teacher_before  # the teacher did not


def test_del_resets_the_requested_share_and_trains_only_that_and_the_last_layer(lab):
    from core.unlearning.localized import criticality, reset_masks
    from core.zoo.build import load_ensemble
    from core.zoo.data import load_dataset

    store = lab["store"]
    run = evaluate(store, lab["forget_set"], "del", budget=0.5, fraction=0.3, recompute=True)
    after = _state(store, int(evaluation(store, run)["evaluation"]["unlearned_set_id"]))
    before = _state(store, lab["original"])
    data = load_dataset("digits")
    ens = load_ensemble(store, lab["original"], "cpu")
    names = [n for n, _ in ens.net.named_parameters()]
    below = [not n.startswith("fc.") for n in names]  # the head is never a candidate (default)
    scores = criticality(ens, data.x_train, data.y_train, lab["forget"], 64)
    masks = reset_masks(scores, 0.3, candidate=below)
    total = sum(before[n][0].numel() for n in names if not n.startswith("fc."))  # one model
    widest = max(before[n][0, 0].numel() if before[n].dim() >= 3 else 1 for n in names)
    for i in range(ens.n_models):
        share = sum(int(m[i].sum()) for m in masks) / total
        assert 0.3 <= share <= 0.3 + widest / total  # the fraction, plus at most one channel
    for name, mask in zip(names, masks, strict=True):
        changed = before[name] != after[name]
        if not name.startswith("fc."):  # the last layer always trains
            assert not (changed & ~mask).any(), name
        else:
            assert not mask.any() and changed.float().mean() > 0.9, name  # trained, not reset
        if mask.any():
            assert changed[mask].float().mean() > 0.9, name  # reset (and retrained) moved
    info = store.run(run)["config"]["info"]
    assert set(info["reset_share"]) == set(names) and 0.3 <= info["reset_below_head"] < 0.4
    assert info["reset_share"]["fc.weight"] == info["reset_share"]["fc.bias"] == 0.0


def test_a_sweep_of_a_method_without_budget_runs_each_setting_once(lab, tmp_path):
    """do-nothing (and predictors such as dm_direct) spend no budget: the default budgets of
    ``unlearn`` do not multiply their runs, and no budget is stored with them."""
    import json
    import shutil

    from core.unlearning import uses_budget
    from tests.commands.test_cli import cli

    assert not uses_budget("do_nothing") and not uses_budget("dm_direct")
    assert uses_budget("dm_matching") and uses_budget("gradient_descent")
    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    res = cli("unlearn", "--forget-set", str(lab["forget_set"]), "--method", "do_nothing",
              "--budget", "0.02,0.1", "--json", db=tmp_path / "copy.duckdb")  # fmt: skip
    assert res.returncode == 0, res.stderr
    runs = json.loads(res.stdout)["runs"]
    assert len(runs) == 1 and "budget" not in runs[0]


@pytest.mark.gpu
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_on_cuda(lab, method):
    """Every method runs on CUDA and records the device (DEL once indexed a CPU tensor with
    CUDA indices there: a CPU run cannot show it)."""
    store = lab["store"]
    run = evaluate(store, lab["forget_set"], method, budget=0.1, recompute=True, device="cuda")
    assert store.run(run)["device"].startswith("cuda")
    pts = evaluation(store, run)["points"]
    assert np.isfinite(pts["klom"]).all()
