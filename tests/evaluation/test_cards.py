"""Reproducibility cards: a card rebuilt from nothing in a fresh lab gives the same figures;
malformed cards, occupied targets and other data are refused with one clear line."""

from __future__ import annotations

import copy
import json

import pytest

from core.common.errors import ConfigError, NotFoundError
from core.evaluation.cards import card, dumps, markdown, model_set_card
from core.evaluation.reproduce import load_card, reproduce
from core.evaluation.run import evaluate
from core.store.db import Store
from tests.commands.test_cli import cli
from tests.lab_fixtures import tiny_datamodel, tiny_lab


@pytest.fixture(scope="module")
def om_lab(tmp_path_factory):
    """A tiny lab with one Oracle Matching run (it also makes a held-out and an unlearned set),
    shared by this module's tests (none writes to it)."""
    lab = tiny_lab(tmp_path_factory.mktemp("om") / "lab.duckdb", n_models=4)
    run = evaluate(lab["store"], lab["forget_set"], "oracle_matching", budget=0.05, lr=0.01)
    return lab, run


@pytest.fixture
def om_card(om_lab):
    """The lab, the run, and that run's card as read back from its JSON (the test's own copy)."""
    lab, run = om_lab
    return lab, run, json.loads(dumps(card(lab["store"], run)))


def test_a_run_card_names_everything_it_needs(om_card):
    lab, run, c = om_card
    assert c["kind"] == "run" and c["run_id"] == run
    assert set(c["model_sets"]) == {"originals", "oracles", "floor", "unlearned", "heldout"}
    seeds = [(e["seed_first"], e["seed_last"]) for e in c["model_sets"].values()]
    assert len(set(seeds)) == 5 and c["model_sets"]["originals"]["seed_first"] == 0
    assert c["method"] == {"name": "oracle_matching", "budget": 0.05, "params": {
        "target": "shift", "lr": 0.01, "batch": 64, "forget_weight": 5.0, "retain_sample": 250,
        "momentum": 0.9}}  # fmt: skip
    assert c["costs"]["consumed"] == 1.0 and 0 < c["costs"]["spent"] <= 0.05
    assert c["forget_set"]["indices"] == [int(i) for i in lab["forget"]]
    assert c["environment"] == {"device": "cpu", "threads": 1, "lab_threads": 1}
    assert set(c["figures"]) == {"forget", "retain", "val"}
    md = markdown(c)
    assert f"Run {run}: oracle_matching" in md and "| forget |" in md and "200000" in md


def test_a_run_card_is_reproduced_exactly_in_a_fresh_lab(om_card, tmp_path):
    _, run, c = om_card
    c["code"]["version"] = "0.0.1+elsewhere"  # other code: a warning, not a refusal
    rep = reproduce(c, tmp_path / "new" / "lab.duckdb")
    assert rep["mode"] == "exact", rep["why"]
    assert rep["match"] == "exact" and rep["ok"], [r for r in rep["figures"] if not r["equal"]]
    assert any("0.0.1+elsewhere" in w for w in rep["warnings"])
    new = rep["card"]
    assert new["figures"] == c["figures"]
    for role, e in c["model_sets"].items():
        assert (new["model_sets"][role]["seed_first"], new["model_sets"][role]["masks_sha256"],
                new["model_sets"][role]["margins_sha256"]) == (e["seed_first"], e["masks_sha256"],
                                                                e["margins_sha256"])  # fmt: skip
    # the target now holds a lab: a second rebuild into it is refused
    with pytest.raises(ConfigError, match="already holds a lab"):
        reproduce(c, tmp_path / "new" / "lab.duckdb")


def test_a_datamodel_run_and_a_model_set_card_are_reproduced(tmp_path):
    lab = tiny_lab(tmp_path / "lab.duckdb", n_models=4)
    store = lab["store"]
    tiny_datamodel(store, lab["original"], target="margin", n_models=24)
    run = evaluate(store, lab["forget_set"], "dm_direct")
    c = json.loads(dumps(card(store, run)))
    assert c["datamodel"]["n_models"] == 24 and c["datamodel"]["subset_set"]["n_models"] == 24
    rep = reproduce(c, tmp_path / "dm.duckdb")
    assert rep["match"] == "exact" and rep["ok"]
    assert rep["card"]["datamodel"]["lds_val"] == c["datamodel"]["lds_val"]
    s = json.loads(dumps(model_set_card(store, lab["oracle"])))
    assert s["kind"] == "model_set" and s["forget_set"]["size"] == 20
    rep = reproduce(s, tmp_path / "set.duckdb")
    assert rep["mode"] == "tolerance" and rep["match"] == "exact" and rep["ok"]


