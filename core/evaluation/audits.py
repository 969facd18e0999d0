"""Membership audits of stored evaluations: computed from the stored margins, stored beside KLoM.

The math is in ``core.evaluation.audit_math``. For an evaluation with unlearned margins U, oracle margins O
and the second (noise-floor) oracle group F, all ``(n_models, n_points)``:

    U-LiRA      U vs O on every forget point          floor: F vs O (the same held-out O models)
    pop. MIA    one attack per model of U             floor: the same per model of F

Tables (schema migration 6): ``audits`` (one row per audited run: its config), ``audit_points``
(per forget point), ``audit_summaries`` (per audit and metric: value and floor) and
``audit_models`` (the population MIA per model). Light to import (no torch, no streamlit).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from core.common.errors import ConfigError, NotFoundError
from core.evaluation.audit_math import FPRS, VAR_FLOOR, population_mia, ulira
from core.store.db import Store
from core.zoo.model_sets import load_margins

SEED = 0
SPLITS = ("forget", "retain", "val")
AUDIT_TABLES = ("audit_points", "audit_summaries", "audit_models", "audits")
# (audit, metric) in display order, with what each value means
METRICS = {
    ("ulira", "bacc_mean"): "U-LiRA balanced accuracy, mean over forget points (0.5 = "
    "indistinguishable from the oracles)",
    ("ulira", "tpr_at_1pct_fpr"): "U-LiRA true-positive rate at 1% false positives (pooled)",
    ("ulira", "tpr_at_5pct_fpr"): "U-LiRA true-positive rate at 5% false positives (pooled)",
    ("mia", "forget_member_share"): "population MIA: share of forget points called members, "
    "mean over models",
    ("mia", "retain_member_share"): "population MIA: share of retain points (members) called "
    "members (in-sample)",
    ("mia", "val_member_share"): "population MIA: share of val points (non-members) called "
    "members (in-sample)",
    ("mia", "attack_bacc"): "population MIA: balanced accuracy on retain vs val (in-sample): "
    "how much membership the margin reveals at all",
}


def _row(store: Store, run_id: int) -> pd.Series:
    row = store.query_df(
        "SELECT margins_file, oracle_set_id, floor_set_id FROM evaluations WHERE run_id = ?",
        [run_id],
    )
    if row.empty:
        raise NotFoundError(f"there is no evaluation with id {run_id}")
    return row.iloc[0]


def is_audited(store: Store, run_id: int) -> bool:
    return not store.query_df("SELECT 1 FROM audits WHERE run_id = ?", [run_id]).empty


def compute_audits(
    unlearned: np.ndarray, oracle: np.ndarray, floor: np.ndarray, splits: dict[str, np.ndarray],
    seed: int = SEED,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Both audits of one evaluation from its arrays (nothing read or written).

    unlearned / oracle / floor: ``(n_models, n_points)``; splits: ``forget``, ``retain``,
    ``val`` point indices. Returns DataFrames ``points`` (one row per forget point),
    ``summaries`` (audit, metric, value, floor) and ``models`` (side, model, shares).
    """
    f = np.asarray(splits["forget"], dtype=np.int64)
    main = ulira(unlearned[:, f], oracle[:, f], seed)
    base = ulira(floor[:, f], oracle[:, f], seed)
    mia_u = population_mia(unlearned, f, splits["retain"], splits["val"])
    mia_f = population_mia(floor, f, splits["retain"], splits["val"])
    points = pd.DataFrame({
        "point": f, "ulira_bacc": main.bacc, "ulira_floor_bacc": base.bacc,
        "mia_member_share": mia_u.forget_member.mean(0),
        "mia_floor_member_share": mia_f.forget_member.mean(0),
    })  # fmt: skip
    rows = [("ulira", "bacc_mean", main.bacc.mean(), base.bacc.mean())]
    for a in FPRS:
        rows.append(("ulira", f"tpr_at_{round(100 * a)}pct_fpr", main.tpr_at(a), base.tpr_at(a)))
    for name in ("forget_share", "retain_share", "val_share", "attack_bacc"):
        metric = name.replace("_share", "_member_share")
        rows.append(("mia", metric, getattr(mia_u, name).mean(), getattr(mia_f, name).mean()))
    summaries = pd.DataFrame(rows, columns=["audit", "metric", "value", "floor"])
    models = pd.concat([
        pd.DataFrame({"side": side, "model": np.arange(r.forget_share.size),
                      "forget_member_share": r.forget_share, "retain_member_share": r.retain_share,
                      "val_member_share": r.val_share})
        for side, r in (("unlearned", mia_u), ("floor", mia_f))
    ], ignore_index=True)  # fmt: skip
    return {"points": points, "summaries": summaries, "models": models}


