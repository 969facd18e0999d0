"""DEL's reset (issue 22, item 11): the head is not a reset candidate by default, ``fraction`` is
the share of the weights below it, the reset target is each model's own initial weights
(rebuilt from its seed, checked against what training started from), and the shares reset per
parameter reach the run's info and the CLI's JSON."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from core.evaluation.run import evaluate, evaluation
from core.unlearning.localized import criticality, reset_masks, reset_shares
from tests.lab_fixtures import TINY, tiny_lab

NAMES = ["fc1.weight", "fc1.bias", "fc.weight", "fc.bias"]  # the MLP's parameters, in order


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return tiny_lab(tmp_path_factory.mktemp("del") / "lab.duckdb", n_models=4)


def _scores(n: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """MLP-shaped criticalities ``(n, …)``; the head's rows score highest, as on real models."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(n, 32, 16), (n, 32), (n, 10, 32), (n, 10)]
    out = [torch.rand(s, generator=g) for s in shapes]
    out[2] += 5.0  # the head's weights
    return out


def _naive_channels(scores: list[torch.Tensor], i: int, top: float = 0.1) -> list[tuple]:
    """Model i's channels as (score, size, parameter, row), by a plain loop."""
    out = []
    for j, s in enumerate(scores):
        for c in range(s.shape[1]):
            v = s[i, c].reshape(-1).tolist()
            k = max(1, int(np.ceil(top * len(v))))
            out.append((sum(sorted(v, reverse=True)[:k]) / k, len(v), j, c))
    return out


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.77])
def test_reset_masks_leave_the_head_out_and_reset_the_fraction_below_it(fraction):
    scores = _scores()
    below = [not n.startswith("fc.") for n in NAMES]
    masks = reset_masks(scores, fraction, candidate=below)
    assert not masks[2].any() and not masks[3].any()  # the head is never reset
    for i in range(3):
        chans = [c for c in _naive_channels(scores, i) if below[c[2]]]
        total = sum(c[1] for c in chans)
        widest = max(c[1] for c in chans)
        taken = [c for c in chans if masks[c[2]][i, c[3]].all()]
        assert all(masks[c[2]][i, c[3]].any() == (c in taken) for c in chans)  # whole channels
        reset = sum(int(m[i].sum()) for m in masks)
        assert reset == sum(c[1] for c in taken)
        assert fraction * total <= reset < fraction * total + widest  # within one channel
        rest = [c[0] for c in chans if c not in taken]
        assert min(c[0] for c in taken) >= max(rest)  # the highest-scoring channels


def test_the_old_option_ranks_the_head_too_and_it_scores_highest():
    scores = _scores()
    masks = reset_masks(scores, 0.4)  # every parameter a candidate: the older behaviour
    assert masks[2].all()  # the whole head (10 × 32 of 874 weights) goes first
    assert 0.4 * 874 <= sum(int(m[0].sum()) for m in masks) < 0.4 * 874 + 16


def test_reset_shares_count_the_masks():
    masks = reset_masks(_scores(), 0.3, candidate=[True, True, False, False])
    info = reset_shares(NAMES, masks)
    for name, m in zip(NAMES, masks, strict=True):
        per_model = [int(m[i].sum()) / m[i].numel() for i in range(m.shape[0])]
        assert info["reset_share"][name] == pytest.approx(sum(per_model) / len(per_model))
    below = [int(masks[0][i].sum() + masks[1][i].sum()) / (32 * 16 + 32) for i in range(3)]
    every = [sum(int(m[i].sum()) for m in masks) / (32 * 16 + 32 + 320 + 10) for i in range(3)]
    assert info["reset_below_head"] == pytest.approx(np.mean(below))
    assert info["reset_total"] == pytest.approx(np.mean(every))
    assert info["reset_share"]["fc.weight"] == 0.0 and 0.3 <= info["reset_below_head"] < 0.33


