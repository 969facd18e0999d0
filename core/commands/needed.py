"""``models-needed``: KLoM's P95 and its noise floor against the number of models per side.

Reads stored margins only (``core.evaluation.models_needed``); trains, scores and writes nothing. For each
size n, ``--draws`` seeded draws of n models per side (without replacement, each side drawn
independently) give the P95 per split; the table shows mean ± sd [min, max] over the draws.
With ``--run``, the gap is *resolved* at n when the run's mean P95 − 2 sd exceeds the floor's
mean P95 + 2 sd, judged only below the stored number of models (where draws differ).
"""

from __future__ import annotations

import argparse

from core.commands.base import command, emit, table
from core.common.errors import ConfigError
from core.store.db import Store

HELP = "KLoM's P95 and its noise floor per split as the number of models per side grows"


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--forget-set", type=int, required=True, dest="forget_set", help="its id")
    p.add_argument(
        "--run", type=int, default=None,
        help="an evaluation of this forget set: its P95 beside the floor's (default: the floor "
        "only). The gap is resolved at n when the run's mean P95 minus 2 sd exceeds the floor's "
        "mean P95 plus 2 sd (sd over the draws; judged only below the stored number of models)",
    )  # fmt: skip
    p.add_argument(
        "--sizes", default=None,
        help="models per side, comma-separated, each 2 … the stored number (default: 5, 10, "
        "20, 50, 100, … up to the stored number, and it)",
    )  # fmt: skip
    p.add_argument(
        "--draws", type=int, default=5,
        help="draws per size, 2 … 1000 (default 5); each draws n models per side without "
        "replacement, each side independently",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")


def parse_sizes(text: str | None) -> list[int] | None:
    """``"10,20,50"`` → ``[10, 20, 50]``; None or blank → None (the default grid)."""
    if text is None or not text.strip():
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(
            f"--sizes must be whole numbers separated by commas, got {text!r}"
        ) from None


def _cell(row: dict, side: str) -> str:
    return (f"{row[f'{side}_mean']:.3f} ± {row[f'{side}_sd']:.3f} "
            f"[{row[f'{side}_min']:.3f}, {row[f'{side}_max']:.3f}]")  # fmt: skip


@command("models-needed", HELP)(_args)
def models_needed_cmd(args: argparse.Namespace) -> int:
    from core.evaluation.models_needed import models_needed

    store = Store(args.db, must_exist=True)
    out = models_needed(store, args.forget_set, args.run, parse_sizes(args.sizes), args.draws,
                        args.seed)  # fmt: skip
    rows = out["table"].to_dict("records")
    has_run = args.run is not None
    lines = [
        f"forget set {out['forget_set_id']} ({out['forget_set']})"
        + (f", run {args.run} ({out['method']})" if has_run else "")
        + f": P95 of KLoM over {out['draws']} draws per size (seed {out['seed']}), "
        f"mean ± sd [min, max]; stored models per side: "
        + ", ".join(f"{k} {v}" for k, v in out["stored"].items()),
    ]
    shown = []
    for r in rows:
        cells = {"split": r["split"], "n": r["n"], "floor P95": _cell(r, "floor")}
        if has_run:
            cells["run P95"] = _cell(r, "run")
            cells["resolved"] = {True: "yes", False: "no"}.get(r["resolved"], "-")
        shown.append(cells)
    cols = ("split", "n", "floor P95", *(("run P95", "resolved") if has_run else ()))
    lines.append(table(shown, cols))
    if has_run:
        for split, n in out["resolved_at"].items():
            lines.append(
                f"{split}: the gap to the floor is resolved from {n} models per side on"
                if n is not None
                else f"{split}: the gap to the floor is not resolved at any size tried"
            )
        lines.append(f"rule: {out['rule']}")
    lines.append(f"({out['wall_s']:.1f} s)")
    emit(args, {**out, "table": rows}, "\n".join(lines))
    return 0
