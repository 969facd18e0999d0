"""``unlearn``: run unlearning methods over a grid of budgets and hyperparameters."""

from __future__ import annotations

import argparse
import itertools

from core.commands.base import (
    add_device_arg,
    add_executor_args,
    command,
    emit,
    executor_from_args,
    table,
)
from core.common.errors import ConfigError
from core.store.db import Store


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--forget-set", type=int, required=True, dest="forget_set", help="its id")
    p.add_argument(
        "--method", required=True,
        help="an unlearning method (an unknown name is answered with the list)",
    )  # fmt: skip
    p.add_argument(
        "--budget", default="0.05",
        help="comma-separated shares of retraining's example-gradients (default 0.05)",
    )  # fmt: skip
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=V1,V2",
        help="a hyperparameter and its values (repeatable); every combination is run",
    )  # fmt: skip
    p.add_argument("--originals", type=int, default=None, help="original set (default: paired)")
    p.add_argument("--recompute", action="store_true", help="run stored grid points again")
    add_device_arg(p)
    add_executor_args(p)  # ray: every grid point a task, stored here as it arrives


def _grid(args: argparse.Namespace) -> list[dict]:
    """Every combination of the budgets and ``--param`` values, as evaluate() keywords."""
    axes: dict[str, list[str]] = {}
    for item in args.param:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"--param must look like key=v1,v2, got {item!r}")
        axes[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    budgets = []
    for b in args.budget.split(","):
        try:
            budgets.append(float(b))
        except ValueError:
            raise ConfigError(f"--budget must be numbers like 0.02,0.05, got {b!r}") from None
    combos = itertools.product(budgets, *axes.values())
    return [{"budget": c[0], **dict(zip(axes, c[1:], strict=True))} for c in combos]


@command("unlearn", "run an unlearning method over budgets and hyperparameters, scored by KLoM")(
    _args
)
def unlearn(args: argparse.Namespace) -> int:
    from core.common.errors import Diverged
    from core.evaluation.audits import audit_summary
    from core.evaluation.run import evaluation
    from core.jobs.sweeps import run_sweep
    from core.unlearning import method_params, uses_budget

    grid = _grid(args)
    if not uses_budget(args.method):  # do-nothing, retrain, predictors: one run per setting
        keys = dict.fromkeys(tuple((k, v) for k, v in p.items() if k != "budget") for p in grid)
        grid = [dict(k) for k in keys]
    for point in grid:  # every point is checked before the first one runs
        method_params(args.method, {k: v for k, v in point.items() if k != "budget"})
    store = Store(args.db, must_exist=True)
    rows: list[dict | None] = [None] * len(grid)
    with executor_from_args(args) as ex:
        for i, outcome in run_sweep(store, args.forget_set, args.method, grid, args.device, ex,
                                    original_set_id=args.originals, recompute=args.recompute):  # fmt: skip
            point = grid[i]
            if isinstance(outcome, Diverged):  # recorded; the sweep goes on
                rows[i] = {"run_id": outcome.run_id, **point, "status": "diverged",
                           "message": str(outcome)}  # fmt: skip
                continue
            rows[i] = _row(store, outcome, point, evaluation(store, outcome), audit_summary)
    rows = [r for r in rows if r is not None]
    cols = ["run_id", *grid[0].keys(), "status", "cost", "forget_p95", "retain_p95", "val_p95",
            "forget_acc", "val_acc", "ulira_bacc_mean"]  # fmt: skip
    notes = "".join(f"\nrun {r['run_id']}: {r['message']}" for r in rows if r["status"] != "ok")
    emit(args, {"method": args.method, "runs": rows}, table(rows, cols) + notes)
    return 0


def _row(store: Store, run_id: int, point: dict, ev: dict, audit_summary) -> dict:
    """The sweep table's row of a stored run: KLoM P95s, floors, accuracies, audits."""
    s = ev["summaries"].set_index(["split", "metric"])
    row = {"run_id": run_id, **point, "status": "ok",
           "cost": float(ev["evaluation"]["compute_cost"])}  # fmt: skip
    for split in ("forget", "retain", "val"):
        row[f"{split}_p95"] = float(s.loc[(split, "klom"), "p95"])
        row[f"{split}_floor_p95"] = float(s.loc[(split, "floor"), "p95"])
        row[f"{split}_acc"] = float(s.loc[(split, "klom"), "accuracy"])
    row["accuracy_kind"] = str(s.loc[("forget", "klom"), "accuracy_kind"])  # or a lower bound
    audit = audit_summary(store, run_id) or {}
    row["ulira_bacc_mean"] = audit.get("ulira", {}).get("bacc_mean", {}).get("value")
    row["audit"] = audit or None
    row["info"] = store.run(run_id)["config"].get("info", {})  # what the method recorded
    return row
