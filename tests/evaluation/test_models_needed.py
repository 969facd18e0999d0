"""``core.evaluation.models_needed`` (P95 of KLoM and its floor against models per side), its CLI command
``models-needed`` on a tiny lab, and the KLoM explorer's chart of it (AppTest)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.common.errors import ConfigError
from core.evaluation.models_needed import curve_table, default_sizes, p95_draws, resolved_at
from core.evaluation.run import evaluate, evaluation
from core.forget.sets import random_forget_set
from core.forget.store import save_forget_set
from tests.conftest import ROOT
from tests.lab_fixtures import tiny_lab


def naive_klom(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KLoM per point written out with np.histogram (DESIGN.md), independent of core.evaluation.klom."""
    out = np.zeros(p.shape[1])
    for j in range(p.shape[1]):
        a, b = np.clip(p[:, j], -100, 100), np.clip(q[:, j], -100, 100)
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        if lo == hi:
            continue
        cp, _ = np.histogram(a, bins=20, range=(lo, hi))
        cq, _ = np.histogram(b, bins=20, range=(lo, hi))
        pp, qq = cp / a.size, cq / b.size
        m = pp > 0
        qq = np.where(m, np.maximum(qq, 1e-5), qq)
        qq = qq / qq.sum()
        out[j] = np.sum(pp[m] * np.log(pp[m] / qq[m]))
    return out


def naive_curve(oracle, floor, unlearned, splits, sizes, draws, seed):
    """The curve by a plain loop: per size and draw, fresh rows of each side, KLoM, P95."""
    res = {"floor": {}, "run": {}}
    for n in sizes:
        for d in range(draws):
            rng = np.random.default_rng([seed, n, d])
            o = rng.choice(oracle.shape[0], n, replace=False)
            f = rng.choice(floor.shape[0], n, replace=False)
            u = rng.choice(unlearned.shape[0], n, replace=False)
            for side, rows in (("floor", floor[f]), ("run", unlearned[u])):
                kl = naive_klom(rows, oracle[o])
                for s, idx in splits.items():
                    res[side].setdefault((s, n), []).append(np.percentile(kl[idx], 95))
    return res


@pytest.fixture
def arrays():
    rng = np.random.default_rng(3)
    n_points = 40
    oracle = rng.normal(0, 1, (30, n_points))
    floor = rng.normal(0, 1, (25, n_points))
    unlearned = rng.normal(0, 1, (20, n_points)) + np.r_[np.full(10, 6.0), np.zeros(30)]
    splits = {"forget": np.arange(10), "retain": np.arange(10, 30), "val": np.arange(30, 40)}
    return oracle, floor, unlearned, splits


def test_curve_matches_a_direct_subsample(arrays):
    oracle, floor, unlearned, splits = arrays
    sizes, draws, seed = [4, 10, 20], 3, 7
    got = p95_draws(oracle, floor, splits, sizes, draws, seed, unlearned)
    want = naive_curve(oracle, floor, unlearned, splits, sizes, draws, seed)
    for side in ("floor", "run"):
        for i, n in enumerate(sizes):
            for k, s in enumerate(splits):
                np.testing.assert_allclose(got[side][i, :, k], want[side][(s, n)], rtol=1e-12)
    table = curve_table(got, sizes, list(splits), {"oracle": 30, "floor": 25, "run": 20})
    row = table[(table["split"] == "forget") & (table["n"] == 10)].iloc[0]
    v = np.array(want["run"][("forget", 10)])
    assert row["run_mean"] == pytest.approx(v.mean()) and row["run_sd"] == pytest.approx(
        v.std(ddof=1)
    )
    assert (row["run_min"], row["run_max"]) == (pytest.approx(v.min()), pytest.approx(v.max()))
    # n = 20 is every stored run model: not judged; the shifted forget split resolves below it
    assert table.loc[table["n"] == 20, "resolved"].isna().all()
    assert table.loc[(table["split"] == "forget") & (table["n"] == 10), "resolved"].item() is True


def test_draws_are_seeded_and_the_floor_ignores_the_run(arrays):
    oracle, floor, unlearned, splits = arrays
    a = p95_draws(oracle, floor, splits, [5, 10], 3, 0, unlearned)
    b = p95_draws(oracle, floor, splits, [10, 5], 3, 0)  # same draws whatever the order
    np.testing.assert_array_equal(a["floor"], b["floor"])
    assert "run" not in b
    c = p95_draws(oracle, floor, splits, [5, 10], 3, 1, unlearned)
    assert not np.array_equal(a["run"], c["run"])
    single = p95_draws(oracle, floor, splits, [10], 3, 0)  # a size's draws need no other size
    np.testing.assert_array_equal(single["floor"][0], a["floor"][1])


