"""How many models a verdict needs: KLoM's P95 and its noise floor against models per side.

KLoM compares two histograms of as many samples as there are models a side, so both a run's
KLoM and the noise floor (KLoM of a second oracle group against the oracles: what a perfect
unlearner scores) shrink and steady as the number of models per side n grows. This module
re-scores stored margins at smaller n to show how a verdict depends on it.

For one size n and one draw d (``rng = np.random.default_rng([seed, n, d])``, reproducible, and
the same indices whatever other sizes are asked for), in this order:

    o = rng.choice(n_oracle, n, replace=False)      rows of the evaluation's oracles  (Q)
    f = rng.choice(n_floor, n, replace=False)       rows of the noise-floor group     (P, floor)
    u = rng.choice(n_unlearned, n, replace=False)   rows of the run's models          (P, run)
    floor_j = KLoM(floor[f, j] ‖ oracle[o, j])      run_j = KLoM(unlearned[u, j] ‖ oracle[o, j])
    P95 per split = np.percentile(values over the split's points, 95)   (linear, as stored)

- **Without replacement**: a draw holds n distinct models of a side, as a real group of n
  models would.
- **Independent index draws for each side**: P's rows and Q's rows are drawn separately. The
  oracle draw ``o`` is shared by the floor and the run within a draw, as the stored evaluation
  scores both against the same oracle group; ``u`` is drawn last, so the floor's curve is the
  same with or without a run.
- **The floor uses the disjoint groups as stored**: the noise-floor group and the evaluation's
  oracles are separate model sets (no model in both), so the floor is never a split of one
  group, and the run's models are never compared with themselves.

Over the draws of one size: mean, sd (``ddof=1``: at least 2 draws), min and max of the P95.
The draws share a finite pool: two draws of n from N stored models share n²/N of them on
average, so the sd understates the spread of independent groups of n models as n nears N
(roughly by √(1 − n/N)), and at n = N every draw is the whole pool (sd 0).

**Resolved** (the rule): at size n, the gap between the run and the floor on a split is
resolved when ``run mean P95 − 2·sd > floor mean P95 + 2·sd`` (the two ±2 sd bands do not
overlap). It is judged only where every side is really subsampled (n below each side's stored
count); at the full count there is no spread to judge by. ``resolved_at`` is the smallest size
of the grid from which on the rule holds at every judged size.

KLoM is ``core.evaluation.klom.klom`` (vectorized over points); here the draws of one size are placed
side by side as extra columns, so one call scores every draw at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import pandas as pd

from core.common.config import check_int
from core.common.errors import ConfigError, NotFoundError
from core.evaluation.klom import SPLITS, klom, split_indices
from core.forget.oracles import pair_sets
from core.forget.store import get_forget_set
from core.store.db import Store
from core.zoo.model_sets import load_margins

GRID = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)  # default sizes (capped at the stored)
MIN_SIZE, MAX_DRAWS = 2, 1000
STATS = ("mean", "sd", "min", "max")
RULE = (
    "resolved at n models per side: the run's mean P95 minus 2 sd exceeds the floor's mean "
    "P95 plus 2 sd (sd over the draws), judged only below the stored number of models"
)
_CALL_ELEMENTS = 1 << 23  # samples (rows × columns, one side) per klom call: bounds memory


def default_sizes(stored: int) -> list[int]:
    """The grid's sizes up to ``stored`` models per side, and ``stored`` itself."""
    return sorted({n for n in GRID if MIN_SIZE <= n < stored} | {stored})


def check_sizes(sizes: Iterable[int], stored: dict[str, int]) -> list[int]:
    """Sorted distinct sizes, each at least 2 and at most the fewest models any side stores."""
    top = min(stored.values())
    out = sorted({int(n) for n in sizes})
    if not out:
        raise ConfigError("give at least one size (models per side)")
    for n in out:
        check_int("size", n, lo=MIN_SIZE)
    if out[-1] > top:
        have = ", ".join(f"{k} {v}" for k, v in stored.items())
        raise ConfigError(
            f"size {out[-1]} is more models per side than are stored ({have}); the largest "
            f"size possible is {top}"
        )
    return out


