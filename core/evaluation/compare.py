"""The comparison of unlearning runs on one forget set: a table, and each method's Pareto front
of KLoM against compute cost (the seed paper's Figure 2).

Light to import (no torch): the dashboard's Compare page reads it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from core.store.db import Store

SPLITS = ("forget", "retain", "val")
AVG_COLUMNS = ("klom_p95_avg", "klom_floor_p95_avg", "klom_p99_avg", "klom_floor_p99_avg")
# membership-audit columns (core.evaluation.audits): column → (audit, metric, value | floor); NaN for a run
# not audited (stored before audits existed: ``python -m core audit --all`` fills them in)
AUDIT_COLUMNS = {
    "ulira_bacc_mean": ("ulira", "bacc_mean", "value"),
    "ulira_floor_bacc_mean": ("ulira", "bacc_mean", "floor"),
    "ulira_tpr1": ("ulira", "tpr_at_1pct_fpr", "value"),
    "ulira_floor_tpr1": ("ulira", "tpr_at_1pct_fpr", "floor"),
    "ulira_tpr5": ("ulira", "tpr_at_5pct_fpr", "value"),
    "ulira_floor_tpr5": ("ulira", "tpr_at_5pct_fpr", "floor"),
    "mia_forget_member_share": ("mia", "forget_member_share", "value"),
    "mia_floor_forget_member_share": ("mia", "forget_member_share", "floor"),
}
# each score's noise floor: the runs_table column of the same figure between oracle groups (what
# a perfect unlearner scores with this many models); None: the score is 0 for a perfect one
SCORE_FLOORS = {
    "klom_p99_avg": "klom_floor_p99_avg", "klom_p95_avg": "klom_floor_p95_avg",
    **{f"{s}_{q}": f"{s}_floor_{q}" for s in SPLITS for q in ("p95", "p99")},
    "ulira_bacc_mean": "ulira_floor_bacc_mean", "ulira_tpr1": "ulira_floor_tpr1",
    "ulira_tpr5": "ulira_floor_tpr5", "mia_forget_share_excess": None,
}  # fmt: skip
# what a method reads beyond the originals and the forget set (light: no registry import; a test
# checks it against the registry's ``needs_heldout`` / ``datamodel_target`` marks)
ORACLE_ACCESS = {"oracle_matching": "oracle", "retrain": "is the oracle",
                 "dm_direct": "datamodel", "dm_matching": "datamodel"}  # fmt: skip


def oracle_access(method: str) -> str:
    """``oracle`` (uses oracle models: OM's held-out group), ``is the oracle`` (retrain),
    ``datamodel`` (subset models, no oracle: Datamodel-Direct, DMM) or ``none``."""
    return ORACLE_ACCESS.get(method, "none")


def runs_table(store: Store, forget_set_id: int) -> pd.DataFrame:
    """One row per evaluation of the forget set: run_id, method, budget, the other
    hyperparameters (``params``, JSON), compute cost (fine-tuning, ``cost``), consumed cost
    (retrainings per model behind what the method read: OM's held-out oracles, the datamodels'
    subset models; ``consumed_cost``), ``total_cost`` = cost + consumed_cost, ``oracle_access``,
    per split the KLoM P95 / P99, the floor's P95 / P99 and the accuracy (``acc_kind``: argmax,
    or the positive-margin share of a margin-datamodel Datamodel-Direct run), the default score
    ``klom_p99_avg`` (P99 averaged over the three splits, as in the seed paper's Figure 2) and its
    floor ``klom_floor_p99_avg`` (likewise P95), then the membership audits' figures and their
    oracle-vs-oracle floors (``AUDIT_COLUMNS``)."""
    from core.evaluation.run import accuracy_kind  # lazily: core.evaluation.run imports torch

    ev = store.query_df(
        """SELECT e.run_id, e.method, e.compute_cost, r.config, r.device, r.wall_time_s, r.created_at
           FROM evaluations e JOIN runs r ON r.id = e.run_id
           WHERE e.forget_set_id = ? ORDER BY e.run_id""",
        [forget_set_id],
    )
    cols = ["run_id", "method", "budget", "params", "cost", "consumed_cost", "total_cost",
            "oracle_access", "acc_kind", "device", "wall_time_s", "created_at",
            "reset_share"]  # fmt: skip
    for s in SPLITS:
        cols += [f"{s}_p95", f"{s}_p99", f"{s}_floor_p95", f"{s}_floor_p99", f"{s}_acc"]
    if ev.empty:
        return pd.DataFrame(columns=[*cols, *AVG_COLUMNS, *AUDIT_COLUMNS,
                                     "mia_forget_share_excess"])  # fmt: skip
    summ = store.query_df(
        """SELECT run_id, split, metric, p95, p99, accuracy FROM klom_summaries
           WHERE run_id IN (SELECT unnest(?::BIGINT[]))""",
        [ev["run_id"].astype(int).tolist()],
    ).set_index(["run_id", "split", "metric"])
    rows = []
    for r in ev.itertuples():
        cfg = json.loads(r.config)
        opts = dict(cfg.get("options") or {})
        budget = opts.pop("budget", None)
        row = {"run_id": int(r.run_id), "method": r.method, "budget": budget,
               "params": json.dumps(opts, sort_keys=True), "cost": float(r.compute_cost),
               "consumed_cost": _consumed(store, r.method, cfg),
               "reset_share": (cfg.get("info") or {}).get("reset_below_head", np.nan),
               "oracle_access": oracle_access(r.method),
               "acc_kind": accuracy_kind(r.method, cfg),
               "device": r.device, "wall_time_s": float(r.wall_time_s),
               "created_at": r.created_at}  # fmt: skip
        for s in SPLITS:
            k, f = summ.loc[(r.run_id, s, "klom")], summ.loc[(r.run_id, s, "floor")]
            row.update({f"{s}_p95": k.p95, f"{s}_p99": k.p99, f"{s}_floor_p95": f.p95,
                        f"{s}_floor_p99": f.p99, f"{s}_acc": k.accuracy})  # fmt: skip
        rows.append(row)
    df = pd.DataFrame(rows, columns=cols)
    df["total_cost"] = df["cost"] + df["consumed_cost"]
    for q in ("p95", "p99"):
        df[f"klom_{q}_avg"] = df[[f"{s}_{q}" for s in SPLITS]].mean(axis=1)
        df[f"klom_floor_{q}_avg"] = df[[f"{s}_floor_{q}" for s in SPLITS]].mean(axis=1)
    audits = store.query_df(
        """SELECT run_id, audit, metric, value, floor FROM audit_summaries
           WHERE run_id IN (SELECT unnest(?::BIGINT[]))""",
        [df["run_id"].tolist()],
    ).set_index(["run_id", "audit", "metric"])
    for col, (audit, metric, which) in AUDIT_COLUMNS.items():
        df[col] = [
            float(audits.loc[(r, audit, metric), which])
            if (r, audit, metric) in audits.index
            else np.nan
            for r in df["run_id"]
        ]
    # the MIA share is good when it matches the oracles', not when it is low (calling forget
    # points non-members more often than oracles do gives them away too): its distance ranks
    df["mia_forget_share_excess"] = (
        df["mia_forget_member_share"] - df["mia_floor_forget_member_share"]
    ).abs()
    return df


def _consumed(store: Store, method: str, cfg: dict) -> float:
    """The run's consumed cost as recorded; for an OM run stored without it, derived: OM read
    its held-out oracle group (of the originals' recipe, one retraining per model), so
    consumed = the group's size / N originals (1 when the group is not found: it is built with
    the originals' size)."""
    if "consumed_cost" in cfg or method != "oracle_matching":
        return float(cfg.get("consumed_cost") or 0.0)
    sizes = store.query_df(
        """SELECT o.n_models AS n, h.n_models AS held FROM model_sets o JOIN model_sets h
           ON h.base_set_id = o.id AND h.role = 'heldout' AND h.forget_set_id = ?
           WHERE o.id = ? ORDER BY h.id DESC LIMIT 1""",
        [cfg.get("forget_set_id"), cfg.get("original_set_id")],
    )
    return float(sizes["held"].iloc[0] / sizes["n"].iloc[0]) if len(sizes) else 1.0


def noise_floor(runs: pd.DataFrame, score: str) -> tuple[float, float] | None:
    """The noise floor of ``score`` over ``runs`` as ``(low, high)``: the least and the greatest
    of the runs' floor values (``SCORE_FLOORS``; equal when every run was scored against the same
    oracle groups). None when the score has no floor column or no run has a floor value."""
    col = SCORE_FLOORS.get(score)
    vals = runs.loc[runs[score].notna(), col].dropna() if col else pd.Series(dtype=float)
    if vals.empty:
        return None
    return float(vals.min()), float(vals.max())


SATURATED = 0.5  # a floor at least this share of the worst run's score: order not resolved


def resolution(runs: pd.DataFrame, score: str, n_models: int | None = None) -> str | None:
    """Why the runs' order on ``score`` cannot be read, or None when it can: the noise floor
    (oracle vs oracle, what a perfect unlearner scores) is at least ``SATURATED`` × the worst
    run's score. Then even doing nothing is within a factor 2 of perfect — KLoM is near its
    ceiling on every split because there are few models a side (each side's histogram has as
    many samples as models), so differences between methods are noise."""
    floor = noise_floor(runs, score)
    vals = runs[score].dropna()
    if floor is None or vals.empty or floor[1] < SATURATED * float(vals.max()):
        return None
    many = f"{n_models} models a side" if n_models else "this many models a side"
    return (
        f"The order of these runs is not resolved: with {many} the noise floor "
        f"({floor[1]:.2f}, two oracle groups compared) is {floor[1] / float(vals.max()):.0%} of "
        f"the worst run's score ({float(vals.max()):.2f}), so KLoM is near its ceiling for "
        "every method and their differences are noise. Build more models a side (the demo's "
        "default is 100) to tell the methods apart."
    )


def pareto_front(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Bool mask of the points no other point beats: lower-or-equal cost *and* score, one of
    them strictly lower (both minimised)."""
    cost, score = np.asarray(cost, float), np.asarray(score, float)
    out = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        better = (cost <= cost[i]) & (score <= score[i]) & ((cost < cost[i]) | (score < score[i]))
        out[i] = not better.any()
    return out


def best_per_method(runs: pd.DataFrame, score: str, max_cost: float | None = None) -> list[int]:
    """Each method's run with the lowest ``score`` among those that cost at most ``max_cost``
    (fine-tuning; all runs when None), do-nothing and retrain included: run ids by method.
    A run of unknown cost (NaN: imported unlearned margins without ``--cost``) is kept."""
    cost = runs["cost"]
    pick = runs if max_cost is None else runs[(cost <= max_cost + 1e-12) | cost.isna()]
    pick = pick.dropna(subset=[score])
    if pick.empty:
        return []
    best = pick.loc[pick.groupby("method")[score].idxmin()]
    return best.sort_values("method")["run_id"].astype(int).tolist()


def point_values(store: Store, run_ids: list[int]) -> pd.DataFrame:
    """Per-point values of runs, long form: run_id, method, point, split, klom, floor and gap
    (mean margin of the unlearned models − mean margin of the oracles: > 0 under-unlearned,
    < 0 over-unlearned)."""
    return store.query_df(
        """SELECT p.run_id, e.method, p.point, p.split, p.klom, p.floor, p.gap
           FROM klom_points p JOIN evaluations e ON e.run_id = p.run_id
           WHERE p.run_id IN (SELECT unnest(?::BIGINT[])) ORDER BY p.run_id, p.point""",
        [[int(r) for r in run_ids]],
    )


def gap_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Per run, over its forget points: the mean signed gap, the share of points left
    under-unlearned (gap > 0) and the mean absolute gap."""
    f = points[points["split"] == "forget"]
    g = f.groupby(["run_id", "method"])["gap"]
    out = pd.DataFrame({"mean_gap": g.mean(), "under_share": g.apply(lambda s: float((s > 0).mean())),
                        "mean_abs_gap": g.apply(lambda s: float(s.abs().mean()))})  # fmt: skip
    return out.reset_index()
