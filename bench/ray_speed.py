"""One model set built here and as Ray tasks: wall time, and the stored sets compared.

    python bench/ray_speed.py                         # 20 digits originals, median of 3
    python bench/ray_speed.py --models 100 --repeats 5 --json

Each repeat builds the same set (same seeds, default recipe) into a fresh store twice:
``LocalExecutor`` (its default chunking: one chunk of up to ``model_chunk`` models, trained in
this process) and ``RayExecutor`` on a local Ray instance of ``--cpus`` CPUs (its default
chunking: the models spread over the CPUs, one task per CPU, one torch thread each). Times
are of ``create_model_set`` + ``build_model_set`` (training, scoring every point, storing);
Ray's start is timed apart, and the first Ray build (workers importing torch) is reported
apart from the warm ones. Every Ray build's margins are checked equal to the local build's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from core.store.db import Store  # noqa: E402
from core.zoo.build import build_model_set, create_model_set, load_margins  # noqa: E402
from core.zoo.executors import LocalExecutor, RayExecutor  # noqa: E402
from core.zoo.recipe import default_train_config  # noqa: E402


def build(folder: Path, name: str, n_models: int, ex) -> tuple[float, np.ndarray]:
    store = Store(folder / f"{name}.duckdb")
    t0 = time.perf_counter()
    set_id = create_model_set(store, "original", default_train_config("digits"), n_models,
                              seed=0, executor=ex)  # fmt: skip
    build_model_set(store, set_id, executor=ex)
    return time.perf_counter() - t0, load_margins(store, set_id)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import os

    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
    start = time.perf_counter() - t0
    local, remote, same = [], [], True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(args.repeats + 1):  # repeat 0 of Ray: cold workers
            t_ray, m_ray = build(folder, f"ray{r}", args.models, RayExecutor())
            t_loc, m_loc = build(folder, f"local{r}", args.models, LocalExecutor())
            same &= bool(np.array_equal(m_ray, m_loc))
            remote.append(t_ray)
            if r:
                local.append(t_loc)
    ray.shutdown()
    out = {
        "models": args.models, "cpus": args.cpus, "ray_start_s": start,
        "ray_first_build_s": remote[0], "ray_build_s": remote[1:], "local_build_s": local,
        "ray_median_s": statistics.median(remote[1:]), "local_median_s": statistics.median(local),
        "margins_equal": same, "load_avg": os.getloadavg(),
    }  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{args.models} digits models: local {out['local_median_s']:.2f} s, Ray "
            f"({args.cpus} CPUs) {out['ray_median_s']:.2f} s warm (median of {args.repeats}); "
            f"Ray start {start:.1f} s, first Ray build {remote[0]:.2f} s; margins equal: {same}"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
