"""Ridge datamodels for every target at once against one target at a time: speed and agreement.

    python bench/datamodel_fit.py                 # digits-sized: 2,000 masks × 1,347 points
    python bench/datamodel_fit.py --targets 1797  # every digits point as a target
    python bench/datamodel_fit.py --json          # one JSON object on stdout
    python bench/datamodel_fit.py --search --models 5000   # the whole fit, λ search included
    python bench/datamodel_fit.py --search --on-device --device cuda --models 10000 \
        --points 50000 --targets 10000 --repeats 1          # CIFAR-10's scale, on a GPU

Masks are random halves; outputs are a sparse linear function of the mask plus noise. The
vectorized fit is ``core.attribution.regression.ridge_fit`` (one Cholesky-class solve of
``(X̃ᵀX̃ + λI) W = X̃ᵀỸ`` for all targets); the loop re-solves the same system per target, as a
per-target fitter would (``--loop-targets`` of them, the time scaled to all targets), and a
fairer loop shares one Cholesky factor of X̃ᵀX̃ + λI and solves per target. Exits 1 if
the weights differ by more than 1e-6 (relative) or the speed-up is below ``--min-ratio``.

``--search`` times instead what ``datamodels fit`` does with the outputs once the subset models
exist (``core.attribution.fit``'s ridge path): the λ search on held-out models (an
eigendecomposition, then every λ of the grid scored by LDS), the final fit on all fit models,
and, apart, the LDS-against-M curve (refits on M/8, M/4, M/2); median of ``--repeats``.
With fewer models than points (CIFAR-10: 50,000 points) the fit takes the dual form
(``ridge_basis``: an (M, M) eigendecomposition). ``--on-device`` draws the problem with torch
on ``--device`` (outputs depend on the first 500 points) instead of NumPy on the host, which
at CIFAR-10's scale would take longer than the fit.
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


def make_problem_on(m: int, p: int, t: int, seed: int, device: str):
    """``make_problem`` drawn with torch on ``device``: masks, and outputs that depend on the
    first ``min(p, 500)`` points plus noise (float64 tensors)."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    x = (torch.rand(m, p, generator=g, device=device) < 0.5).double()
    k = min(p, 500)
    a = torch.randn(k, t, generator=g, device=device, dtype=torch.float64) * 0.3
    return x, x[:, :k] @ a + 0.1 * torch.randn(
        m, t, generator=g, device=device, dtype=torch.float64
    )


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
    ap.add_argument("--search", action="store_true", help="time the whole fit (λ search)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--on-device", action="store_true", help="draw the problem on --device")
    args = ap.parse_args(argv)
    if args.search and args.on_device:
        return search(
            *make_problem_on(args.models, args.points, args.targets, 0, args.device), args
        )
    x, y = make_problem(args.models, args.points, args.targets, 0)
    if args.search:
        return search(x, y, args)
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


def search(x: np.ndarray, y: np.ndarray, args) -> int:
    """Median wall time of the ridge fit as ``fit_datamodel`` runs it: λ chosen by LDS on a
    held-out block, the final weights, and the LDS-vs-M curve (timed apart)."""
    import statistics

    from core.attribution import fit as F

    m, h = x.shape[0], int(round(x.shape[0] * 0.1))
    n_fit = m - h
    score = np.asarray if isinstance(x, np.ndarray) else (lambda out: out)
    core_s, curve_s, lds = [], [], float("nan")

    def sync() -> None:
        if "cuda" in str(args.device):
            import torch

            torch.cuda.synchronize()

    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = F._ridge(x, y, y, n_fit, h, score, args.points, args.device, None, with_curve=False)
        sync()
        core_s.append(time.perf_counter() - t0)
        lds = float(np.nanmean(res[4]))
        if args.on_device:
            continue  # the curve's refits at M/8 … M/2 are left out at this scale
        t0 = time.perf_counter()
        F._ridge(x, y, y, n_fit, h, score, args.points, args.device, None)
        curve_s.append(time.perf_counter() - t0)
    out = {"models": m, "points": args.points, "targets": args.targets,
           "search_and_fit_s": statistics.median(core_s),
           "with_lds_curve_s": statistics.median(curve_s) if curve_s else None,
           "repeats": args.repeats, "device": args.device, "test_lds": lds,
           "dual": m - h < args.points}  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        print(f"ridge datamodels, {m} models × {args.points} points × {args.targets} targets on "
              f"{args.device}: λ search + final fit {out['search_and_fit_s']:.2f} s; with the "
              f"LDS-against-M curve {out['with_lds_curve_s'] or float('nan'):.2f} s (medians of "
              f"{args.repeats}); test LDS {lds:.3f}; {'dual' if out['dual'] else 'primal'} form")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
