"""Ridge datamodels for every target at once against one target at a time: speed and agreement.

    python bench/datamodel_fit.py                 # digits-sized: 2,000 masks × 1,347 points
    python bench/datamodel_fit.py --targets 1797  # every digits point as a target
    python bench/datamodel_fit.py --json          # one JSON object on stdout

Masks are random halves; outputs are a sparse linear function of the mask plus noise. The
vectorized fit is ``core.attribution.regression.ridge_fit`` (one Cholesky-class solve of
``(X̃ᵀX̃ + λI) W = X̃ᵀỸ`` for all targets); the loop re-solves the same system per target, as a
per-target fitter would (``--loop-targets`` of them, the time scaled to all targets), and a
fairer loop shares one Cholesky factor of X̃ᵀX̃ + λI and solves per target. Exits 1 if
the weights differ by more than 1e-6 (relative) or the speed-up is below ``--min-ratio``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.attribution.regression import ridge_fit  # noqa: E402


def make_problem(m: int, p: int, t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.random((m, p)) < 0.5).astype(np.float64)
    w = rng.normal(size=(p, t)) * (rng.random((p, t)) < 0.02)
    return x, x @ w + 0.1 * rng.normal(size=(m, t))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=2000)
    ap.add_argument("--points", type=int, default=1347, help="train points (mask length)")
    ap.add_argument("--targets", type=int, default=1797)
    ap.add_argument("--loop-targets", type=int, default=20, help="targets the loop times")
    ap.add_argument("--lam", type=float, default=100.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-ratio", type=float, default=1.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    x, y = make_problem(args.models, args.points, args.targets, 0)
    t0 = time.perf_counter()
    w, b = ridge_fit(x, y, args.lam, args.device)
    t_all = time.perf_counter() - t0
    k = min(args.loop_targets, args.targets)
    t0 = time.perf_counter()
    loop = [ridge_fit(x, y[:, [j]], args.lam, args.device)[0][:, 0] for j in range(k)]
    t_loop = (time.perf_counter() - t0) * args.targets / k
    ref = np.stack([v.cpu().numpy() for v in loop], 1)
    import torch

    t0 = time.perf_counter()
    xt = torch.as_tensor(x, dtype=torch.float64, device=args.device)
    yt = torch.as_tensor(y, dtype=torch.float64, device=args.device)
    xc = xt - xt.mean(0)
    a = xc.T @ xc + args.lam * torch.eye(x.shape[1], dtype=torch.float64, device=xt.device)
    chol = torch.linalg.cholesky(a)  # factored once for every target
    t_factor = time.perf_counter() - t0
    t0 = time.perf_counter()
    shared = [torch.cholesky_solve(xc.T @ (yt[:, [j]] - yt[:, j].mean()), chol) for j in range(k)]
    t_shared = t_factor + (time.perf_counter() - t0) * args.targets / k
    err_shared = float(np.abs(torch.cat(shared, 1).cpu().numpy() - ref).max())
    got = w[:, :k].cpu().numpy()
    err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))
    out = {"models": args.models, "points": args.points, "targets": args.targets,
           "vectorized_s": t_all, "loop_s_scaled": t_loop, "loop_targets_timed": k,
           "ratio": t_loop / t_all, "shared_factor_loop_s_scaled": t_shared,
           "ratio_shared_factor": t_shared / t_all, "max_rel_diff": err,
           "shared_factor_max_abs_diff": err_shared, "device": args.device}  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"ridge, {args.models} masks × {args.points} points, {args.targets} targets on "
            f"{args.device}: all at once {t_all:.2f} s, one by one {t_loop:.1f} s (from {k} "
            f"targets) → {t_loop / t_all:.0f}× faster; one by one with a shared Cholesky "
            f"factor {t_shared:.2f} s → {t_shared / t_all:.1f}×; max relative difference {err:.1e}"
        )
    return 0 if err <= 1e-6 and t_loop / t_all >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