def test_initial_weights_rebuilt_from_the_seeds_are_what_training_started_from(monkeypatch):
    """``initialised`` from a model's seed equals the weights ``train_ensemble`` begins with,
    whatever the chunk a model trains in."""
    import core.zoo.ensemble as E
    from core.zoo.data import load_dataset
    from core.zoo.models import initialised

    data = load_dataset("digits")
    started = []

    def capture(net, *args) -> None:  # in place of the training loop: record, do not train
        started.append({k: v.clone() for k, v in net.state_dict().items()})

    monkeypatch.setattr(E, "_train_mlp_fast", capture)
    monkeypatch.setattr(E, "_train_autograd", capture)
    seeds = [7, 8, 300_001]
    masks = np.ones((3, data.n_train), dtype=bool)
    E.train_ensemble(data, masks, seeds, TINY.replace(model_chunk=2))
    start = {k: torch.cat([s[k] for s in started]) for k in started[0]}  # the two chunks
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    rebuilt = initialised("mlp", data.input_shape, data.num_classes, gens).state_dict()
    for k in NAMES:
        assert torch.equal(rebuilt[k], start[k]), k


def _state(store, set_id: int) -> dict:
    from core.zoo.build import load_ensemble

    return load_ensemble(store, set_id, "cpu").state_dict()


def _del_run(lab, monkeypatch, **params) -> tuple[dict, list[torch.Tensor], dict, int]:
    """DEL with its fine-tuning switched off: the stored models are the reset originals."""
    import core.unlearning.localized as L
    from core.zoo.build import load_ensemble
    from core.zoo.data import load_dataset

    monkeypatch.setattr(L, "sgd", lambda *a, **k: None)
    store = lab["store"]
    run = evaluate(store, lab["forget_set"], "del", budget=0.5, recompute=True, **params)
    unlearned = int(evaluation(store, run)["evaluation"]["unlearned_set_id"])
    after = _state(store, unlearned)
    data = load_dataset("digits")
    ens = load_ensemble(store, lab["original"], "cpu")
    allowed = [params.get("candidates") == "all" or not n.startswith("fc.") for n in NAMES]
    scores = criticality(ens, data.x_train, data.y_train, lab["forget"], 64)
    masks = reset_masks(scores, params.get("fraction", 0.3), candidate=allowed)
    return after, masks, store.run(run)["config"], unlearned


def _initial(store, set_id: int, n: int) -> dict:
    from core.zoo.build import get_model_set
    from core.zoo.data import load_dataset
    from core.zoo.models import initialised

    data = load_dataset("digits")
    s0 = get_model_set(store, set_id).seed
    gens = [torch.Generator().manual_seed(s0 + i) for i in range(n)]
    return initialised("mlp", data.input_shape, data.num_classes, gens).state_dict()


def test_del_resets_below_the_head_to_each_models_initial_weights(lab, monkeypatch):
    after, masks, config, _ = _del_run(lab, monkeypatch)
    assert config["options"]["candidates"] == "below_head"  # saved with the run
    assert config["options"]["reset_to"] == "initial"
    before = _state(lab["store"], lab["original"])
    init = _initial(lab["store"], lab["original"], 4)  # the originals' own seeds
    for name, m in zip(NAMES, masks, strict=True):
        assert torch.equal(after[name][m], init[name][m]), name  # reset to the initial weights
        assert torch.equal(after[name][~m], before[name][~m]), name  # the rest kept
    assert torch.equal(after["fc.weight"], before["fc.weight"])  # the head is not reset
    info = config["info"]
    assert info == reset_shares(NAMES, masks)  # JSON keeps floats exactly
    assert info["reset_share"]["fc.weight"] == info["reset_share"]["fc.bias"] == 0.0
    assert 0.3 <= info["reset_below_head"] < 0.3 + 64 / (128 * 64 + 128)


def test_del_old_options_reset_the_head_and_draw_fresh_weights(lab, monkeypatch):
    after, masks, config, unlearned = _del_run(lab, monkeypatch, candidates="all",
                                               reset_to="fresh")  # fmt: skip
    assert masks[2].any() and config["info"]["reset_share"]["fc.weight"] > 0.3
    fresh = _initial(lab["store"], unlearned, 4)  # the unlearned set's seeds
    init = _initial(lab["store"], lab["original"], 4)
    for name, m in zip(NAMES, masks, strict=True):
        assert torch.equal(after[name][m], fresh[name][m]), name
        assert not torch.equal(after[name][m], init[name][m]), name


