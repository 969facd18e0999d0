"""Unlearning speed: every method on 100 digits models at a budget of one epoch.

    python bench/unlearn_speed.py [--models 100] [--repeats 3] [--device cuda] [--json]

Builds (once, in a temporary store) the originals, the random-50 forget set, its oracle and
noise-floor groups, OM's held-out group and a small logits datamodel (200 subset models, for
dm_direct and dm_matching); then times ``evaluate(…, method, budget=1/30,
recompute=True)`` for every registered method — unlearning, scoring every point and storing
the run — and prints the median wall time of ``--repeats`` runs per method. A budget of 1/30 is
one epoch of the digits recipe (30 epochs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.attribution.fit import fit_datamodel  # noqa: E402
from core.evaluation.run import build_oracles, evaluate  # noqa: E402
from core.forget.sets import digits_preset  # noqa: E402
from core.forget.store import save_forget_set  # noqa: E402
from core.store.db import Store  # noqa: E402
from core.unlearning import METHODS  # noqa: E402
from core.zoo.build import build_model_set, create_model_set  # noqa: E402
from core.zoo.data import load_dataset  # noqa: E402
from core.zoo.recipe import default_train_config  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--datamodel-models", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default=None, help="auto (default), cpu, cuda[:N] or mps")
    args = ap.parse_args()
    dev = args.device
    tmp = tempfile.TemporaryDirectory()
    store = Store(Path(tmp.name) / "lab.duckdb")
    orig = create_model_set(store, "original", default_train_config("digits"), args.models)
    build_model_set(store, orig, device=dev)
    data = load_dataset("digits")
    fs = digits_preset("random-50", data.y_train.numpy(), data.raw_train.reshape(data.n_train, -1))
    fs_id = save_forget_set(store, fs, "digits")
    build_oracles(store, fs_id, device=dev)
    # builds OM's held-out group once
    evaluate(store, fs_id, "oracle_matching", budget=1 / 30, device=dev)
    # a small logits datamodel for dm_direct and dm_matching: their time does not depend on M
    fit_datamodel(store, n_models=args.datamodel_models, target="logits", device=dev)
    times: dict[str, float] = {}
    for method in sorted(METHODS):
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            evaluate(store, fs_id, method, budget=1 / 30, recompute=True, device=dev)
            runs.append(time.perf_counter() - t0)
        times[method] = statistics.median(runs)
    if args.json:
        print(json.dumps({"models": args.models, "budget": 1 / 30, "device": dev or "auto",
                          "median_s": times}, indent=2))  # fmt: skip
    else:
        print(f"{args.models} digits models, budget 1/30, median of {args.repeats} "
              f"(unlearn + score every point + store), device {dev or 'auto'}")  # fmt: skip
        for method, t in times.items():
            print(f"  {method:18s} {t:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
