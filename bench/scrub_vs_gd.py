"""SCRUB against retain fine-tuning (GD) on the same retain batches: how far apart their margins
end. SCRUB's forget-side ascent on KL(teacher ‖ student) has zero gradient while the student
equals the teacher, so it acts only once the retain descent has moved the student.

    python bench/scrub_vs_gd.py [--models 8] [--epochs 30] [--budget 0.1] [--json]

Builds a small digits lab in a temporary folder (originals of the digits recipe with
``--epochs``, the random-50 preset, its oracles). For each SCRUB setting of the method grid
(lr 0.005, 0.01 × max_share 0.25, 0.5), the same with α = 0 (the forget ascent alone on top of
CE) and max_share 0 (the retain KL alone), it runs SCRUB and GD at the same lr with GD's budget set
to SCRUB's S retain steps, both drawing the same per-model seeds (``UnlearnContext.seeds``
fixed), so both see the same retain batches in the same order; the only differences are SCRUB's
KL terms (forget ascent, α·KL on retain). Reports max and mean |m_SCRUB − m_GD| over all
(model, point) pairs, the signed mean m_SCRUB − m_GD on the forget set, beside the mean |m_GD − m_original| (how far GD
moved at all), and KLoM P95 on forget of both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import numpy as np  # noqa: E402

from core.evaluation.run import build_oracles, evaluate, evaluation, evaluation_margins  # noqa: E402
from core.forget.sets import digits_preset  # noqa: E402
from core.forget.store import save_forget_set  # noqa: E402
from core.store.db import Store  # noqa: E402
from core.unlearning.base import UnlearnContext  # noqa: E402
from core.unlearning.more import scrub_steps  # noqa: E402
from core.zoo.build import build_model_set, create_model_set, load_margins  # noqa: E402
from core.zoo.data import load_dataset  # noqa: E402
from core.zoo.recipe import default_train_config  # noqa: E402

FIXED_SEED = 424_242


def _fixed_seeds():
    """Every run's per-model seeds the same (the set is still created, as usual)."""
    orig = UnlearnContext.seeds

    def seeds(self, n_models: int) -> list[int]:
        orig(self, n_models)
        return [FIXED_SEED + i for i in range(n_models)]

    UnlearnContext.seeds = seeds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--budget", type=float, default=0.1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    _fixed_seeds()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "lab.duckdb")
        recipe = default_train_config("digits").replace(epochs=a.epochs)
        orig = create_model_set(store, "original", recipe, a.models, seed=0)
        build_model_set(store, orig)
        data = load_dataset("digits")
        fs = digits_preset("random-50", data.y_train.numpy(), data.x_train.numpy())
        fs_id = save_forget_set(store, fs, "digits")
        build_oracles(store, fs_id, a.models)
        forget = np.asarray(fs.indices)
        m0 = load_margins(store, orig)
        retrain = recipe.total_steps(data.n_train) * recipe.batch_size
        rows, gd_runs = [], {}

        def p95(run: int) -> float:
            s = evaluation(store, run)["summaries"].set_index(["split", "metric"])
            return float(s.loc[("forget", "klom"), "p95"])

        for lr in (0.005, 0.01):
            for share, alpha in ((0.25, 1.0), (0.5, 1.0), (0.25, 0.0), (0.5, 0.0), (0.0, 1.0)):
                ctx = UnlearnContext(store, data, forget, orig, budget=a.budget)
                steps, n_max, _ = scrub_steps(ctx, 64, 16, share)
                s_run = evaluate(store, fs_id, "scrub", budget=a.budget, lr=lr, max_share=share,
                                 alpha=alpha, recompute=True)  # fmt: skip
                if (lr, steps) not in gd_runs:
                    g_budget = (steps * 64 + 0.5) / retrain  # buys exactly S steps of 64
                    gd_runs[lr, steps] = evaluate(store, fs_id, "gradient_descent",
                                                  budget=g_budget, lr=lr, recompute=True)  # fmt: skip
                g_run = gd_runs[lr, steps]
                ms, mg = evaluation_margins(store, s_run)[0], evaluation_margins(store, g_run)[0]
                d = np.abs(ms - mg)
                rows.append({
                    "lr": lr, "max_share": share, "alpha": alpha, "steps": steps,
                    "max_steps": n_max, "max_abs_diff": float(d.max()),
                    "mean_abs_diff": float(d.mean()),
                    "forget_mean_diff": float((ms - mg)[:, forget].mean()),
                    "gd_mean_abs_move": float(np.abs(mg - m0).mean()),
                    "scrub_forget_p95": p95(s_run), "gd_forget_p95": p95(g_run),
                })  # fmt: skip
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{a.models} models, {a.epochs} epochs, budget {a.budget}")
    for r in rows:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in r.items()))  # fmt: skip


if __name__ == "__main__":
    main()
