"""Diverged unlearning runs: recorded, never scored.

A method whose models end with a non-finite output (a step size too large for gradient ascent,
say) has no margins to score: no KLoM, no NaN in the store. Its grid point is kept as a ``runs``
row of kind ``diverged`` with the evaluation's config and the reason, so a sweep goes on past
it, a rerun does not train it again (unless asked to recompute), and the Compare page lists it.
"""

from __future__ import annotations

import json

import pandas as pd

from core.common.errors import Diverged  # noqa: F401  (re-exported)
from core.store.db import Store


def record_diverged(store: Store, config: dict, device: str, wall_s: float, reason: str) -> int:
    """Store the grid point as a ``diverged`` run; returns its id."""
    summary = {"status": "diverged", "message": reason}
    with store.transaction() as con:
        return store.insert_run(con, "diverged", json.dumps(config), None, device, wall_s,
                                json.dumps(summary))  # fmt: skip


def find_diverged(
    store: Store, forget_set_id: int, method: str, sets: tuple[int, int, int], options: dict
) -> tuple[int, str] | None:
    """The newest recorded divergence of this grid point: (run id, reason), or None."""
    for row in _rows(store, forget_set_id).itertuples():
        cfg = json.loads(row.config)
        same_sets = (cfg.get("original_set_id"), cfg.get("oracle_set_id"),
                     cfg.get("floor_set_id")) == tuple(sets)  # fmt: skip
        if cfg.get("method") == method and same_sets and cfg.get("options", {}) == options:
            return int(row.id), json.loads(row.summary)["message"]
    return None


def diverged_runs(store: Store, forget_set_id: int) -> pd.DataFrame:
    """The diverged grid points of a forget set: run_id, method, budget, params, message."""
    rows = []
    for row in _rows(store, forget_set_id).itertuples():
        cfg = json.loads(row.config)
        opts = dict(cfg.get("options") or {})
        rows.append({"run_id": int(row.id), "method": cfg.get("method"),
                     "budget": opts.pop("budget", None), "params": json.dumps(opts, sort_keys=True),
                     "message": json.loads(row.summary)["message"], "created_at": row.created_at})  # fmt: skip
    return pd.DataFrame(rows, columns=["run_id", "method", "budget", "params", "message",
                                       "created_at"])  # fmt: skip


def delete_diverged(con, forget_set_id: int) -> None:
    """Inside the caller's transaction: drop a forget set's diverged records."""
    con.execute(
        "DELETE FROM runs WHERE kind = 'diverged' AND "
        "CAST(json_extract(config, '$.forget_set_id') AS BIGINT) = ?",
        [forget_set_id],
    )


def _rows(store: Store, forget_set_id: int) -> pd.DataFrame:
    return store.query_df(
        """SELECT id, config, summary, created_at FROM runs WHERE kind = 'diverged'
           AND CAST(json_extract(config, '$.forget_set_id') AS BIGINT) = ? ORDER BY id DESC""",
        [forget_set_id],
    )
