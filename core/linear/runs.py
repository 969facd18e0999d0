"""Running the linear study end to end and keeping it in the store."""

from __future__ import annotations

import json
import time

import pandas as pd

from core.linear.study import Curve, LinearConfig, run_study
from core.store.db import Store


def save_linear_run(
    store: Store, cfg: LinearConfig, curves: list[Curve], wall_time_s: float
) -> int:
    """Write the run row, every curve point and the outcomes in one transaction."""
    curve_df = pd.concat(
        [
            pd.DataFrame(
                {
                    "method": c.method,
                    "step": range(len(c.rel_dist)),
                    "rel_dist": c.rel_dist,
                    "objective": c.objective,
                }
            )
            for c in curves
        ],
        ignore_index=True,
    )
    outcome_df = pd.DataFrame([c.outcome.to_dict() for c in curves])
    summary = {c.method: c.outcome.status for c in curves}
    with store.transaction() as con:
        run_id = store.insert_run(
            con, "linear", cfg.to_json(), cfg.seed, "cpu", wall_time_s, json.dumps(summary)
        )
        curve_df.insert(0, "run_id", run_id)
        outcome_df.insert(0, "run_id", run_id)
        con.register("curve_df", curve_df)
        con.register("outcome_df", outcome_df)
        con.execute(
            "INSERT INTO linear_curves SELECT run_id, method, step, rel_dist, objective FROM curve_df"
        )
        con.execute(
            """INSERT INTO linear_outcomes SELECT run_id, method, step_size, final_rel_dist,
               min_rel_dist, step_below_1e3, step_below_1e6, diverged, diverged_at, status
               FROM outcome_df"""
        )
    return run_id


def run_and_store(store: Store, cfg: LinearConfig) -> tuple[int, list[Curve]]:
    """Run the study for ``cfg`` and store it; returns the run id and the curves."""
    t0 = time.perf_counter()
    _, curves = run_study(cfg)
    return save_linear_run(store, cfg, curves, time.perf_counter() - t0), curves


def list_linear_runs(store: Store) -> pd.DataFrame:
    """Linear runs, newest first: id, created_at, the config fields and per-method status."""
    df = store.query_df(
        "SELECT id, created_at, config, summary FROM runs WHERE kind = 'linear' ORDER BY id DESC"
    )
    if df.empty:
        return df
    cfgs = pd.DataFrame([json.loads(c) for c in df["config"]])
    return pd.concat([df[["id", "created_at"]], cfgs], axis=1).assign(summary=df["summary"])


def linear_curves(store: Store, run_id: int) -> pd.DataFrame:
    """Columns method, step, rel_dist, objective for one run."""
    return store.query_df(
        "SELECT method, step, rel_dist, objective FROM linear_curves WHERE run_id = ? "
        "ORDER BY method, step",
        [run_id],
    )


def linear_outcomes(store: Store, run_id: int) -> pd.DataFrame:
    """One row per method: step size, final/min rel_dist, first steps below 1e-3/1e-6, status."""
    return store.query_df(
        "SELECT * EXCLUDE (run_id) FROM linear_outcomes WHERE run_id = ? ORDER BY method",
        [run_id],
    )
