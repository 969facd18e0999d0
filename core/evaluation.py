"""Oracles and KLoM evaluation of an unlearning method, point by point.

For a forget set F: the *oracle* models are trained on train − F with the originals' recipe; a
second, independent oracle group gives the *noise floor* (KLoM between two groups of oracles:
what a perfect unlearner scores with this many models). An evaluation stores, for every point,

    klom  = KLoM(unlearned ‖ oracle)     floor = KLoM(oracle₂ ‖ oracle)
    gap   = mean margin(unlearned) − mean margin(oracle)   (> 0: under-unlearned)

and per split (forget / retain / val) the P50 / P95 / P99 / mean of both, with accuracies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from .data import load_dataset
from .errors import ConfigError, NotFoundError
from .forget_store import get_forget_set
from .metrics import SPLITS, klom, margin_gap, split_accuracy, split_indices, split_summary
from .recipe import TrainConfig, default_train_config
from .store import Store
from .unlearning import UnlearnContext, get_method
from .zoo import (
    Progress,
    build_model_set,
    create_model_set,
    find_model_set,
    get_model_set,
    load_margins,
)

DEFAULT_MODELS = 100


def ensure_model_set(
    store: Store,
    kind: str,
    dataset: str,
    *,
    train: TrainConfig | None = None,
    n_models: int = DEFAULT_MODELS,
    forget_set_id: int | None = None,
    forget: np.ndarray | None = None,
    role: str = "main",
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """The newest complete set of this kind, else resume an unfinished one, else build a new one."""
    done = find_model_set(store, kind, dataset, forget_set_id=forget_set_id, role=role)
    if done is not None:
        return done
    set_id = find_model_set(
        store, kind, dataset, forget_set_id=forget_set_id, role=role, status="building"
    )
    if set_id is None:
        set_id = create_model_set(
            store, kind, train or default_train_config(dataset), n_models,
            forget_set_id=forget_set_id, role=role, device=device,
        )  # fmt: skip
    build_model_set(
        store, set_id, forget=forget, device=device, progress=progress, should_stop=should_stop
    )
    return set_id


def originals_for(store: Store, dataset: str) -> int:
    """The newest complete set of original models for ``dataset``, or a clear error."""
    set_id = find_model_set(store, "original", dataset)
    if set_id is None:
        raise ConfigError(
            f"there are no original models for {dataset} yet: build them first "
            f"(python -m core train --dataset {dataset}, or the Models page)"
        )
    return set_id


def build_oracles(
    store: Store,
    forget_set_id: int,
    n_models: int = DEFAULT_MODELS,
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[int, int]:
    """Build (or resume) the oracle group and the noise-floor group; returns their set ids.

    Both use the originals' training recipe, so the only difference is the forget set.
    """
    fs, dataset = get_forget_set(store, forget_set_id)
    train = get_model_set(store, originals_for(store, dataset)).train
    ids = []
    for k, role in enumerate(("main", "floor")):
        sub = None
        if progress is not None:
            sub = lambda f, m, k=k, r=role: progress((k + f) / 2, f"oracles ({r}): {m}")  # noqa: E731
        ids.append(
            ensure_model_set(
                store,
                "oracle",
                dataset,
                train=train,
                n_models=n_models,
                forget_set_id=forget_set_id,
                forget=fs.indices,
                role=role,
                device=device,
                progress=sub,
                should_stop=should_stop,
            )  # fmt: skip
        )
    return ids[0], ids[1]


def oracles_for(store: Store, forget_set_id: int) -> tuple[int, int]:
    fs, dataset = get_forget_set(store, forget_set_id)
    main = find_model_set(store, "oracle", dataset, forget_set_id=forget_set_id)
    floor = find_model_set(store, "oracle", dataset, forget_set_id=forget_set_id, role="floor")
    if main is None or floor is None:
        raise ConfigError(
            f"forget set {forget_set_id} ({fs.name}) has no oracle models yet: build them first "
            f"(python -m core oracles --forget-set {forget_set_id})"
        )
    return main, floor


def evaluate(
    store: Store, forget_set_id: int, method: str, device: str | None = None, **options
) -> int:
    """Run ``method`` on the originals, score it against the oracles, store it; returns run id."""
    fn = get_method(method)
    fs, dataset = get_forget_set(store, forget_set_id)
    original_id = originals_for(store, dataset)
    oracle_id, floor_id = oracles_for(store, forget_set_id)
    t0 = time.perf_counter()
    data = load_dataset(dataset, "cpu")
    ctx = UnlearnContext(store, data, fs.indices, original_id, device, dict(options))
    result = fn(ctx)
    oracle, floor_group = load_margins(store, oracle_id), load_margins(store, floor_id)
    if not np.isfinite(result.margins).all():
        raise ConfigError(
            f"{method} diverged: its models produce non-finite outputs; nothing was stored"
        )
    splits = split_indices(data.n_train, data.n_val, fs.indices)
    k_values = klom(result.margins, oracle)  # (n_points,)
    f_values = klom(floor_group, oracle)
    gap = margin_gap(result.margins, oracle)
    split_of = np.empty(k_values.size, dtype=object)
    for name, idx in splits.items():
        split_of[idx] = name
    points = pd.DataFrame(
        {
            "point": np.arange(k_values.size),
            "split": split_of,
            "klom": k_values,
            "floor": f_values,
            "gap": gap,
        }
    )
    summ = _summaries(k_values, f_values, result.margins, floor_group, splits)
    config = {"method": method, "forget_set_id": forget_set_id, "options": options,
              "original_set_id": original_id, "oracle_set_id": oracle_id, "floor_set_id": floor_id}  # fmt: skip
    headline = {
        s: {"klom_p95": summ[(s, "klom")]["p95"], "floor_p95": summ[(s, "floor")]["p95"]}
        for s in SPLITS
    }
    with store.transaction() as con:
        run_id = con.execute("SELECT nextval('run_id_seq')").fetchone()[0]
        margins_file = store.save_array(
            f"evaluations/{run_id}.margins.npy", result.margins.astype(np.float32)
        )
        store.insert_run(
            con, "evaluation", json.dumps(config), None, str(device or "cpu"),
            time.perf_counter() - t0, json.dumps(headline), run_id=run_id,
        )  # fmt: skip
        con.execute(
            "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, forget_set_id, method, result.unlearned_set_id, original_id, oracle_id,
             floor_id, float(result.compute_cost), margins_file],
        )  # fmt: skip
        points.insert(0, "run_id", run_id)
        con.register("points_df", points)
        con.execute(
            "INSERT INTO klom_points SELECT run_id, point, split, klom, floor, gap FROM points_df"
        )
        for (split, metric), s in summ.items():
            con.execute(
                "INSERT INTO klom_summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, split, metric, s["p50"], s["p95"], s["p99"], s["mean"], s["count"], s["accuracy"]],
            )  # fmt: skip
    return run_id


def _summaries(k_values, f_values, unlearned, floor_group, splits) -> dict:
    out = {}
    for metric, values, margins in (
        ("klom", k_values, unlearned),
        ("floor", f_values, floor_group),
    ):
        stats = split_summary(values, splits)
        acc = split_accuracy(margins, splits)
        for split in SPLITS:
            out[(split, metric)] = {**stats[split], "accuracy": acc[split]}
    return out


def list_evaluations(store: Store, forget_set_id: int | None = None) -> pd.DataFrame:
    """Evaluations with their forget set and method, newest first."""
    where, args = ("WHERE e.forget_set_id = ?", [forget_set_id]) if forget_set_id else ("", [])
    return store.query_df(
        f"""SELECT e.run_id, e.forget_set_id, f.name AS forget_set, f.dataset, e.method,
                   e.compute_cost, r.created_at, r.wall_time_s
            FROM evaluations e JOIN runs r ON r.id = e.run_id
            JOIN forget_sets f ON f.id = e.forget_set_id {where} ORDER BY e.run_id DESC""",
        args,
    )


def evaluation(store: Store, run_id: int) -> dict:
    """The evaluation row, its summaries (DataFrame) and per-point values (DataFrame)."""
    row = store.query_df("SELECT * FROM evaluations WHERE run_id = ?", [run_id])
    if row.empty:
        raise NotFoundError(f"there is no evaluation with id {run_id}")
    summaries = store.query_df(
        "SELECT * EXCLUDE (run_id) FROM klom_summaries WHERE run_id = ? ORDER BY split, metric",
        [run_id],
    )
    points = store.query_df(
        "SELECT point, split, klom, floor, gap FROM klom_points WHERE run_id = ? ORDER BY point",
        [run_id],
    )
    return {"evaluation": row.iloc[0].to_dict(), "summaries": summaries, "points": points}


def evaluation_margins(store: Store, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The unlearned and the oracle models' margins of an evaluation, ``(n_models, n_points)``."""
    row = store.query_df(
        "SELECT margins_file, oracle_set_id FROM evaluations WHERE run_id = ?", [run_id]
    )
    if row.empty:
        raise NotFoundError(f"there is no evaluation with id {run_id}")
    return store.load_array(row["margins_file"][0]), load_margins(
        store, int(row["oracle_set_id"][0])
    )
