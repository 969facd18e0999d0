"""How many subset models a digits datamodel needs: held-out LDS and wall time against M.

    nice python bench/datamodel_models.py                          # M = 200 … 2,000
    nice python bench/datamodel_models.py --models 200,500,1000,2000,3000 --draws 3 --json

On a fresh store: 2 originals of the default digits recipe (``default_train_config("digits")``:
their recipe is all that matters), then one subset set of ``max(M)`` models (each on a random
half of the train split), trained once; every smaller M fits on the set's *first* M models, as
``fit_datamodel(n_models=M, subset_set_id=…)`` does. For each M it reports:

- ``train_s``: the subset models' training time for M models, the stored per-chunk wall times
  (chunks of 256 models) summed over the chunks covering the first M, the last one pro rata;
- ``fit_s``: ``fit_datamodel`` as the ``datamodel`` job runs it (outputs read, λ search, final
  fit, the LDS-against-M curve, files and row written), measured here;
- ``lds_train`` / ``lds_val``: the stored LDS of the datamodel — the mean Spearman correlation of
  predicted and actual margins over the last ``h = round(0.1·M)`` held-out subset models, for
  train targets / val targets (the Attribution page shows ``lds_val``);
- with ``--draws k``: the same ridge path (``fit._ridge``) on up to k *disjoint* windows of M
  models of the set (window 0 is the stored fit, checked to agree), so the spread over random
  draws of subsets is seen where ``max(M) ≥ 2·M``.

The first M whose ``lds_val`` is ≥ ``--threshold`` (0.5) in every draw measured is reported.
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


def train_seconds(chunks, m: int) -> float:
    """Training time of a set's first ``m`` models from its chunks' rows (``first_model``,
    ``n_models``, ``wall_time_s``): whole chunks summed, the last partial one pro rata."""
    total = 0.0
    for r in chunks.itertuples():
        take = min(int(r.n_models), max(0, m - int(r.first_model)))
        total += float(r.wall_time_s) * take / int(r.n_models)
    return total


def window_lds(x: np.ndarray, y: np.ndarray, m: int, draws: int, n_train: int) -> list[float]:
    """``lds_val`` of the ridge fit (``fit._ridge``, as ``fit_datamodel`` runs it) on up to
    ``draws`` disjoint windows of ``m`` models: masks ``x`` ``(M_max, n_train)``, margins ``y``
    ``(M_max, n_points)``."""
    from core.attribution import fit as F

    out = []
    h = max(2, int(round(F.DEFAULT_HOLDOUT * m)))
    for i in range(min(draws, len(x) // m)):
        xs, ys = x[i * m : (i + 1) * m].astype(np.float64), y[i * m : (i + 1) * m]
        res = F._ridge(xs, ys, ys, m - h, h, np.asarray, n_train, "cpu", None, with_curve=False)
        out.append(F._lds(res[4], n_train)["lds_val"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="200,500,750,1000,1500,2000", help="M values, commas")
    ap.add_argument("--draws", type=int, default=3, help="disjoint windows per M (spread)")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument(
        "--logits",
        action="store_true",
        help="also fit (and time) a logits datamodel at the first M that reaches "
        "the threshold (else at max(M))",
    )
    ap.add_argument("--db", default=None, help="store path (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    ms = sorted({int(v) for v in args.models.split(",")})

    from core.attribution.datamodels import get_datamodel
    from core.attribution.fit import fit_datamodel
    from core.attribution.subsets import ensure_subsets, subset_outputs
    from core.store.db import Store
    from core.zoo.build import build_model_set, create_model_set
    from core.zoo.data import load_dataset
    from core.zoo.model_sets import get_model_set
    from core.zoo.recipe import default_train_config

    tmp = tempfile.TemporaryDirectory() if args.db is None else None
    store = Store(args.db or Path(tmp.name) / "lab.duckdb")
    cfg = default_train_config("digits")
    n_train = load_dataset("digits", "cpu").n_train
    t0 = time.perf_counter()
    orig = create_model_set(store, "original", cfg, 2, seed=0)
    build_model_set(store, orig)
    orig_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sid = ensure_subsets(store, cfg, max(ms), 0.5, device="cpu")
    subsets_s = time.perf_counter() - t0
    chunks = store.query_df(
        "SELECT first_model, n_models, wall_time_s FROM model_chunks WHERE set_id = ? "
        "ORDER BY chunk", [sid],
    )  # fmt: skip
    x, y = subset_outputs(store, sid, max(ms), "margin", "cpu")
    rows = []
    for m in ms:
        t0 = time.perf_counter()
        dm_id = fit_datamodel(store, "digits", original_set_id=orig, n_models=m,
                              subset_set_id=sid, device="cpu")  # fmt: skip
        dm = get_datamodel(store, dm_id)
        fit_s = time.perf_counter() - t0
        draws = window_lds(x, y, m, args.draws, n_train)
        assert abs(draws[0] - dm.lds_val) < 1e-6, (draws[0], dm.lds_val)  # the same fit
        rows.append({"m": m, "train_s": train_seconds(chunks, m), "fit_s": fit_s,
                     "lds_train": dm.lds_train, "lds_val": dm.lds_val, "lds_val_draws": draws,
                     "lam": dm.lam})  # fmt: skip
    first = next((r["m"] for r in rows if min(r["lds_val_draws"]) >= args.threshold), None)
    logits = None
    if args.logits:
        t0 = time.perf_counter()
        dm = get_datamodel(store, fit_datamodel(store, "digits", original_set_id=orig,
                                                n_models=first or max(ms), target="logits",
                                                subset_set_id=sid, device="cpu"))  # fmt: skip
        logits = {"m": first or max(ms), "fit_s": time.perf_counter() - t0, "lds_val": dm.lds_val,
                  "lds_train": dm.lds_train}  # fmt: skip
    out = {"recipe": cfg.describe(), "recipe_id": cfg.recipe_id(), "subset_set": sid,
           "subset_seed": get_model_set(store, sid).seed, "originals_s": orig_s,
           "subsets_s": subsets_s, "rows": rows, "logits": logits,
           "threshold": args.threshold, "first_m_at_threshold": first}  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        print(f"digits, {cfg.describe()}; {max(ms)} subset models trained in {subsets_s:.0f} s "
              f"(set {sid}); fits on the set's first M models, CPU")  # fmt: skip
        print(f"{'M':>6} {'train s':>8} {'fit s':>6} {'LDS train':>9} {'LDS val':>8}  "
              "LDS val over disjoint draws")  # fmt: skip
        for r in rows:
            d = ", ".join(f"{v:.3f}" for v in r["lds_val_draws"])
            print(f"{r['m']:>6} {r['train_s']:>8.0f} {r['fit_s']:>6.1f} {r['lds_train']:>9.3f} "
                  f"{r['lds_val']:>8.3f}  {d}")  # fmt: skip
        if logits:
            print(f"logits fit at M = {logits['m']}: {logits['fit_s']:.1f} s, LDS val "
                  f"{logits['lds_val']:.3f}")  # fmt: skip
        print(f"first M with LDS val ≥ {args.threshold} in every draw: {first or 'none measured'}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