def test_malformed_cards_and_other_data_are_refused(om_card, tmp_path):
    lab, run, good = om_card
    path = tmp_path / "card.json"
    for text, words in (
        ("{not json", "is not JSON"),
        ("[1, 2]", "not an unlearning-lab card"),
        (json.dumps({**good, "card_version": 9}), "card_version 9"),
        (json.dumps({**good, "model_sets": {}}), "model_sets.originals"),
        (json.dumps({**good, "method": {**good["method"], "params": "lr=1"}}), "method.params"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match=words):
            load_card(path)
    bad = copy.deepcopy(good)
    bad["forget_set"]["indices"][0] += 1
    with pytest.raises(ConfigError, match="do not match their sha-256"):
        reproduce(bad, tmp_path / "x.duckdb")
    bad = copy.deepcopy(good)
    bad["model_sets"]["originals"]["seed_first"] = -3
    with pytest.raises(ConfigError, match="bad size, chunk size or seed"):
        reproduce(bad, tmp_path / "x.duckdb")
    bad = copy.deepcopy(good)
    bad["model_sets"]["originals"]["imported"] = True
    with pytest.raises(ConfigError, match="imported from files"):
        reproduce(bad, tmp_path / "x.duckdb")
    other = copy.deepcopy(good)
    other["dataset"]["sha256"] = "0" * 64
    with pytest.raises(ConfigError, match="refused"):
        reproduce(other, tmp_path / "x.duckdb")
    with pytest.raises(ConfigError, match="already holds a lab"):
        reproduce(good, lab["store"].path)
    assert not (tmp_path / "x.duckdb").exists()  # nothing was written by a refusal
    with pytest.raises(NotFoundError):
        card(lab["store"], 999)


def test_cli_card_and_reproduce_say_one_clear_line(om_card, tmp_path):
    lab, run, c = om_card
    db = lab["store"].path
    res = cli("card", str(run), "--md", db=db)
    assert res.returncode == 0 and f"Run {run}: oracle_matching" in res.stdout, res.stderr
    for args, words in (
        (("card", "999"), "no evaluation run with id 999"),
        (("card", "--set", "999"), "no model set with id 999"),
        (("card",), "name a run id"),
        (("card", str(run), "--md", "--json"), "choose one of --json and --md"),
    ):
        res = cli(*args, db=db)
        assert res.returncode == 2 and res.stderr.strip().startswith("error:"), res.stderr
        assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1
    path = tmp_path / "card.json"
    path.write_text(json.dumps({**c, "kind": "lab"}))
    res = cli("reproduce", str(path), db=tmp_path / "n.duckdb")
    assert res.returncode == 2 and "malformed card: kind 'lab'" in res.stderr, res.stderr
    path.write_text(json.dumps(c))
    res = cli("reproduce", str(path), db=db)
    assert res.returncode == 2 and "already holds a lab" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_card_downloads_on_compare_and_the_klom_explorer(om_lab, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    lab, run = om_lab
    monkeypatch.setenv("LAB_DB", str(lab["store"].path))
    for name, key in (("klom", "klom_card"), ("compare", "cmp_card")):
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
        at.run()
        at.switch_page(f"views/{name}.py").run()
        assert not at.exception, at.exception
        buttons = {b.proto.label: b.proto for b in at.get("download_button") if key in b.proto.id}
        assert set(buttons) == {"card (JSON)", "card (Markdown)"}, name
        assert all(b.deferred_file_id and b.ignore_rerun for b in buttons.values())  # on click
        assert any(f"Reproducibility card of run {run}" in c.value for c in at.caption), name


def test_oracles_take_explicit_seed_ranges(tmp_path):
    from core.evaluation.run import build_oracles
    from core.forget.sets import random_forget_set
    from core.forget.store import save_forget_set
    from core.zoo.build import build_model_set, create_model_set
    from core.zoo.model_sets import get_model_set
    from tests.lab_fixtures import TINY

    store = Store(tmp_path / "lab.duckdb")
    build_model_set(store, create_model_set(store, "original", TINY.replace(epochs=1), 2, seed=0))
    fs = save_forget_set(store, random_forget_set(1347, 5, seed=0), "digits")
    with pytest.raises(ConfigError, match="different seeds"):
        build_oracles(store, fs, seeds=(5000, 5000))
    main, floor = build_oracles(store, fs, seeds=(7000, 9000))
    assert (get_model_set(store, main).seed, get_model_set(store, floor).seed) == (7000, 9000)
    assert build_oracles(store, fs) == (main, floor)  # no seeds asked: the stored groups
    res = cli("oracles", "--forget-set", str(fs), "--seed", "7001", "--json", db=store.path)
    assert res.returncode == 2 and "overlap model set" in res.stderr, res.stderr
