"""The datamodel methods' figures over independent draws of subset models: mean ± sd.

    python bench/datamodel_draws.py --db LAB [--draws 3] [--models 2000]
                                    [--sets random-50,class3-half,knn-pixel-20] [--json]
                                    [--save-json FILE]

Datamodel-Direct and DMM depend on which subset models their datamodel was fitted on (docs/results.md's
dense Datamodel-Direct forget P95 on random-50 was 1.51 on one draw and 2.57 on another). On a
lab with originals (``python -m core demo``), for each of ``--draws`` draws this builds a *new*
subset set of ``--models`` models (new seeds: an independent draw), fits a ridge datamodel of
margins and one of logits on it, and evaluates on each forget set (created with its oracles
where missing, as ``method_grid.py`` does): ``dm_direct`` (dense and ``top_k=20``) and the
DMM grid of ``method_grid.py`` at its budgets, the best setting per budget chosen as there
(lowest KLoM P99 averaged over the splits). A stored run is reused only when it was made from
the datamodel in use, so every draw's runs are its own. Prints, per forget set and method, the
mean ± sd over the draws of KLoM P95 per split and of the P99 average, with each draw's
datamodel LDS (val).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.method_grid import GRID, SPLITS, best_rows, ensure_set  # noqa: E402
from core.attribution.datamodels import get_datamodel  # noqa: E402
from core.attribution.fit import fit_datamodel  # noqa: E402
from core.evaluation.run import evaluate  # noqa: E402
from core.store.db import Store  # noqa: E402
from core.zoo.build import build_model_set, create_model_set  # noqa: E402
from core.zoo.model_sets import get_model_set  # noqa: E402

BUDGETS = (0.02, 0.05, 0.1)
ROWS = ("dm_direct", "dm_direct_top20", *(f"dm_matching@{b:g}" for b in BUDGETS))


def one_draw(store: Store, originals: int, models: int, sets: dict[str, int]) -> dict:
    """A new subset set, its two datamodels, and every run on every set: the best rows."""
    orig = get_model_set(store, originals)
    subset = create_model_set(store, "subset", orig.train, models, fraction=0.5)
    build_model_set(store, subset)
    lds = {}
    for target in ("margin", "logits"):  # the logits one last: DMM's, and the newest
        dm = fit_datamodel(store, orig.dataset, original_set_id=originals, n_models=models,
                           target=target, subset_set_id=subset)  # fmt: skip
        lds[target] = get_datamodel(store, dm).lds_val
    # dm_direct takes ridge-on-margins first (chosen_datamodel): this draw's
    out = {"subset_set": subset, "lds_val": lds, "sets": {}}
    _, fixed, axes = GRID["dm_matching"]
    for name, fs in sets.items():
        points = [
            {"label": "dm_direct", "run_id": evaluate(store, fs, "dm_direct"), "params": {}},
            {"label": "dm_direct_top20", "run_id": evaluate(store, fs, "dm_direct", top_k=20),
             "params": {"top_k": 20}},
        ]  # fmt: skip
        for budget in BUDGETS:
            for lr in axes["lr"]:
                for top_k in axes["top_k"]:
                    p = {**fixed, "lr": lr, "top_k": top_k}
                    run = evaluate(store, fs, "dm_matching", budget=budget, **p)
                    points.append({"label": "dm_matching", "run_id": run, "budget": budget,
                                   "params": p})  # fmt: skip
        rows = best_rows(store, fs, points)
        out["sets"][name] = {
            (r["method"] if r["budget"] is None else f"{r['method']}@{r['budget']:g}"): r
            for r in rows
        }
        print(f"  draw: subset set {subset}, {name} done", file=sys.stderr, flush=True)
    return out


def summary(draws: list[dict], name: str) -> list[dict]:
    """Mean and sd (ddof 1) over the draws of each row's figures on forget set ``name``."""
    out = []
    for label in ROWS:
        rows = [d["sets"][name][label] for d in draws if label in d["sets"][name]]
        if not rows:
            continue
        keys = [f"{s}_p95" for s in SPLITS] + ["p99_avg"]
        vals = {k: np.array([r[k] for r in rows]) for k in keys}
        out.append({"row": label, "draws": len(rows),
                    **{k: (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
                       for k, v in vals.items()},
                    "settings": [r["params"] for r in rows]})  # fmt: skip
    return out


def markdown(name: str, rows: list[dict], floor: dict) -> str:
    head = (f"**{name}** (floor P95 forget / retain / val {floor['forget']:.2f} / "
            f"{floor['retain']:.2f} / {floor['val']:.2f})\n\n"
            "| method | forget P95 | retain P95 | val P95 | P99 avg | draws |\n"
            "|---|---|---|---|---|---|\n")  # fmt: skip
    cell = "{:.2f} ± {:.2f}".format
    lines = [f"| {r['row']} | " + " | ".join(cell(*r[k]) for k in
             ("forget_p95", "retain_p95", "val_p95", "p99_avg")) + f" | {r['draws']} |"
             for r in rows]  # fmt: skip
    return head + "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=None)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--models", type=int, default=2000, help="subset models per draw")
    ap.add_argument("--originals", type=int, default=None, help="default: the newest")
    ap.add_argument("--sets", default="random-50,class3-half,knn-pixel-20")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save-json", default=None, help="also write the JSON report to this file")
    args = ap.parse_args()
    store = Store(args.db, must_exist=True)
    originals = args.originals
    if originals is None:
        df = store.query_df("SELECT id FROM model_sets WHERE kind = 'original' AND "
                            "status = 'complete' ORDER BY id DESC LIMIT 1")  # fmt: skip
        if df.empty:
            ap.error("the lab has no complete original set: run python -m core demo first")
        originals = int(df["id"][0])
    sets = {name: ensure_set(store, name) for name in args.sets.split(",")}
    draws = [one_draw(store, originals, args.models, sets) for _ in range(args.draws)]
    report = {
        "models": args.models, "originals": originals,
        "lds_val": [d["lds_val"] for d in draws],
        "subset_sets": [d["subset_set"] for d in draws],
        "sets": {name: summary(draws, name) for name in sets},
    }  # fmt: skip
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.draws} draws of {args.models} subset models; LDS val per draw (margin / "
          "logits): " + ", ".join(f"{d['margin']:.3f} / {d['logits']:.3f}"
                                  for d in report["lds_val"]))  # fmt: skip
    for name in sets:
        any_row = next(iter(draws[0]["sets"][name].values()))
        floor = {s: any_row[f"{s}_floor_p95"] for s in SPLITS}
        print(markdown(name, report["sets"][name], floor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
