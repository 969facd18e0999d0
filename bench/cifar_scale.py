"""KLoM and U-LiRA at CIFAR-10 scale, on random margins (CPU figures; no training).

    python bench/cifar_scale.py                 # KLoM 60,000 points × 200 models a side,
                                                # U-LiRA 1,000 forget points × 200 models a side
    python bench/cifar_scale.py --repeat 5 --json
    python bench/cifar_scale.py --device cuda   # KLoM also on the GPU (margins already there)

KLoM as ``core.evaluation.run`` computes it per evaluation: unlearned vs oracle over every point
(train 50,000 + val 10,000), float32 margins as stored. U-LiRA as ``core.evaluation.audits`` runs it:
unlearned vs oracle and the floor (a second oracle group vs the oracle) on every forget point.
Margins are normal, a tenth of the points shifted (poorly unlearned). Prints the median and the
spread of ``--repeat`` runs after one warm-up run on a slice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.evaluation.audit_math import FPRS, ulira  # noqa: E402
from core.evaluation.klom import klom  # noqa: E402


def margins(n_models: int, n_points: int, seed: int, k: int) -> list[np.ndarray]:
    """``k`` groups of float32 margins ``(n_models, n_points)``; the first one shifted on a
    tenth of the points."""
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal((n_models, n_points), dtype=np.float32) for _ in range(k)]
    out[0][:, : n_points // 10] += rng.uniform(0.5, 3.0, size=n_points // 10).astype(np.float32)
    return out


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=60_000, help="KLoM: points (train + val)")
    ap.add_argument("--forget", type=int, default=1_000, help="U-LiRA: forget points")
    ap.add_argument("--models", type=int, default=200, help="models a side")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs (the median is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--device", default="cpu", help="also time KLoM on this torch device")
    args = ap.parse_args(argv)

    u, o = margins(args.models, args.points, args.seed, 2)
    klom(u[:, :500], o[:, :500])  # warm-up
    k_times = timed(lambda: klom(u, o), args.repeat)
    on_device = None
    if args.device != "cpu":
        import torch

        ut, ot = torch.from_numpy(u).to(args.device), torch.from_numpy(o).to(args.device)
        ref = klom(u, o)

        def gpu() -> np.ndarray:
            out = klom(ut, ot)  # a NumPy array: the device's work is done
            return out

        diff = float(np.abs(np.asarray(gpu()) - ref).max())  # also the warm-up
        d_times = timed(gpu, args.repeat)
        on_device = {"device": args.device, "median_s": statistics.median(d_times),
                     "min_s": min(d_times), "max_s": max(d_times), "runs": len(d_times),
                     "max_abs_diff_vs_numpy": diff,
                     "name": torch.cuda.get_device_name() if "cuda" in args.device else ""}  # fmt: skip
        ut = ot = None
    u = o = None  # free them before the audit
    fu, fo, ff = margins(args.models, args.forget, args.seed + 1, 3)

    def audit() -> None:
        for side in (fu, ff):  # the run and its floor, as core.evaluation.audits
            res = ulira(side, fo)
            [res.tpr_at(a) for a in FPRS]

    ulira(fu[:, :10], fo[:, :10])  # warm-up
    u_times = timed(audit, args.repeat)
    result = {
        "cpu_count": os.cpu_count(),
        "klom": {"points": args.points, "models_per_side": args.models,
                 "median_s": statistics.median(k_times), "min_s": min(k_times),
                 "max_s": max(k_times), "runs": len(k_times), "on_device": on_device},
        "ulira": {"forget_points": args.forget, "models_per_side": args.models,
                  "median_s": statistics.median(u_times), "min_s": min(u_times),
                  "max_s": max(u_times), "runs": len(u_times),
                  "what": "unlearned vs oracle + floor vs oracle, bacc and TPR at 1%/5% FPR"},
    }  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        k, v = result["klom"], result["ulira"]
        print(f"KLoM   {k['points']:,} points × {k['models_per_side']} models a side: "
              f"median {k['median_s']:.2f} s (min {k['min_s']:.2f}, max {k['max_s']:.2f}, "
              f"{k['runs']} runs)")  # fmt: skip
        if on_device:
            print(f"KLoM on {on_device['device']} ({on_device['name']}), margins on the device: "
                  f"median {on_device['median_s']:.3f} s (min {on_device['min_s']:.3f}, max "
                  f"{on_device['max_s']:.3f}); max |diff| vs NumPy {on_device['max_abs_diff_vs_numpy']:.1e}")  # fmt: skip
        print(f"U-LiRA {v['forget_points']:,} forget points × {v['models_per_side']} models a "
              f"side (run + floor): median {v['median_s']:.3f} s (min {v['min_s']:.3f}, max "
              f"{v['max_s']:.3f}, {v['runs']} runs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
