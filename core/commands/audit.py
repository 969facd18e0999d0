"""``audit``: membership audits (U-LiRA, population MIA) of stored evaluations, on demand.

Evaluations are audited when they are stored; this command audits those stored before audits
existed, or again with ``--recompute``. It trains and scores nothing: it reads stored margins.
"""

from __future__ import annotations

import argparse

from core.commands.base import command, emit, table
from core.common.errors import ConfigError
from core.store.db import Store


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", nargs="?", type=int, help="the evaluation's run id (or --all)")
    p.add_argument("--all", action="store_true", help="every stored evaluation")
    p.add_argument(
        "--forget-set", type=int, default=None, dest="forget_set",
        help="with --all: only the evaluations of this forget set",
    )  # fmt: skip
    p.add_argument("--recompute", action="store_true", help="audit again runs already audited")


def summary_rows(summary: dict | None) -> list[dict]:
    """``audit_summary`` as table rows: audit, metric, value, floor."""
    return [
        {"audit": a, "metric": m, "value": v["value"], "floor": v["floor"]}
        for a, metrics in (summary or {}).items()
        for m, v in metrics.items()
    ]


@command("audit", "membership audits (U-LiRA, population MIA) of stored evaluations")(_args)
def audit(args: argparse.Namespace) -> int:
    from core.evaluation.audits import audit_run, runs_to_audit

    if (args.run_id is None) == (not args.all):
        raise ConfigError("audit needs a run id or --all (not both)")
    store = Store(args.db, must_exist=True)
    if args.all:
        runs = runs_to_audit(store, args.forget_set)
    else:
        if args.forget_set is not None:
            raise ConfigError("--forget-set goes with --all; a run id names its own forget set")
        runs = [args.run_id]
    out, lines = [], []
    for run_id in runs:
        # --all passes over runs too small to audit (fewer than 2 models a side) with a note
        summary = audit_run(store, run_id, recompute=args.recompute, strict=not args.all)
        out.append({"run_id": run_id, "audit": summary})
        body = table(summary_rows(summary), ("audit", "metric", "value", "floor"))
        lines += [f"evaluation {run_id}", body if summary else "too few models to audit", ""]
    text = "\n".join(lines).rstrip() if runs else "no evaluations to audit"
    emit(args, {"audits": out}, text)
    return 0
