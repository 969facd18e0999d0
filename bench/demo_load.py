"""The quick demo's wall time on a quiet machine and beside one busy process.

    python bench/demo_load.py                    # auto thread policy vs a fixed 2 threads
    python bench/demo_load.py --repeats 3 --json

Runs ``python -m core demo`` from an empty temporary store, as a whole process, in four
settings, pairs interleaved (A B A B …) so a drift of the machine hits both alike:

    quiet, auto        the lab's thread policy (core/common/threads.py), nothing else running
    quiet, 2 threads   LAB_THREADS=2, the old fixed choice
    busy, auto         beside one process that spins a core (a Python busy loop)
    busy, 2 threads

and prints the median wall time of each, with the busy auto/2-thread ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_demo(models: int, threads: str | None, busy: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "LAB_THREADS"}
    if threads:
        env["LAB_THREADS"] = threads
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "core", "demo", "--models", str(models), "--json",
                 "--db", str(Path(tmp) / "lab.duckdb")],
                cwd=ROOT, env=env, check=True, capture_output=True,
            )  # fmt: skip
            return time.perf_counter() - t0
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    settings = {
        "quiet, auto": (None, False),
        "quiet, 2 threads": ("2", False),
        "busy, auto": (None, True),
        "busy, 2 threads": ("2", True),
    }
    times: dict[str, list[float]] = {k: [] for k in settings}
    for _ in range(args.repeats):
        for name, (threads, busy) in settings.items():
            times[name].append(run_demo(args.models, threads, busy))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "models": args.models,
        "cores": len(os.sched_getaffinity(0)),
        "median_s": {k: round(v, 1) for k, v in med.items()},
        "runs_s": {k: [round(x, 1) for x in v] for k, v in times.items()},
        "busy_auto_over_2_threads": round(med["busy, auto"] / med["busy, 2 threads"], 2),
        "quiet_auto_over_2_threads": round(med["quiet, auto"] / med["quiet, 2 threads"], 2),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"python -m core demo --models {args.models}, {out['cores']} cores, "
              f"median of {args.repeats}")  # fmt: skip
        for k, v in med.items():
            print(f"  {k:18s} {v:7.1f} s")
        print(f"  busy:  auto / 2 threads = {out['busy_auto_over_2_threads']}")
        print(f"  quiet: auto / 2 threads = {out['quiet_auto_over_2_threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
