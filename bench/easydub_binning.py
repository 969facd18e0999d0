"""How far EasyDUB's KLoM binning moves P95 from the lab's, on a lab's own evaluations.

    python -m core demo --db LAB            # digits, 100 models a side, 3 forget sets
    python bench/easydub_binning.py --db LAB [--json]

The lab's KLoM (DESIGN.md, ``core.evaluation.klom.klom``) counts every sample in 20 bins over the joint
clipped range, the last bin closed, and renormalizes q after flooring it at 1e-5. EasyDUB's
evaluation (as its published code reads) assigns bins with ``np.digitize`` on ``linspace``
edges and keeps indices 1 … 20 only, so every sample equal to the joint maximum (index 21) is not
counted at all, on whichever side holds it; p and q are normalized over the samples counted;
q is floored at 1e-5 where p > 0 and *not* renormalized. Written here afresh, per point (a
bench, not the lab's path). Also shown: the lab's binning with only the maximum dropped, to
tell the two differences apart. For every stored evaluation: P95 per split of each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.evaluation.klom import klom, split_indices  # noqa: E402
from core.evaluation.run import evaluation_margins  # noqa: E402
from core.forget.store import get_forget_set  # noqa: E402
from core.store.db import Store  # noqa: E402

BINS, CLIP, EPS = 20, 100.0, 1e-5


def klom_point(p: np.ndarray, q: np.ndarray, renormalize: bool) -> float:
    """One point's KL(p ‖ q) with digitize binning (the joint maximum uncounted)."""
    p, q = np.clip(p, -CLIP, CLIP), np.clip(q, -CLIP, CLIP)
    lo, hi = min(p.min(), q.min()), max(p.max(), q.max())
    if lo >= hi:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, BINS + 1)
    cp = np.bincount(np.digitize(p, edges), minlength=BINS + 2)[1 : BINS + 1].astype(float)
    cq = np.bincount(np.digitize(q, edges), minlength=BINS + 2)[1 : BINS + 1].astype(float)
    pp = cp / cp.sum() if cp.sum() else cp
    qq = cq / cq.sum() if cq.sum() else cq
    qq = np.where(pp > 0, np.maximum(qq, EPS), qq)
    if renormalize:
        qq = qq / qq.sum()
    nz = pp > 0
    return float(np.sum(pp[nz] * np.log(pp[nz] / qq[nz])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="a lab's DuckDB file (after python -m core demo)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    store = Store(args.db)
    evs = store.query_df(
        """SELECT e.run_id, e.forget_set_id, e.method, s.n_train, s.n_val FROM evaluations e
           JOIN (SELECT id, json_extract(data_meta, '$.n_train')::INT AS n_train,
                 json_extract(data_meta, '$.n_val')::INT AS n_val FROM model_sets) s
           ON s.id = e.original_set_id ORDER BY e.run_id"""
    )
    rows = []
    for r in evs.itertuples():
        un, orc = evaluation_margins(store, int(r.run_id))  # (n_models, n_points) each
        fs, _ = get_forget_set(store, int(r.forget_set_id))
        splits = split_indices(int(r.n_train), int(r.n_val), fs.indices)
        lab = klom(un, orc)
        ed = np.array([klom_point(un[:, j], orc[:, j], False) for j in range(un.shape[1])])
        drop = np.array([klom_point(un[:, j], orc[:, j], True) for j in range(un.shape[1])])
        for split, idx in splits.items():
            rows.append({
                "run_id": int(r.run_id), "forget_set": fs.name, "method": r.method,
                "split": split, "n_models": int(un.shape[0]),
                "lab_p95": float(np.percentile(lab[idx], 95)),
                "drop_max_p95": float(np.percentile(drop[idx], 95)),
                "easydub_p95": float(np.percentile(ed[idx], 95)),
            })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'run':>4} {'forget set':<14} {'method':<16} {'split':<7} {'lab P95':>8} "
          f"{'drop max':>9} {'EasyDUB':>8} {'EasyDUB−lab':>12}")  # fmt: skip
    for x in rows:
        print(f"{x['run_id']:>4} {x['forget_set']:<14} {x['method']:<16} {x['split']:<7} "
              f"{x['lab_p95']:>8.4f} {x['drop_max_p95']:>9.4f} {x['easydub_p95']:>8.4f} "
              f"{x['easydub_p95'] - x['lab_p95']:>+12.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
