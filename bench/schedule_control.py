"""Schedule control: two independent groups of originals, side by side with the noise floor.

    python bench/schedule_control.py                  # 100 models a side, digits, random-50
    python bench/schedule_control.py --models 50 --forget-set random-10 --json

Two groups of originals trained with the same recipe and data, differing only in their seeds,
are as close as two groups can be: their KLoM per split must sit at the noise floor (two
independent oracle groups of one forget set). Before the schedule was fixed per recipe, groups
trained on sets of different sizes took different numbers of steps, and the schedule alone
moved KLoM; this prints, per split of the forget set:

    control    KLoM(originals B ‖ originals A)        — no forget set at all
    floor      KLoM(oracles D ‖ oracles C)            — the noise floor
    do-nothing KLoM(originals A ‖ oracles C)          — what removing the forget set changed

with P95, P99, the control's P95 over the floor's P95, and the mean-margin shift of B against
A. Everything is trained in a temporary store (or ``--db``), in one run. Exits 1 if a split's
control P95 exceeds ``--max-ratio`` × the floor's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.evaluation.klom import SPLITS, klom, split_indices  # noqa: E402
from core.evaluation.run import build_oracles  # noqa: E402
from core.forget.sets import PRESET_NAMES, digits_preset  # noqa: E402
from core.forget.store import save_forget_set  # noqa: E402
from core.store.db import Store  # noqa: E402
from core.zoo.build import build_model_set, create_model_set, load_margins  # noqa: E402
from core.zoo.data import load_dataset  # noqa: E402
from core.zoo.recipe import default_train_config  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=100, help="models per group (4 groups)")
    ap.add_argument("--forget-set", default="random-50", choices=PRESET_NAMES)
    ap.add_argument("--epochs", type=int, default=None, help="override the digits recipe")
    ap.add_argument("--db", default=None, help="store to use (default: a temporary one)")
    ap.add_argument("--max-ratio", type=float, default=1.2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    store = Store(args.db or Path(tmp.name) / "control.duckdb")
    train = default_train_config("digits")
    if args.epochs:
        train = train.replace(epochs=args.epochs)
    t0 = time.perf_counter()
    a, b = (create_model_set(store, "original", train, args.models) for _ in range(2))
    for s in (a, b):
        build_model_set(store, s)
    data = load_dataset("digits")
    fs = digits_preset(
        args.forget_set, data.y_train.numpy(), data.raw_train.reshape(data.n_train, -1)
    )
    fs_id = save_forget_set(store, fs, "digits")
    c, d = build_oracles(store, fs_id, original_set_id=a)
    wall = time.perf_counter() - t0
    ma, mb, mc, md = (load_margins(store, s) for s in (a, b, c, d))  # (n_models, n_points)
    splits = split_indices(data.n_train, data.n_val, fs.indices)
    rows = {"control": klom(mb, ma), "floor": klom(md, mc), "do-nothing": klom(ma, mc)}
    shift = mb.mean(0) - ma.mean(0)  # (n_points,)
    out: dict = {"models_per_group": args.models, "forget_set": args.forget_set,
                 "steps": train.total_steps(data.n_train), "train_wall_s": round(wall, 1),
                 "splits": {}}  # fmt: skip
    ok = True
    for split in SPLITS:
        idx = splits[split]
        entry = {name: {"p95": float(np.percentile(v[idx], 95)),
                        "p99": float(np.percentile(v[idx], 99))} for name, v in rows.items()}  # fmt: skip
        entry["points"] = int(idx.size)
        entry["control_over_floor_p95"] = entry["control"]["p95"] / entry["floor"]["p95"]
        entry["mean_margin_shift_b_minus_a"] = float(shift[idx].mean())
        ok &= entry["control_over_floor_p95"] <= args.max_ratio
        out["splits"][split] = entry
    out["within_max_ratio"] = bool(ok)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.models} models a side, digits, forget set {args.forget_set}, "
              f"{out['steps']} steps per model; trained in {wall:.0f} s")  # fmt: skip
        print(f"{'split':7} {'pts':>5} {'control P95':>12} {'floor P95':>10} {'ratio':>6} "
              f"{'do-nothing P95':>15} {'control P99':>12} {'floor P99':>10} {'shift':>7}")  # fmt: skip
        for split, e in out["splits"].items():
            print(f"{split:7} {e['points']:5d} {e['control']['p95']:12.3f} {e['floor']['p95']:10.3f} "
                  f"{e['control_over_floor_p95']:6.2f} {e['do-nothing']['p95']:15.3f} "
                  f"{e['control']['p99']:12.3f} {e['floor']['p99']:10.3f} "
                  f"{e['mean_margin_shift_b_minus_a']:+7.3f}")  # fmt: skip
        print(f"every split's control P95 within {args.max_ratio}× the floor: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
