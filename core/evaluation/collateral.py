"""Collateral forgetting: how an unlearning run scores on the retain and val points *near* the
forget set, decile by decile of their proximity to it, beside the noise floor.

For a stored evaluation (a method on a forget set F) every point t carries, as stored
(``klom_points``; nothing is recomputed here)

    klom_t  = KLoM(unlearned ‖ oracle)      floor_t = KLoM(oracle₂ ‖ oracle)
    gap_t   = mean margin(unlearned) − mean margin(oracle)   (> 0: still remembered)

Proximity of a retain or val point t to F, in one of two spaces:

- ``input``: the Euclidean distance on the dataset's flattened standardized inputs x (the
  tensors the models train on) to the nearest forget point, or with ``k`` > 1 the mean of the
  distances to its k nearest: ``d_k(t) = (1/k) Σ_{i=1..k} ‖x_t − x_{f_(i)}‖₂`` (f_(i): the
  i-th nearest forget point). Small = near.
- ``datamodel``: the total weight of the forget points in t's margin datamodel (the newest
  margin datamodel of the originals' recipe), in absolute value: ``a(t) = |Σ_{j∈F} W[t, j]|``
  — by the datamodel, how far leaving F out moves t's margin (Datamodel-Direct's predicted
  shift ``Δ_t = −Σ_{j∈F} W[t, j]``, ``core.attribution.datamodels.forget_shift``). The absolute
  value: a point whose margin the forget set lowers (Σ < 0, a forget point of another class that
  looks like it) is as exposed to collateral damage as one it raises. Large = near.

Deciles, per split (retain and val separately): order the split's n points from the nearest to
the farthest (ties: by point index), r = 0..n−1 their rank; decile ``⌊10 r / n⌋ + 1`` (1 = the
nearest tenth, the most affected; sizes differ by at most one, and a split of fewer than 10
points leaves some deciles empty). Per decile: n, the proximity's range, KLoM P50 / P95, the
floor's P50 / P95 (``np.percentile``, linear, as every KLoM summary of the lab) and the mean
signed gap. Do-nothing on a forget set with neighbours (a half class) scores its nearest decile
far above its farthest: what the method should fix without harming the rest.

Light to import (NumPy, pandas): ``input`` proximity loads the dataset (torch) when asked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.common.errors import ConfigError, NotFoundError
from core.store.db import Store

BY = ("input", "datamodel")
N_BINS = 10
SPLITS = ("retain", "val")
COLUMNS = ("split", "decile", "n", "prox_lo", "prox_hi", "klom_p50", "klom_p95", "floor_p50",
           "floor_p95", "gap_mean")  # fmt: skip
NEAREST_FIRST = {"input": False, "datamodel": True}  # True: a larger value is nearer
PROXIMITY_LABELS = {
    "input": "distance to the nearest forget point (flattened standardized inputs)",
    "datamodel": "|Σ_{j∈F} w_tj|: the forget set's total weight in the point's margin datamodel",
}
_CHUNK = 4096  # rows of inputs per distance block (CIFAR-10: 4096 × 3072 float64 ≈ 100 MB)


def assign_deciles(
    proximity: np.ndarray, larger_is_nearer: bool, n_bins: int = N_BINS
) -> np.ndarray:
    """Decile (1..n_bins) of each of n points, 1 = nearest: rank r = 0..n−1 in order of
    proximity, nearest first (ties broken by position), decile ``⌊n_bins · r / n⌋ + 1``."""
    p = np.asarray(proximity, dtype=np.float64).reshape(-1)
    if np.isnan(p).any():
        raise ConfigError("proximity values must not be NaN")
    order = np.argsort(-p if larger_is_nearer else p, kind="stable")
    rank = np.empty(p.size, dtype=np.int64)
    rank[order] = np.arange(p.size)
    return (n_bins * rank) // max(p.size, 1) + 1


def decile_table(
    klom: np.ndarray,
    floor: np.ndarray,
    gap: np.ndarray,
    proximity: np.ndarray,
    split: np.ndarray,
    larger_is_nearer: bool = False,
    n_bins: int = N_BINS,
) -> pd.DataFrame:
    """The collateral table of per-point arrays (all ``(n_points,)``): for each split named in
    ``split`` (``SPLITS`` order first: retain, val; points of any other split, the forget points,
    are left out) and each decile 1..n_bins of proximity within it (``assign_deciles``): ``n``,
    ``prox_lo`` / ``prox_hi`` (the proximity's range), ``klom_p50`` / ``klom_p95``,
    ``floor_p50`` / ``floor_p95`` and ``gap_mean`` (NaN for an empty decile)."""
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (klom, floor, gap, proximity)]
    split = np.asarray(split).reshape(-1)
    if any(a.size != split.size for a in arrays):
        raise ConfigError("klom, floor, gap, proximity and split must have one value per point")
    k, f, g, p = arrays
    rows = []
    for name in SPLITS:
        idx = np.flatnonzero(split == name)
        dec = assign_deciles(p[idx], larger_is_nearer, n_bins)
        for d in range(1, n_bins + 1):
            sel = idx[dec == d]
            row = {"split": name, "decile": d, "n": int(sel.size)}
            if sel.size:
                kq, fq = np.percentile(k[sel], [50, 95]), np.percentile(f[sel], [50, 95])
                row.update(prox_lo=float(p[sel].min()), prox_hi=float(p[sel].max()),
                           klom_p50=float(kq[0]), klom_p95=float(kq[1]), floor_p50=float(fq[0]),
                           floor_p95=float(fq[1]), gap_mean=float(g[sel].mean()))  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def input_proximity(x: np.ndarray, forget: np.ndarray, k: int = 1) -> np.ndarray:
    """Mean Euclidean distance of every row of ``x`` ``(n_points, n_features)`` to its ``k``
    nearest rows among ``forget`` (indices into x): ``d_k(t) = (1/k) Σ_{i≤k} ‖x_t − x_{f_(i)}‖₂``,
    ``(n_points,)`` float64 (a forget point's own distance 0 counts for itself). Computed in
    float64 blocks as ``‖a‖² + ‖b‖² − 2 a·b`` (clipped at 0)."""
    forget = np.asarray(forget, dtype=np.int64).reshape(-1)
    if not 1 <= k <= forget.size:
        raise ConfigError(f"k must lie in 1..{forget.size} (the forget set's size), got {k}")
    fx = np.asarray(x[forget], dtype=np.float64).reshape(forget.size, -1)
    f2 = (fx * fx).sum(1)
    out = np.empty(len(x), dtype=np.float64)
    for lo in range(0, len(x), _CHUNK):
        a = np.asarray(x[lo : lo + _CHUNK], dtype=np.float64).reshape(-1, fx.shape[1])
        d = np.sqrt(np.maximum((a * a).sum(1)[:, None] + f2[None, :] - 2.0 * a @ fx.T, 0.0))
        near = np.partition(d, k - 1, axis=1)[:, :k] if k < forget.size else d
        out[lo : lo + len(a)] = near.mean(1)
    return out


def datamodel_proximity(weights: np.ndarray, forget: np.ndarray) -> np.ndarray:
    """``|Σ_{j∈F} W[t, j]|`` for every target t of margin datamodel weights ``W``
    ``(n_targets, n_train)``: ``(n_targets,)`` float64."""
    from core.attribution.datamodels import forget_shift

    return np.abs(forget_shift(weights, forget))


def run_points(store: Store, run_id: int) -> tuple[dict, pd.DataFrame]:
    """The evaluation's row (method, forget set, sets, dataset) and its stored per-point
    values ``point, split, klom, floor, gap``; ``NotFoundError`` for an unknown run id."""
    ev = store.query_df(
        """SELECT e.run_id, e.method, e.forget_set_id, f.name AS forget_set, f.dataset,
                  e.original_set_id, e.oracle_set_id, e.floor_set_id
           FROM evaluations e JOIN forget_sets f ON f.id = e.forget_set_id WHERE e.run_id = ?""",
        [int(run_id)],
    )
    if ev.empty:
        kind = store.query_df("SELECT kind FROM runs WHERE id = ?", [int(run_id)])
        why = f" (run {run_id} is a {kind['kind'][0]} run, not an evaluation)" if len(kind) else ""
        raise NotFoundError(f"there is no evaluation with id {run_id}{why}")
    pts = store.query_df(
        "SELECT point, split, klom, floor, gap FROM klom_points WHERE run_id = ? ORDER BY point",
        [int(run_id)],
    )
    return ev.iloc[0].to_dict(), pts


def proximity(
    store: Store, info: dict, forget: np.ndarray, by: str, k: int = 1
) -> tuple[np.ndarray, dict]:
    """Proximity of every point (global order: train, then val) to the forget set in space
    ``by`` for the evaluation ``info`` (``run_points``), and what was used (``k``, or the
    datamodel's id and LDS). A ``ConfigError`` naming the command that fits one when ``by`` is
    ``datamodel`` and the originals' recipe has no margin datamodel."""
    if by == "input":
        from core.zoo.data import load_dataset  # torch: only here

        data = load_dataset(str(info["dataset"]), "cpu")
        x = data.all_points()[0].reshape(data.n_train + data.n_val, -1).numpy()
        return input_proximity(x, forget, k), {"k": int(k)}
    if by == "datamodel":
        from core.attribution.datamodels import datamodel_for, margin_weights

        dm = datamodel_for(store, int(info["original_set_id"]), target="margin")
        return datamodel_proximity(margin_weights(store, dm.id), forget), {
            "datamodel_id": dm.id, "datamodel_lds_val": dm.lds_val}  # fmt: skip
    raise ConfigError(f"unknown proximity {by!r}: choose one of {', '.join(BY)}")


def collateral_points(
    store: Store, run_id: int, by: str = "input", k: int = 1
) -> tuple[pd.DataFrame, dict]:
    """The run's retain and val points with their stored ``klom``, ``floor``, ``gap``, their
    ``proximity`` (``by``: ``input`` with ``k``, or ``datamodel``) and ``decile`` within their
    split; and the run's description (run_id, method, forget set, by, k or datamodel)."""
    if by not in BY:
        raise ConfigError(f"unknown proximity {by!r}: choose one of {', '.join(BY)}")
    info, pts = run_points(store, run_id)
    forget = pts.loc[pts["split"] == "forget", "point"].to_numpy(dtype=np.int64)
    prox, used = proximity(store, info, forget, by, k)
    if prox.size != len(pts):
        raise ConfigError(f"run {run_id} stores {len(pts)} points, its proximity has {prox.size}")
    pts = pts.assign(proximity=prox)
    pts = pts[pts["split"].isin(SPLITS)].copy()
    pts["decile"] = 0
    for name in SPLITS:
        sel = (pts["split"] == name).to_numpy()
        pts.loc[sel, "decile"] = assign_deciles(pts.loc[sel, "proximity"].to_numpy(),
                                                NEAREST_FIRST[by])  # fmt: skip
    meta = {"run_id": int(run_id), "method": info["method"],
            "forget_set_id": int(info["forget_set_id"]), "forget_set": info["forget_set"],
            "dataset": info["dataset"], "by": by, "proximity": PROXIMITY_LABELS[by], **used}  # fmt: skip
    return pts.reset_index(drop=True), meta


def collateral(store: Store, run_id: int, by: str = "input", k: int = 1) -> dict:
    """The collateral table of a stored run (``decile_table`` of ``collateral_points``) with
    the run's description and, per split, ``near_far_p95``: decile 1's KLoM P95 over decile
    10's (NaN when decile 10's is 0 or empty)."""
    pts, meta = collateral_points(store, run_id, by, k)
    table = decile_table(pts["klom"], pts["floor"], pts["gap"], pts["proximity"], pts["split"],
                         NEAREST_FIRST[by])  # fmt: skip
    return {**meta, "table": table, "near_far_p95": near_far(table)}


def near_far(table: pd.DataFrame) -> dict[str, float]:
    """Per split: decile 1's KLoM P95 / the last decile's (NaN when undefined)."""
    out = {}
    for name in SPLITS:
        t = table[table["split"] == name].set_index("decile")["klom_p95"]
        near, far = (float(t.iloc[0]), float(t.iloc[-1])) if len(t) else (np.nan, np.nan)
        out[name] = near / far if np.isfinite(near) and np.isfinite(far) and far > 0 else np.nan
    return out
