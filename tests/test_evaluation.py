"""Oracles and KLoM evaluation end to end on a tiny lab, checked against direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, NotFoundError
from core.evaluation import evaluate, evaluation, evaluation_margins, list_evaluations
from core.forget_sets import random_forget_set
from core.forget_store import delete_forget_set, list_forget_sets, save_forget_set
from core.metrics import klom_reference
from core.zoo import get_model_set, list_model_sets, load_margins, load_masks
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

    from core.store import Store

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
