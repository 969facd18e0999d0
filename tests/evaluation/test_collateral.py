"""Collateral forgetting (``core.evaluation.collateral``): the decile table and the input proximity against
naive per-point loops on random arrays; the stored run's table and the CLI on a tiny lab."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.evaluation.collateral import SPLITS, decile_table, input_proximity

pytestmark = pytest.mark.xdist_group("collateral")  # one worker builds the module's lab once


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (NumPy's default), by hand."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _naive_table(klom, floor, gap, prox, split, larger_is_nearer):
    """The collateral table, one point at a time: rank by proximity (nearest first, ties by
    index), decile = ⌊10 r / n⌋ + 1, then the statistics of each decile's points."""
    rows = []
    for name in SPLITS:
        members = [i for i in range(len(split)) if split[i] == name]
        key = (lambda i: (-prox[i], i)) if larger_is_nearer else (lambda i: (prox[i], i))
        ranked = sorted(members, key=key)
        deciles: dict[int, list[int]] = {d: [] for d in range(1, 11)}
        for r, i in enumerate(ranked):
            deciles[10 * r // len(ranked) + 1].append(i)
        for d in range(1, 11):
            pts = deciles[d]
            row = {"split": name, "decile": d, "n": len(pts)}
            if pts:
                row.update(
                    prox_lo=min(prox[i] for i in pts), prox_hi=max(prox[i] for i in pts),
                    klom_p50=_percentile([klom[i] for i in pts], 50),
                    klom_p95=_percentile([klom[i] for i in pts], 95),
                    floor_p50=_percentile([floor[i] for i in pts], 50),
                    floor_p95=_percentile([floor[i] for i in pts], 95),
                    gap_mean=sum(gap[i] for i in pts) / len(pts),
                )  # fmt: skip
            rows.append(row)
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("larger_is_nearer", [False, True])
def test_decile_table_matches_a_naive_loop(seed, larger_is_nearer):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 400))
    split = rng.choice(["forget", "retain", "val"], size=n, p=[0.1, 0.6, 0.3])
    klom, floor = rng.exponential(1.0, n), rng.exponential(0.3, n)
    gap = rng.normal(0, 1, n)
    prox = rng.integers(0, 25, n).astype(float)  # many ties: broken by the point's index
    got = decile_table(klom, floor, gap, prox, split, larger_is_nearer)
    want = _naive_table(klom.tolist(), floor.tolist(), gap.tolist(), prox.tolist(),
                        split.tolist(), larger_is_nearer)  # fmt: skip
    assert len(got) == len(want) == 20
    for g, w in zip(got.to_dict("records"), want, strict=True):
        assert (g["split"], g["decile"], g["n"]) == (w["split"], w["decile"], w["n"])
        for col in ("prox_lo", "prox_hi", "klom_p50", "klom_p95", "floor_p50", "floor_p95",
                    "gap_mean"):  # fmt: skip
            assert g[col] == pytest.approx(w[col], rel=1e-12, abs=1e-12), (g, w, col)
    # deciles partition each split: sizes differ by at most one
    for name in SPLITS:
        sizes = got.loc[got["split"] == name, "n"]
        assert sizes.sum() == (split == name).sum() and sizes.max() - sizes.min() <= 1


def test_a_split_of_fewer_than_ten_points_leaves_deciles_empty():
    split = np.array(["retain"] * 4 + ["val"] * 12)
    t = decile_table(np.arange(16.0), np.zeros(16), np.zeros(16), np.arange(16.0), split)
    r = t[t["split"] == "retain"]
    assert r["n"].tolist() == [1, 0, 1, 0, 0, 1, 0, 1, 0, 0]
    assert r.loc[r["n"] == 0, "klom_p95"].isna().all()
    assert r.loc[r["n"] == 1, "klom_p95"].tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("k", [1, 3])
def test_input_proximity_matches_a_naive_loop(k):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(60, 2, 3, 3)).astype(np.float32)  # (n, C, H, W): flattened inside
    forget = np.array([3, 17, 40, 41, 59])
    got = input_proximity(x, forget, k)
    for t in range(len(x)):
        d = sorted(math.dist(x[t].ravel().tolist(), x[f].ravel().tolist()) for f in forget)
        assert got[t] == pytest.approx(sum(d[:k]) / k, rel=1e-9, abs=1e-6)
    with pytest.raises(ValueError, match="k must lie in 1..5"):
        input_proximity(x, forget, 6)


# -- a stored run on a tiny lab: the CLI and the Compare page's tab ------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A tiny lab (4 models a side) with a do-nothing and a gradient-descent run."""
    from core.evaluation.run import evaluate
    from tests.lab_fixtures import tiny_lab

    lab = tiny_lab(tmp_path_factory.mktemp("coll") / "lab.duckdb", n_models=4)
    store, fs = lab["store"], lab["forget_set"]
    lab["runs"] = {"do_nothing": evaluate(store, fs, "do_nothing"),
                   "gradient_descent": evaluate(store, fs, "gradient_descent", budget=0.05)}  # fmt: skip
    return lab


def _naive_points(store, run_id: int, forget) -> tuple[list, list]:
    """The run's stored per-point rows and each point's distance to its nearest forget point,
    one pair of points at a time on the dataset's flattened inputs."""
    from core.evaluation.run import evaluation
    from core.zoo.data import load_dataset

    pts = evaluation(store, run_id)["points"]
    x = load_dataset("digits").all_points()[0].reshape(len(pts), -1).double().numpy()
    near = [min(math.dist(x[t], x[f]) for f in forget) for t in range(len(pts))]
    return pts.to_dict("records"), near