def test_checks_and_defaults(arrays):
    oracle, floor, unlearned, splits = arrays
    with pytest.raises(ConfigError, match="largest size possible is 20"):
        p95_draws(oracle, floor, splits, [10, 21], 3, 0, unlearned)
    with pytest.raises(ConfigError, match="draws"):
        p95_draws(oracle, floor, splits, [10], 1, 0)
    with pytest.raises(ConfigError, match="size"):
        p95_draws(oracle, floor, splits, [1, 10], 3, 0)
    assert default_sizes(100) == [5, 10, 20, 50, 100]
    assert default_sizes(6) == [5, 6] and default_sizes(120) == [5, 10, 20, 50, 100, 120]


def test_resolved_at_needs_every_larger_judged_size():
    t = pd.DataFrame({
        "split": ["forget"] * 4 + ["val"] * 4, "n": [5, 10, 20, 30] * 2,
        "resolved": [True, False, True, None, False, False, False, None],
    })  # fmt: skip
    assert resolved_at(t) == {"forget": 20, "val": None}


# ----------------------------------------------------------------------------- on a tiny lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = tiny_lab(tmp_path_factory.mktemp("needed") / "lab.duckdb")
    lab["run_id"] = evaluate(lab["store"], lab["forget_set"], "do_nothing")
    other = random_forget_set(1347, 5, seed=1, name="other")  # no oracles
    lab["other"] = save_forget_set(lab["store"], other, "digits")
    return lab


def run_cli(capsys, *args: str, db) -> tuple[int, str, str]:
    rc = main(["models-needed", *args, "--db", str(db)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_curve_ends_at_the_stored_evaluation(lab, capsys):
    import json

    db, fs, run = lab["store"].path, str(lab["forget_set"]), str(lab["run_id"])
    rc, out, err = run_cli(capsys, "--forget-set", fs, "--run", run, "--sizes", "3,6",
                           "--draws", "2", "--json", db=db)  # fmt: skip
    assert rc == 0, err
    res = json.loads(out)
    assert res["stored"] == {"oracle": 6, "floor": 6, "run": 6} and res["sizes"] == [3, 6]
    summ = evaluation(lab["store"], lab["run_id"])["summaries"].set_index(["split", "metric"])
    for r in res["table"]:
        if r["n"] == 6:  # every stored model: the stored evaluation's own P95, both sides
            assert r["run_mean"] == pytest.approx(summ.loc[(r["split"], "klom"), "p95"])
            assert r["floor_mean"] == pytest.approx(summ.loc[(r["split"], "floor"), "p95"])
            assert r["run_sd"] == 0 and r["resolved"] is None
    assert set(res["resolved_at"]) == {"forget", "retain", "val"}
    rc, out, err = run_cli(capsys, "--forget-set", fs, "--sizes", "2,4", "--draws", "2", db=db)
    assert rc == 0, err
    assert "floor P95" in out and "run P95" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--forget-set", "999"], "forget set"),
        (["--forget-set", "{fs}", "--run", "999"], "no evaluation with id 999"),
        (["--forget-set", "{other}", "--run", "{run}"], "is an evaluation of forget set {fs}"),
        (["--forget-set", "{fs}", "--sizes", "3,7"], "largest size possible is 6"),
        (["--forget-set", "{fs}", "--sizes", "3,x"], "--sizes must be whole numbers"),
        (["--forget-set", "{other}"], "no oracle models yet"),
        (["--forget-set", "{fs}", "--sizes", "1,3"], "size"),
        (["--forget-set", "{fs}", "--draws", "1"], "draws"),
    ],
)
def test_cli_refuses_in_one_line(lab, capsys, args, message):
    ids = {"fs": lab["forget_set"], "other": lab["other"], "run": lab["run_id"]}
    rc, out, err = run_cli(capsys, *(a.format(**ids) for a in args), db=lab["store"].path)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message.format(**ids) in err


def test_klom_page_draws_the_curve_on_a_button(lab, tmp_path, monkeypatch):
    src = lab["store"]
    shutil.copy(src.path, tmp_path / "lab.duckdb")
    shutil.copytree(src.files_dir, tmp_path / "lab.files")
    monkeypatch.setenv("LAB_DB", str(tmp_path / "lab.duckdb"))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/klom.py").run()
    assert not at.exception, at.exception
    assert "How many models a verdict needs" in [h.value for h in at.subheader]
    charts = len(at.get("plotly_chart"))
    at.button(key="needed_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert len(at.get("plotly_chart")) == charts + 1
    assert any("gap to the floor is resolved" in c.value for c in at.caption)
