"""Vectorized ``klom`` against the per-point ``klom_reference``: speed and agreement.

    python bench/klom_speed.py            # 10,000 points × 100 models per side
    python bench/klom_speed.py --json     # one JSON object on stdout

Margins are standard normal; a tenth of the points are shifted (a poorly unlearned point) and
a tenth are rounded to a coarse grid so that many samples fall exactly on bin edges. Exits 1
if the results differ by more than 1e-9 or the speed-up is below ``--min-ratio``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.evaluation.klom import klom, klom_reference  # noqa: E402


def make_margins(n_points: int, n_models: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unlearned and oracle margins, each ``(n_models, n_points)``."""
    rng = np.random.default_rng(seed)
    unlearned = rng.normal(size=(n_models, n_points))
    oracle = rng.normal(size=(n_models, n_points))
    tenth = n_points // 10
    unlearned[:, :tenth] += rng.uniform(0.5, 3.0, size=tenth)  # shifted points
    grid = slice(tenth, 2 * tenth)
    unlearned[:, grid] = np.round(unlearned[:, grid] * 2) / 2  # ties on bin edges
    oracle[:, grid] = np.round(oracle[:, grid] * 2) / 2
    return unlearned, oracle


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--models", type=int, default=100, help="models per side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of klom (best is kept)")
    ap.add_argument("--min-ratio", type=float, default=20.0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    p, q = make_margins(args.points, args.models, args.seed)
    klom(p[:, :100], q[:, :100])  # warm-up (torch kernels, allocator)

    t0 = time.perf_counter()
    slow = klom_reference(p, q)
    t_ref = time.perf_counter() - t0

    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        fast = klom(p, q)
        times.append(time.perf_counter() - t0)
    t_fast = min(times)

    max_diff = float(np.max(np.abs(fast - slow)))
    ratio = t_ref / t_fast
    ok = max_diff <= 1e-9 and ratio >= args.min_ratio
    result = {
        "points": args.points,
        "models_per_side": args.models,
        "reference_s": round(t_ref, 4),
        "vectorized_s": round(t_fast, 4),
        "vectorized_median_s": round(float(np.median(times)), 4),
        "ratio": round(ratio, 1),
        "max_abs_diff": max_diff,
        "ok": ok,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"klom_reference (per-point loop): {t_ref:8.3f} s")
        print(f"klom (vectorized, best of {len(times)}): {t_fast:8.4f} s")
        print(f"speed-up: {ratio:.1f}x (required >= {args.min_ratio:g}x)")
        print(f"max |difference|: {max_diff:.2e} (required <= 1e-9)")
        print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