def test_the_reset_shares_reach_the_clis_json(lab, tmp_path):
    from tests.commands.test_cli import cli

    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    db = tmp_path / "copy.duckdb"
    res = cli("unlearn", "--forget-set", str(lab["forget_set"]), "--method", "del",
              "--budget", "0.1", "--param", "fraction=0.1", "--json", db=db)  # fmt: skip
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)["runs"]
    info = row["info"]
    assert info["reset_share"]["fc.weight"] == 0.0 and 0.1 <= info["reset_below_head"] < 0.11
    res = cli("evaluate", "--forget-set", str(lab["forget_set"]), "--json", db=db)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["info"] == {}  # do-nothing records nothing


def test_the_reset_shares_show_on_the_klom_explorer_and_in_compares_table(lab, tmp_path,
                                                                          monkeypatch):  # fmt: skip
    from streamlit.testing.v1 import AppTest

    from core.evaluation.compare import runs_table
    from core.store.db import Store
    from tests.conftest import ROOT

    shutil.copy(lab["store"].path, tmp_path / "lab.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "lab.files")
    store = Store(tmp_path / "lab.duckdb")
    run = evaluate(store, lab["forget_set"], "del", budget=0.1, fraction=0.1, recompute=True)
    nothing = evaluate(store, lab["forget_set"], "do_nothing")
    info = store.run(run)["config"]["info"]
    table = runs_table(store, lab["forget_set"]).set_index("run_id")
    assert table.loc[run, "reset_share"] == info["reset_below_head"]
    assert np.isnan(table.loc[nothing, "reset_share"])
    monkeypatch.setenv("LAB_DB", str(tmp_path / "lab.duckdb"))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.query_params["run"] = str(run)
    at.switch_page("views/klom.py").run()
    assert not at.exception, at.exception
    shown = [d.value for d in at.dataframe if "share reset" in d.value.columns]
    assert len(shown) == 1 and dict(zip(shown[0]["parameter"], shown[0]["share reset"],
                                        strict=True)) == info["reset_share"]  # fmt: skip
    below = f"{info['reset_below_head']:.1%} of those below the final layer"
    assert any(below in c.value for c in at.caption)


def test_a_sweep_task_resets_to_the_same_initial_weights(lab):
    """A Ray sweep point runs DEL on a ``DetachedContext`` (no store): it gets the originals'
    seeds from its inputs, the same as a local run reads from the store."""
    from core.evaluation.run import plan
    from core.jobs.sweep_tasks import PointSpec, detached_context, unlearn_point
    from core.jobs.sweeps import _inputs
    from core.unlearning import UnlearnContext
    from core.zoo.build import get_model_set
    from core.zoo.data import load_dataset
    from core.zoo.executors import LocalExecutor

    store, data = lab["store"], load_dataset("digits", "cpu")
    p = plan(store, lab["forget_set"], "del", "cpu", budget=0.1, recompute=True)
    inputs = _inputs(store, p, data, LocalExecutor())
    spec = PointSpec("del", p.params, 0.1, None, 900_000, "cpu")
    local = UnlearnContext(store, data, p.forget, lab["original"]).original_seeds()
    s0 = get_model_set(store, lab["original"]).seed
    assert detached_context(inputs, spec, data).original_seeds() == local == [s0 + i for i in
                                                                             range(4)]  # fmt: skip
    res = unlearn_point(spec, inputs=inputs)
    assert res.diverged is None and res.info["reset_share"]["fc.weight"] == 0.0


def test_the_unlearn_page_offers_the_new_choices(lab, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    shutil.copy(lab["store"].path, tmp_path / "lab.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "lab.files")
    monkeypatch.setenv("LAB_DB", str(tmp_path / "lab.duckdb"))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.switch_page("views/unlearn.py").run()
    at.selectbox(key="ul_method").set_value("del").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="ul_del_candidates").value == "below_head"
    assert at.selectbox(key="ul_del_candidates").options == ["below_head", "all"]
    assert at.selectbox(key="ul_del_reset_to").value == "initial"
