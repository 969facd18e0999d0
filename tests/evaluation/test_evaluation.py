"""Oracles and KLoM evaluation end to end on a tiny lab, checked against direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from core.common.errors import ConfigError, NotFoundError
from core.evaluation.cleanup import delete_forget_set
from core.evaluation.klom import klom_reference
from core.evaluation.run import evaluate, evaluation, evaluation_margins, list_evaluations
from core.forget.sets import random_forget_set
from core.forget.store import list_forget_sets, save_forget_set
from core.zoo.build import get_model_set, list_model_sets, load_margins, load_masks
from tests.lab_fixtures import tiny_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return tiny_lab(tmp_path_factory.mktemp("lab") / "lab.duckdb")


def test_oracles_leave_out_the_forget_set(lab):
    store = lab["store"]
    for set_id in (lab["oracle"], lab["floor"]):
        ms = get_model_set(store, set_id)
        assert ms.kind == "oracle" and ms.forget_set_id == lab["forget_set"]
        assert ms.train == get_model_set(store, lab["original"]).train  # the originals' recipe
        masks = load_masks(store, set_id)
        assert not masks[:, lab["forget"]].any() and masks.sum(1).tolist() == [1347 - 20] * 6
    seeds = {get_model_set(store, s).seed for s in (lab["original"], lab["oracle"], lab["floor"])}
    assert len(seeds) == 3  # independent groups


def test_do_nothing_evaluation_matches_direct_klom(lab):
    store = lab["store"]
    run_id = evaluate(store, lab["forget_set"], "do_nothing")
    ev = evaluation(store, run_id)
    pts = ev["points"]
    orig, oracle, floor = (load_margins(store, lab[k]) for k in ("original", "oracle", "floor"))
    np.testing.assert_allclose(pts["klom"], klom_reference(orig, oracle), atol=1e-9)
    np.testing.assert_allclose(pts["floor"], klom_reference(floor, oracle), atol=1e-9)
    np.testing.assert_allclose(pts["gap"], orig.mean(0) - oracle.mean(0), atol=1e-5)
    forget = pts[pts["split"] == "forget"]["point"].to_numpy()
    np.testing.assert_array_equal(forget, lab["forget"])
    assert (pts["split"] == "val").sum() == 450 and (pts["split"] == "retain").sum() == 1327
    s = ev["summaries"].set_index(["split", "metric"])
    np.testing.assert_allclose(
        s.loc[("forget", "klom"), "p95"], np.percentile(pts["klom"].to_numpy()[forget], 95)
    )
    assert ev["evaluation"]["compute_cost"] == 0.0
    u, o = evaluation_margins(store, run_id)
    np.testing.assert_array_equal(u, orig)
    np.testing.assert_array_equal(o, oracle)
    assert run_id in list_evaluations(store)["run_id"].tolist()
    run = store.run(run_id)
    assert run["kind"] == "evaluation" and run["config"]["method"] == "do_nothing"


def test_evaluation_needs_oracles_and_a_known_method(lab):
    store = lab["store"]
    other = save_forget_set(store, random_forget_set(1347, 5, seed=9, name="no-oracles"), "digits")
    with pytest.raises(ConfigError, match="no oracle models yet"):
        evaluate(store, other, "do_nothing")
    with pytest.raises(ConfigError, match="unknown method"):
        evaluate(store, lab["forget_set"], "forget_harder")
    with pytest.raises(NotFoundError):
        evaluate(store, 999, "do_nothing")
    with pytest.raises(ConfigError, match="already exists"):
        save_forget_set(store, random_forget_set(1347, 5, seed=9, name="no-oracles"), "digits")


def test_delete_forget_set_removes_dependents(lab, tmp_path):
    import shutil

    from core.store.db import Store

    # work on a copy so the module's lab stays intact
    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    store = Store(tmp_path / "copy.duckdb")
    evaluate(store, lab["forget_set"], "do_nothing")
    delete_forget_set(store, lab["forget_set"])
    assert lab["forget_set"] not in list_forget_sets(store)["id"].tolist()
    assert set(list_model_sets(store)["kind"]) == {"original"}
    assert list_evaluations(store).empty
    assert store.query_df("SELECT count(*) n FROM klom_points")["n"][0] == 0


def _copy_lab(lab, tmp_path):
    import shutil

    from core.store.db import Store

    shutil.copy(lab["store"].path, tmp_path / "copy.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "copy.files")
    return Store(tmp_path / "copy.duckdb")


def test_evaluation_pairs_one_recipe_and_refuses_a_mismatch(lab, tmp_path):
    """Review item: after the demo, ``train --models 2 --epochs 1`` then ``evaluate`` compared
    1-epoch originals with 30-epoch oracles (KLoM ≈ 11.5 everywhere) and stored device
    'bogus'."""
    from core.zoo.build import build_model_set, create_model_set
    from core.zoo.recipe import default_train_config

    store = _copy_lab(lab, tmp_path)
    other = create_model_set(store, "original", default_train_config("digits").replace(epochs=1), 2)
    build_model_set(store, other)  # the newest originals now: another recipe and size
    n_runs = len(list_evaluations(store))
    with pytest.raises(ConfigError, match="unknown device 'bogus'"):
        evaluate(store, lab["forget_set"], "do_nothing", "bogus")
    with pytest.raises(ConfigError, match=r"no oracles of the recipe of original set") as err:
        evaluate(store, lab["forget_set"], "do_nothing", original_set_id=other)
    msg = str(err.value)
    assert "1 epochs" in msg and "2 epochs" in msg and "2 models" in msg and "6 models" in msg
    with pytest.raises(ConfigError, match="not originals"):
        evaluate(store, lab["forget_set"], "do_nothing", original_set_id=lab["oracle"])
    assert len(list_evaluations(store)) == n_runs  # nothing stored by the refusals
    # default: the originals the oracles were built against, not the newest originals
    run = evaluate(store, lab["forget_set"], "do_nothing")
    row = evaluation(store, run)["evaluation"]
    assert row["original_set_id"] == lab["original"] != other
    assert store.run(run)["device"] == "cpu"
    with pytest.raises(ConfigError, match="must match them"):
        from core.evaluation.run import build_oracles

        build_oracles(store, lab["forget_set"], n_models=3)
    with pytest.raises(ConfigError, match="unknown device"):
        build_oracles(store, lab["forget_set"], device="gpu9")


def test_a_stored_evaluation_is_reused_unless_recomputed(lab, tmp_path):
    store = _copy_lab(lab, tmp_path)
    first = evaluate(store, lab["forget_set"], "do_nothing")
    assert evaluate(store, lab["forget_set"], "do_nothing") == first
    assert len(list_evaluations(store)) == 1
    again = evaluate(store, lab["forget_set"], "do_nothing", recompute=True)
    assert again != first and len(list_evaluations(store)) == 2
    pd_a, pd_b = evaluation(store, first)["points"], evaluation(store, again)["points"]
    np.testing.assert_array_equal(pd_a["klom"], pd_b["klom"])
    assert evaluate(store, lab["forget_set"], "do_nothing") == again  # the newest is reused
    # an evaluation stored before argmax accuracy (schema 4 moved its figure aside) is not
    # reused: its accuracy is unknown
    with store.transaction() as con:
        con.execute(
            "UPDATE klom_summaries SET positive_margin_share = accuracy, accuracy = NULL "
            "WHERE run_id = ?",
            [again],
        )
    assert evaluate(store, lab["forget_set"], "do_nothing") == first  # skips `again`
    with store.transaction() as con:
        con.execute("UPDATE klom_summaries SET accuracy = NULL WHERE run_id = ?", [first])
    fresh = evaluate(store, lab["forget_set"], "do_nothing")
    assert fresh not in (first, again) and len(list_evaluations(store)) == 3


def test_summary_accuracy_is_argmax_accuracy(lab, tmp_path):
    from core.zoo.build import all_points, load_ensemble
    from core.zoo.data import load_dataset

    store = _copy_lab(lab, tmp_path)
    run = evaluate(store, lab["forget_set"], "do_nothing")
    s = evaluation(store, run)["summaries"].set_index(["split", "metric"])
    x, y = all_points(load_dataset("digits"))
    for metric, set_id in (("klom", lab["original"]), ("floor", lab["floor"])):
        pred = load_ensemble(store, set_id, "cpu").logits(x).numpy().argmax(-1)  # (n, points)
        ok = pred == y.numpy()
        forget = lab["forget"]
        retain = np.setdiff1d(np.arange(1347), forget)
        for split, idx in (("forget", forget), ("retain", retain), ("val", np.arange(1347, 1797))):
            assert s.loc[(split, metric), "accuracy"] == pytest.approx(ok[:, idx].mean())


def test_original_choices_default_to_the_oracles_originals(lab, tmp_path):
    from core.evaluation.run import original_choices
    from core.zoo.build import build_model_set, create_model_set
    from tests.lab_fixtures import TINY

    store = _copy_lab(lab, tmp_path)
    newer = create_model_set(store, "original", TINY, 2)
    build_model_set(store, newer)
    choices, default = original_choices(store, lab["forget_set"])
    assert [c[0] for c in choices] == [newer, lab["original"]]  # newest first
    assert default == lab["original"]  # the oracles' originals, not the newest
    assert "6 × digits/mlp" in dict(choices)[lab["original"]]
    other = save_forget_set(store, random_forget_set(1347, 5, seed=3, name="fresh"), "digits")
    assert original_choices(store, other)[1] == newer  # no oracles yet: the newest
