"""Collateral forgetting (``core.collateral``): the decile table and the input proximity against
naive per-point loops on random arrays; the stored run's table and the CLI on a tiny lab."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.collateral import SPLITS, decile_table, input_proximity


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
