"""``python -m core linear``: the linear-model convergence study."""

from __future__ import annotations

import argparse

from core.commands.base import command, emit, table
from core.store.db import Store


def _add(p: argparse.ArgumentParser) -> None:
    from core.linear.study import LinearConfig  # NumPy only

    d = LinearConfig()
    p.add_argument("--n", type=int, default=d.n, help="training points (default %(default)s)")
    p.add_argument("--d", type=int, default=d.d, help="dimension (default %(default)s)")
    p.add_argument(
        "--forget", type=int, default=d.forget, help="forget-set size (default %(default)s)"
    )
    p.add_argument("--lam", type=float, default=d.lam, help="ridge λ (default %(default)s)")
    p.add_argument(
        "--noise", type=float, default=d.noise, help="label noise σ (default %(default)s)"
    )
    p.add_argument(
        "--steps", type=int, default=d.steps, help="steps per method (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument("--ascent-weight", type=float, default=d.ascent_weight, help="α of GD+GA")


@command("linear", "run the linear-model convergence study (GD, OM, OM retain-only, GD+GA)")(_add)
def run(args: argparse.Namespace) -> int:
    from core.linear.runs import run_and_store
    from core.linear.study import LinearConfig

    cfg = LinearConfig(
        n=args.n,
        d=args.d,
        forget=args.forget,
        lam=args.lam,
        noise=args.noise,
        steps=args.steps,
        seed=args.seed,
        ascent_weight=args.ascent_weight,
    )  # validates before anything is opened or written
    store = Store(args.db)
    run_id, curves = run_and_store(store, cfg)
    keys = (
        "final_rel_dist",
        "min_rel_dist",
        "step_below_1e3",
        "step_below_1e6",
        "diverged",
        "status",
    )
    methods = {c.method: {k: getattr(c.outcome, k) for k in (*keys, "diverged_at")} for c in curves}
    rows = [{"method": m, **v} for m, v in methods.items()]
    text = f"linear run {run_id} stored in {store.path}\n" + table(rows, ("method", *keys))
    emit(args, {"run_id": run_id, "db": str(store.path), "methods": methods}, text)
    return 0