def test_cli_prints_the_stored_runs_table_and_refuses_bad_input(lab):
    from tests.commands.test_cli import cli

    store, run = lab["store"], lab["runs"]["do_nothing"]
    res = cli("collateral", "--run", str(run), "--json", db=store.path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert (out["run_id"], out["method"], out["by"], out["k"]) == (run, "do_nothing", "input", 1)
    rows, near = _naive_points(store, run, lab["forget"])
    want = _naive_table([r["klom"] for r in rows], [r["floor"] for r in rows],
                        [r["gap"] for r in rows], near, [r["split"] for r in rows], False)  # fmt: skip
    assert len(out["rows"]) == len(want) == 20
    for g, w in zip(out["rows"], want, strict=True):
        assert {c: g[c] for c in ("split", "decile", "n")} == {
            c: w[c] for c in ("split", "decile", "n")
        }
        for col in ("prox_lo", "prox_hi", "klom_p50", "klom_p95", "floor_p50", "floor_p95",
                    "gap_mean"):  # fmt: skip
            assert g[col] == pytest.approx(w[col], rel=1e-6, abs=1e-6), (g, w, col)
    text = cli("collateral", "--run", str(run), "--k", "3", db=store.path)
    assert text.returncode == 0 and "k = 3" in text.stdout and "nearest decile" in text.stdout
    for args, msg in ((["--run", "999"], "error: there is no evaluation with id 999"),
                      (["--run", str(run), "--by", "datamodel"], "fit one first"),
                      (["--run", str(run), "--k", "0"], "k must be at least 1"),
                      (["--run", str(run), "--k", "21"], "k must lie in 1..20")):  # fmt: skip
        res = cli("collateral", *args, "--json", db=store.path)
        assert res.returncode == 2 and res.stdout == "", (args, res.stdout)
        assert res.stderr.count("\n") == 1 and msg in res.stderr, (args, res.stderr)


@pytest.fixture(scope="module")
def lab_dm(lab):
    """The lab with a margin datamodel of the originals' recipe (20 subset models)."""
    from tests.lab_fixtures import tiny_datamodel

    return {**lab, "dm": tiny_datamodel(lab["store"], lab["original"], "margin", 20)}


def test_datamodel_proximity_is_the_forget_sets_absolute_weight(lab_dm):
    from core.attribution.datamodels import margin_weights
    from core.evaluation.collateral import collateral_points

    store, run = lab_dm["store"], lab_dm["runs"]["gradient_descent"]
    pts, meta = collateral_points(store, run, "datamodel")
    assert meta["datamodel_id"] == lab_dm["dm"]
    w = margin_weights(store, lab_dm["dm"])
    for p, prox in zip(pts["point"], pts["proximity"], strict=True):
        assert prox == pytest.approx(abs(sum(float(w[p, j]) for j in lab_dm["forget"])), abs=1e-6)
    retain = pts[pts["split"] == "retain"]
    d1, d10 = retain[retain["decile"] == 1], retain[retain["decile"] == 10]
    assert d1["proximity"].min() >= d10["proximity"].max()  # decile 1: the most weight


def test_compare_page_shows_the_collateral_tab_and_a_deciles_points(lab_dm, monkeypatch):
    from core.evaluation.collateral import collateral_points
    from tests.dashboard.test_dashboard_klom import page

    monkeypatch.setenv("LAB_DB", str(lab_dm["store"].path))
    at = page("compare")
    runs = lab_dm["runs"]
    assert set(at.multiselect[0].value) == set(runs.values())  # best run of each method
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if "proximity to the forget set" in c.proto.spec)  # fmt: skip
    bars = [t for t in spec["data"] if t["type"] == "bar"]
    assert len(bars) == 2 and any("noise floor" in (t.get("name") or "") for t in spec["data"])
    assert {tuple(c) for b in bars for c in b["customdata"]} == {
        (r, d) for r in runs.values() for d in range(1, 11)}  # fmt: skip

    def shown(run, decile, split, by):
        pts, _ = collateral_points(lab_dm["store"], run, by)
        want = pts[(pts["split"] == split) & (pts["decile"] == decile)]
        head = [m.value for m in at.markdown if m.value.startswith("**Decile")]
        assert head and head[0].startswith(f"**Decile {decile} of {split} · run {run}**"), head
        table = next(d.value for d in at.dataframe if "proximity" in d.value.columns)
        assert sorted(table["point"]) == sorted(want["point"])
        assert table["klom"].is_monotonic_decreasing
        link = next(p for p in at.get("page_link") if "KLoM explorer" in p.proto.label
                    and "Point" in p.proto.label)  # fmt: skip
        assert f"of run {run}" in link.proto.label

    shown(runs["do_nothing"], 1, "retain", "input")  # the first run, the nearest decile
    at.selectbox(key="cmp_coll_run").set_value(runs["gradient_descent"])
    at.selectbox(key="cmp_coll_dec").set_value(4)
    at.radio(key="cmp_coll_split").set_value("val").run()
    assert not at.exception, at.exception
    shown(runs["gradient_descent"], 4, "val", "input")
    at.radio(key="cmp_coll_by").set_value("datamodel").run()
    assert not at.exception, at.exception
    shown(runs["gradient_descent"], 4, "val", "datamodel")
