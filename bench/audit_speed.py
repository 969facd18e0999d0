"""Membership audits' speed: U-LiRA on every point of a forget set, and the population MIA.

    python bench/audit_speed.py            # 200 forget points × 100 models a side
    python bench/audit_speed.py --json     # one JSON object on stdout

U-LiRA as ``core.evaluation.audits`` runs it: unlearned vs oracle and the floor (a second oracle group vs
the oracle), each with the per-point balanced accuracy and the pooled TPR at 1% and 5% FPR.
Margins are normal, a tenth of the points shifted (poorly unlearned). Prints the median of
``--repeat`` runs, the per-point reference loop once (and checks they agree to 1e-12), and the
population MIA on a digits-sized problem (1,777 points, the same models) for scale. Exits 1 if
the U-LiRA median exceeds ``--max-s`` (1 s) or the results differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.evaluation.audit_math import FPRS, population_mia, ulira, ulira_reference  # noqa: E402


def make_margins(n_points: int, n_models: int, seed: int) -> tuple[np.ndarray, ...]:
    """Unlearned, oracle and floor margins, each ``(n_models, n_points)``."""
    rng = np.random.default_rng(seed)
    unlearned, oracle, floor = (rng.normal(size=(n_models, n_points)) for _ in range(3))
    unlearned[:, : n_points // 10] += rng.uniform(0.5, 3.0, size=n_points // 10)
    return unlearned, oracle, floor


def ulira_audit(unlearned, oracle, floor) -> dict:
    """What ``core.evaluation.audits.compute_audits`` asks of U-LiRA for one run."""
    out = {}
    for name, side in (("main", unlearned), ("floor", floor)):
        res = ulira(side, oracle)
        out[name] = (res.bacc, *(res.tpr_at(a) for a in FPRS))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200, help="forget points")
    ap.add_argument("--models", type=int, default=100, help="models per side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=7, help="timed runs (the median is kept)")
    ap.add_argument("--max-s", type=float, default=1.0, help="target for the U-LiRA median")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    u, o, f = make_margins(args.points, args.models, args.seed)
    ulira_audit(u[:, :10], o[:, :10], f[:, :10])  # warm-up
    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        out = ulira_audit(u, o, f)
        times.append(time.perf_counter() - t0)
    t_ulira = statistics.median(times)

    t0 = time.perf_counter()
    ref = ulira_reference(u, o)
    t_ref = time.perf_counter() - t0
    max_diff = float(np.max(np.abs(ref - out["main"][0])))

    rng = np.random.default_rng(args.seed)
    m = rng.normal(size=(args.models, 1777))
    m[:, 20:1347] += 1.0  # retain: members, more confident
    t0 = time.perf_counter()
    population_mia(m, np.arange(20), np.arange(20, 1347), np.arange(1347, 1777))
    t_mia = time.perf_counter() - t0

    ok = t_ulira <= args.max_s and max_diff <= 1e-12
    result = {
        "points": args.points,
        "models_per_side": args.models,
        "ulira_median_s": round(t_ulira, 5),
        "ulira_runs": len(times),
        "reference_loop_s": round(t_ref, 3),
        "max_abs_diff": max_diff,
        "bacc_mean": round(float(out["main"][0].mean()), 4),
        "floor_bacc_mean": round(float(out["floor"][0].mean()), 4),
        "mia_digits_s": round(t_mia, 3),
        "ok": ok,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"U-LiRA, {args.points} points × {args.models} models a side, run + floor, "
              f"median of {len(times)}: {t_ulira * 1e3:8.2f} ms (target <= {args.max_s:g} s)")  # fmt: skip
        print(f"per-point reference loop (run only): {t_ref:8.3f} s; max |diff| {max_diff:.1e}")
        print(f"balanced accuracy mean: {result['bacc_mean']} (floor {result['floor_bacc_mean']})")
        print(f"population MIA, {args.models} models × 1,777 points (digits): {t_mia:.3f} s")
        print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
