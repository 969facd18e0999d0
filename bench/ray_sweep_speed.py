"""One unlearning sweep run here and as Ray tasks: wall time, and the stored runs compared.

    python bench/ray_sweep_speed.py                   # 8 digits originals, a 4-point grid, median of 3
    python bench/ray_sweep_speed.py --models 16 --repeats 5 --json

A lab is built once (``--models`` digits originals of the default recipe, a random forget set
of 50, its oracle and floor groups). Each repeat copies it twice and runs the same grid of
gradient descent (budgets 0.05, 0.1 × lr 0.01, 0.02) on each copy: ``LocalExecutor`` (the
points one after another in this process) and ``RayExecutor`` on a local Ray instance of
``--cpus`` CPUs (every point a 1-CPU task, one torch thread each; the originals put in Ray's
object store once per sweep). Times are of ``core.jobs.sweeps.run_sweep`` (training, scoring, storing
every point); Ray's start is timed apart, and the first Ray sweep (workers importing torch) is
reported apart from the warm ones. Whether every Ray run's stored margins equal the local
run's is reported (the local sweep uses this process's torch threads; on one thread they are
equal byte for byte: tests/jobs/test_ray.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from core.evaluation.run import build_oracles, evaluation_margins  # noqa: E402
from core.forget.sets import random_forget_set  # noqa: E402
from core.forget.store import save_forget_set  # noqa: E402
from core.jobs.sweeps import run_sweep  # noqa: E402
from core.store.db import Store  # noqa: E402
from core.zoo.build import build_model_set, create_model_set  # noqa: E402
from core.zoo.executors import LocalExecutor, RayExecutor  # noqa: E402
from core.zoo.recipe import default_train_config  # noqa: E402

GRID = [{"budget": b, "lr": lr} for b in (0.05, 0.1) for lr in ("0.01", "0.02")]


def lab(folder: Path, n_models: int) -> int:
    store = Store(folder / "lab.duckdb")
    orig = create_model_set(store, "original", default_train_config("digits"), n_models, seed=0)
    build_model_set(store, orig)
    fs = save_forget_set(store, random_forget_set(1347, 50, seed=0, name="r50"), "digits")
    build_oracles(store, fs, n_models)
    return fs


def sweep(folder: Path, name: str, fs: int, ex) -> tuple[float, list[np.ndarray]]:
    shutil.copy(folder / "lab.duckdb", folder / f"{name}.duckdb")
    shutil.copytree(folder / "lab.files", folder / f"{name}.files")
    store = Store(folder / f"{name}.duckdb")
    t0 = time.perf_counter()
    out = sorted(run_sweep(store, fs, "gradient_descent", GRID, executor=ex))
    wall = time.perf_counter() - t0
    return wall, [evaluation_margins(store, run)[0] for _, run in out]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    local, remote, same = [], [], True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fs = lab(folder, args.models)
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        start = time.perf_counter() - t0
        for r in range(args.repeats + 1):  # repeat 0 of Ray: cold workers
            t_ray, m_ray = sweep(folder, f"ray{r}", fs, RayExecutor())
            t_loc, m_loc = sweep(folder, f"local{r}", fs, LocalExecutor())
            same &= all(np.array_equal(a, b) for a, b in zip(m_ray, m_loc, strict=True))
            remote.append(t_ray)
            if r:
                local.append(t_loc)
    ray.shutdown()
    out = {
        "models": args.models, "grid_points": len(GRID), "cpus": args.cpus,
        "ray_start_s": start, "ray_first_sweep_s": remote[0], "ray_sweep_s": remote[1:],
        "local_sweep_s": local, "ray_median_s": statistics.median(remote[1:]),
        "local_median_s": statistics.median(local), "margins_equal": same,
        "load_avg": os.getloadavg(),
    }  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{len(GRID)}-point gradient-descent sweep on {args.models} digits models: "
              f"local {out['local_median_s']:.2f} s, Ray {out['ray_median_s']:.2f} s "
              f"(median of {args.repeats}; Ray start {start:.1f} s, first sweep "
              f"{remote[0]:.2f} s); margins equal: {same}; load {out['load_avg'][0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
