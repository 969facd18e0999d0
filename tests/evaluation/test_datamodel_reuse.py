"""A datamodel method's stored run is reused only while the datamodel it was made from is the
one the method would use now: after a newer fit, evaluating again makes a new run from it."""

from __future__ import annotations

from core.evaluation.run import evaluate
from core.unlearning.base import chosen_datamodel
from tests.lab_fixtures import tiny_datamodel, tiny_lab


def test_a_newer_datamodel_makes_a_new_run(tmp_path):
    lab = tiny_lab(tmp_path / "lab.duckdb", n_models=3)
    store, fs, orig = lab["store"], lab["forget_set"], lab["original"]
    first = tiny_datamodel(store, orig, "logits", 20)
    runs = {m: evaluate(store, fs, m, **kw) for m, kw in
            (("dm_direct", {}), ("dm_matching", {"budget": 0.05}))}  # fmt: skip
    assert {m: evaluate(store, fs, m, **kw) for m, kw in
            (("dm_direct", {}), ("dm_matching", {"budget": 0.05}))} == runs  # fmt: skip
    second = tiny_datamodel(store, orig, "logits", 20)  # the same subset models, a new fit
    assert second != first and chosen_datamodel(store, orig, "logits") == second
    for method, kw in (("dm_direct", {}), ("dm_matching", {"budget": 0.05})):
        again = evaluate(store, fs, method, **kw)
        assert again != runs[method]
        assert store.run(again)["config"]["info"]["datamodel_id"] == second
        assert store.run(runs[method])["config"]["info"]["datamodel_id"] == first
        assert evaluate(store, fs, method, **kw) == again  # reused while it is the newest
    assert evaluate(store, fs, "do_nothing") == evaluate(store, fs, "do_nothing")