def audit_run(
    store: Store, run_id: int, recompute: bool = False, *, strict: bool = True
) -> dict | None:
    """Audit one stored evaluation from its stored margins, write the results in one transaction
    and return its summary (``audit_summary``). Idempotent: an audited run is left as it is
    unless ``recompute`` (then its rows are replaced). NotFoundError for an unknown run;
    ConfigError for a run with fewer than 2 models a side (U-LiRA holds half of them out),
    or, with ``strict=False`` (what ``evaluate`` uses), None and nothing stored."""
    row = _row(store, run_id)
    if not recompute and is_audited(store, run_id):
        return audit_summary(store, run_id)
    t0 = time.perf_counter()
    unlearned = store.load_array(str(row["margins_file"]))
    oracle = load_margins(store, int(row["oracle_set_id"]))
    floor = load_margins(store, int(row["floor_set_id"]))
    split = store.query_df(
        "SELECT point, split FROM klom_points WHERE run_id = ? ORDER BY point", [run_id]
    )
    splits = {s: split.loc[split["split"] == s, "point"].to_numpy() for s in SPLITS}
    sizes = {k: int(a.shape[0]) for k, a in (("unlearned", unlearned), ("oracle", oracle),
                                             ("floor", floor))}  # fmt: skip
    if min(sizes.values()) < 2:
        if not strict:
            return None
        raise ConfigError(f"run {run_id} cannot be audited: U-LiRA needs at least 2 models a side, "
                          f"the run has {sizes}")  # fmt: skip
    out = compute_audits(unlearned, oracle, floor, splits)
    config = {"seed": SEED, "var_floor": VAR_FLOOR, "fprs": list(FPRS), "models": sizes,
              "ulira_shadow": {k: n // 2 for k, n in sizes.items()},
              "mia": "logistic regression, liblinear's problem (L2 on weight and bias, C=1, "
              "balanced class weights), by Newton's method, on the standardized margin, "
              "per model"}  # fmt: skip
    from core import code_version

    with store.transaction() as con:
        for table in AUDIT_TABLES:
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        con.execute(
            "INSERT INTO audits VALUES (?, ?, ?, ?, current_timestamp)",
            [run_id, json.dumps(config), code_version(), time.perf_counter() - t0],
        )
        for table in ("points", "summaries", "models"):
            df = out[table].assign(run_id=run_id)
            con.register("audit_df", df)  # columns matched by name: no names in the SQL text
            con.execute(f"INSERT INTO audit_{table} BY NAME SELECT * FROM audit_df")
            con.unregister("audit_df")
    return audit_summary(store, run_id)


def _in_order(df: pd.DataFrame) -> pd.DataFrame:
    """Summary rows in ``METRICS`` order (unknown metrics last)."""
    order = {k: i for i, k in enumerate(METRICS)}
    keys = zip(df["audit"], df["metric"], strict=True)
    return df.iloc[np.argsort([order.get(k, len(order)) for k in keys], kind="stable")].copy()


def audit_summary(store: Store, run_id: int) -> dict | None:
    """``{audit: {metric: {"value": v, "floor": f}}}`` of an audited run; None if not audited."""
    df = store.query_df(
        "SELECT audit, metric, value, floor FROM audit_summaries WHERE run_id = ?", [run_id]
    )
    if df.empty:
        return None
    df = _in_order(df)
    out: dict[str, dict] = {}
    for r in df.itertuples():
        out.setdefault(r.audit, {})[r.metric] = {"value": float(r.value), "floor": float(r.floor)}
    return out


def audit_results(store: Store, run_id: int) -> dict | None:
    """Everything stored for an audited run: ``summaries`` (in ``METRICS`` order, with a
    ``meaning`` column), ``points`` (per forget point), ``models`` and ``config``; None when
    the run was not audited (an evaluation stored before audits existed)."""
    cfg = store.query_df("SELECT config FROM audits WHERE run_id = ?", [run_id])
    if cfg.empty:
        return None
    summ = store.query_df(
        "SELECT * EXCLUDE (run_id) FROM audit_summaries WHERE run_id = ?", [run_id]
    )
    summ = _in_order(summ)
    summ["meaning"] = [METRICS.get(k, "") for k in zip(summ["audit"], summ["metric"], strict=True)]
    points = store.query_df(
        "SELECT * EXCLUDE (run_id) FROM audit_points WHERE run_id = ? ORDER BY point", [run_id]
    )
    models = store.query_df(
        "SELECT * EXCLUDE (run_id) FROM audit_models WHERE run_id = ? ORDER BY side DESC, model",
        [run_id],
    )
    return {"summaries": summ.reset_index(drop=True), "points": points, "models": models,
            "config": json.loads(cfg["config"][0])}  # fmt: skip


def runs_to_audit(store: Store, forget_set_id: int | None = None) -> list[int]:
    """Run ids of every stored evaluation (of one forget set, if given), oldest first."""
    where, args = ("WHERE forget_set_id = ?", [forget_set_id]) if forget_set_id else ("", [])
    df = store.query_df(f"SELECT run_id FROM evaluations {where} ORDER BY run_id", args)
    return [int(r) for r in df["run_id"]]
