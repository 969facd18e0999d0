"""``collateral``: a stored run's KLoM on retain and val points by decile of their proximity to
the forget set, beside the noise floor (``core.evaluation.collateral``). Reads stored values only."""

from __future__ import annotations

import argparse

from core.commands.base import command, emit, table
from core.common.errors import ConfigError
from core.store.db import Store


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=int, required=True, help="the evaluation's run id")
    p.add_argument(
        "--by", default="input", choices=("input", "datamodel"),
        help="input: distance to the nearest forget point(s) on the flattened standardized "
        "inputs (default); datamodel: |Σ_{j∈F} w_tj|, the forget set's total weight in the "
        "point's margin datamodel (the originals' recipe needs one)",
    )  # fmt: skip
    p.add_argument(
        "--k", type=int, default=None,
        help="--by input: the mean distance to the k nearest forget points (default 1)",
    )  # fmt: skip


COLUMNS = ("split", "decile", "n", "prox_lo", "prox_hi", "klom_p50", "klom_p95", "floor_p50",
           "floor_p95", "gap_mean")  # fmt: skip


@command("collateral", "a run's KLoM on retain / val points by decile of proximity to the "
         "forget set, beside the noise floor")(_args)  # fmt: skip
def collateral_cmd(args: argparse.Namespace) -> int:
    from core.common.config import check_int
    from core.evaluation.collateral import collateral

    if args.by == "datamodel" and args.k is not None:
        raise ConfigError("--k goes with --by input (the datamodel's proximity has no k)")
    k = 1 if args.k is None else args.k
    check_int("k", k, 1)
    out = collateral(Store(args.db, must_exist=True), args.run, args.by, k)
    rows = out.pop("table").to_dict("records")
    used = f"k = {out['k']}" if args.by == "input" else f"datamodel {out['datamodel_id']}"
    ratio = ", ".join(f"{s} {v:.2f}×" for s, v in out["near_far_p95"].items() if v == v)
    text = "\n".join([
        f"run {out['run_id']}: {out['method']} on {out['forget_set']} (forget set "
        f"{out['forget_set_id']}); proximity: {out['proximity']}, {used}",
        "decile 1 = nearest; floor = KLoM of the noise-floor oracles vs the oracles",
        table(rows, COLUMNS),
        f"KLoM P95, nearest decile over farthest: {ratio or 'n/a'}",
    ])  # fmt: skip
    emit(args, {**out, "rows": rows}, text)
    return 0