def p95_draws(
    oracle: np.ndarray,
    floor: np.ndarray,
    splits: dict[str, np.ndarray],
    sizes: list[int],
    draws: int = 5,
    seed: int = 0,
    unlearned: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """P95 of KLoM per split for every size and draw (see the module docstring).

    oracle / floor / unlearned: ``(n_models, n_points)`` margins (model counts may differ);
    splits: name → point indices. Returns ``{"floor": a, "run": b}`` (``run`` only with
    ``unlearned``), each ``(len(sizes), draws, len(splits))`` float64.
    """
    sides = {"oracle": oracle, "floor": floor}
    if unlearned is not None:
        sides["run"] = unlearned
    stored = {k: int(v.shape[0]) for k, v in sides.items()}
    sizes = check_sizes(sizes, stored)
    check_int("draws", draws, lo=2, hi=MAX_DRAWS)
    n_points = oracle.shape[1]
    idx = [np.asarray(splits[s], dtype=np.int64) for s in splits]
    out = {k: np.empty((len(sizes), draws, len(idx))) for k in sides if k != "oracle"}
    for i, n in enumerate(sizes):
        rows = [_draw_rows(seed, n, d, stored) for d in range(draws)]
        per_call = max(1, _CALL_ELEMENTS // (n * n_points))  # draws scored in one klom call
        for side, values in out.items():
            for s in range(0, draws, per_call):
                group = rows[s : s + per_call]
                p = np.concatenate([sides[side][r[side]] for r in group], axis=1)
                q = np.concatenate([oracle[r["oracle"]] for r in group], axis=1)
                kl = klom(p, q).reshape(len(group), n_points)  # (draws in group, n_points)
                for k, pts in enumerate(idx):
                    values[i, s : s + len(group), k] = (
                        np.percentile(kl[:, pts], 95, axis=1) if pts.size else np.nan
                    )
    return out


def _draw_rows(seed: int, n: int, d: int, stored: dict[str, int]) -> dict[str, np.ndarray]:
    """The rows of draw ``d`` at size ``n``: oracle, then floor, then run (the order matters)."""
    rng = np.random.default_rng([seed, n, d])
    return {side: rng.choice(count, n, replace=False) for side, count in stored.items()}


def curve_table(
    values: dict[str, np.ndarray], sizes: list[int], splits: list[str], stored: dict[str, int]
) -> pd.DataFrame:
    """One row per (split, n): ``floor_mean``, ``floor_sd``, ``floor_min``, ``floor_max``, the
    same for ``run_`` when there is a run, and ``resolved`` (True / False; None where not
    judged: no run, or n at a side's stored count)."""
    sizes = sorted(set(sizes))
    rows = []
    for k, split in enumerate(splits):
        for i, n in enumerate(sizes):
            row: dict = {"split": split, "n": n}
            for side, v in values.items():
                x = v[i, :, k]
                row.update({f"{side}_mean": float(np.mean(x)), f"{side}_sd": float(np.std(x, ddof=1)),
                            f"{side}_min": float(np.min(x)), f"{side}_max": float(np.max(x))})  # fmt: skip
            judged = "run" in values and n < min(stored.values())
            row["resolved"] = _resolved(row) if judged else None
            rows.append(row)
    return pd.DataFrame(rows)


def _resolved(row: dict) -> bool:
    return bool(row["run_mean"] - 2 * row["run_sd"] > row["floor_mean"] + 2 * row["floor_sd"])


def resolved_at(table: pd.DataFrame) -> dict[str, int | None]:
    """Per split, the smallest size from which on every judged size is resolved (None: never)."""
    out: dict[str, int | None] = {}
    for split, rows in table.groupby("split", sort=False):
        judged = rows[rows["resolved"].notna()].sort_values("n")
        first = None
        for n, ok in zip(judged["n"], judged["resolved"], strict=True):
            first = (first or int(n)) if ok else None
        out[str(split)] = first
    return out


def _n_train(store: Store, set_id: int) -> int:
    """The train split's size: the width of the set's stored training masks."""
    row = store.query_df(
        "SELECT masks_file FROM model_chunks WHERE set_id = ? ORDER BY chunk LIMIT 1", [set_id]
    )
    if row.empty:
        raise ConfigError(f"model set {set_id} has no stored models")
    return int(store.load_array(row["masks_file"][0]).shape[1])


def models_needed(
    store: Store,
    forget_set_id: int,
    run_id: int | None = None,
    sizes: list[int] | None = None,
    draws: int = 5,
    seed: int = 0,
) -> dict:
    """The curve of one forget set (and run) from the stored margins; nothing is written.

    Without a run: the floor of the forget set's default pairing (``core.forget.oracles.pair_sets``).
    With a run (an evaluation of this forget set): its own oracle and floor groups and its
    models. ``sizes`` default: ``default_sizes`` of the fewest stored models. Returns a dict:
    ids, ``stored`` (models per side), ``sizes``, ``draws``, ``seed``, ``rule``, ``table``
    (``curve_table``), ``resolved_at`` (with a run) and ``wall_s``.
    """
    t0 = time.perf_counter()
    fs, _ = get_forget_set(store, forget_set_id)
    unlearned, method = None, None
    if run_id is None:
        _, oracle_id, floor_id = pair_sets(store, forget_set_id)
    else:
        row = store.query_df(
            """SELECT forget_set_id, method, oracle_set_id, floor_set_id, margins_file
               FROM evaluations WHERE run_id = ?""",
            [run_id],
        )
        if row.empty:
            raise NotFoundError(f"there is no evaluation with id {run_id}")
        r = row.iloc[0]
        if int(r["forget_set_id"]) != forget_set_id:
            other, _ = get_forget_set(store, int(r["forget_set_id"]))
            raise ConfigError(
                f"run {run_id} is an evaluation of forget set {int(r['forget_set_id'])} "
                f"({other.name}), not of forget set {forget_set_id} ({fs.name})"
            )
        oracle_id, floor_id, method = int(r["oracle_set_id"]), int(r["floor_set_id"]), r["method"]
        unlearned = store.load_array(r["margins_file"])
    oracle, floor = load_margins(store, oracle_id), load_margins(store, floor_id)
    n_train = _n_train(store, oracle_id)
    splits = split_indices(n_train, oracle.shape[1] - n_train, fs.indices)
    stored = {"oracle": oracle.shape[0], "floor": floor.shape[0]}
    if unlearned is not None:
        stored["run"] = unlearned.shape[0]
    sizes = check_sizes(sizes if sizes else default_sizes(min(stored.values())), stored)
    values = p95_draws(oracle, floor, splits, sizes, draws, seed, unlearned)
    table = curve_table(values, sizes, list(SPLITS), stored)
    out = {
        "forget_set_id": forget_set_id, "forget_set": fs.name, "run_id": run_id,
        "method": method, "oracle_set_id": oracle_id, "floor_set_id": floor_id,
        "stored": stored, "sizes": sizes, "draws": draws, "seed": seed, "rule": RULE,
        "table": table,
    }  # fmt: skip
    if unlearned is not None:
        out["resolved_at"] = resolved_at(table)
    out["wall_s"] = time.perf_counter() - t0
    return out
