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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.common.config import check_float
from core.common.device import resolve_device
from core.common.errors import ConfigError, Diverged, NotFoundError
from core.common.threads import env_threads
from core.evaluation.audits import audit_run
from core.evaluation.divergence import find_diverged, record_diverged
from core.evaluation.klom import (
    SPLITS,
    klom,
    margin_gap,
    split_accuracy,
    split_indices,
    split_summary,
)
from core.forget.oracles import (  # noqa: F401  (re-exported: the oracles of an evaluation)
    DEFAULT_MODELS,
    build_oracles,
    ensure_model_set,
    original_choices,
    pair_sets,
)
from core.forget.store import get_forget_set
from core.store.db import Store
from core.unlearning import UnlearnContext, UnlearnResult, get_method, method_params, uses_budget
from core.unlearning.base import ARGMAX, POSITIVE_MARGIN_SHARE, chosen_datamodel
from core.zoo.build import delete_model_set, get_model_set, load_correct, load_margins
from core.zoo.data import load_dataset

# methods that read stored margins only: they run on imported originals (no weights) too
MARGINS_ONLY = ("do_nothing", "retrain")


def find_evaluation(
    store: Store,
    forget_set_id: int,
    method: str,
    sets: tuple[int, int, int],
    options: dict,
    datamodel_id: int | None = None,
) -> int | None:
    """The newest stored evaluation of this method, options and set triple, or None; with
    ``datamodel_id`` (a datamodel method's), only one made from that datamodel: a run of an
    older fit is not the answer once a newer one is stored."""
    df = store.query_df(  # evaluations stored before argmax accuracy (NULL) are not reused
        """SELECT e.run_id, r.config FROM evaluations e JOIN runs r ON r.id = e.run_id
           WHERE e.forget_set_id = ? AND e.method = ? AND e.original_set_id = ?
           AND e.oracle_set_id = ? AND e.floor_set_id = ? AND NOT EXISTS (SELECT 1 FROM
           klom_summaries s WHERE s.run_id = e.run_id AND s.accuracy IS NULL)
           ORDER BY e.run_id DESC""",
        [forget_set_id, method, *sets],
    )
    for row in df.itertuples():
        config = json.loads(row.config)
        if config.get("options", {}) != options:
            continue
        if datamodel_id is None or (config.get("info") or {}).get("datamodel_id") == datamodel_id:
            return int(row.run_id)
    return None


@dataclass
class Planned:
    """A grid point to run: the method's checked ``params`` (``budget`` among them when it
    trains), the device, the forget set, the (original, oracle, floor) sets and the run's
    config."""

    method: str
    params: dict
    budget: float | None
    device: str
    forget: np.ndarray
    forget_set_id: int
    dataset: str
    config: dict


def plan(
    store: Store,
    forget_set_id: int,
    method: str,
    device: str | None = None,
    *,
    original_set_id: int | None = None,
    recompute: bool = False,
    budget: float | None = None,
    executor=None,
    **options,
) -> int | Planned:
    """``evaluate``'s checks: the stored run of this grid point (an int; ``Diverged`` for a
    recorded divergence) unless ``recompute``, else what to run (``Planned``). ``executor``
    resolves the device (``core.zoo.executors``; default: this machine's)."""
    get_method(method)
    params = method_params(method, options)
    if not uses_budget(method):  # nothing to train (do_nothing, retrain, dm_direct)
        budget = None
    if budget is not None:
        check_float("budget", budget, 0.0, 10.0, lo_open=True)
        params = {"budget": float(budget), **params}
    # an unknown device is refused before any work
    dev = executor.device(device) if executor is not None else str(resolve_device(device))
    fs, dataset = get_forget_set(store, forget_set_id)
    sets = pair_sets(store, forget_set_id, original_set_id)
    original_id, oracle_id, floor_id = sets
    originals = get_model_set(store, original_id)
    if originals.margins_only and method not in MARGINS_ONLY:
        raise ConfigError(
            f"{method} needs the original models' weights, and original set {original_id} was "
            f"imported as margins only; on it run {' or '.join(MARGINS_ONLY)}, or import the "
            "unlearned models' margins (python -m core import-margins --kind unlearned)"
        )
    if not recompute:
        fn, dm_id = get_method(method), None
        if hasattr(fn, "datamodel_target"):  # reused only if made from the datamodel used now
            dm_id = chosen_datamodel(store, original_id, fn.datamodel_target)
        found = find_evaluation(store, forget_set_id, method, sets, params, dm_id)
        if found is not None:
            audit_run(store, found, strict=False)  # stored before audits: audited now
            return found
        hit = find_diverged(store, forget_set_id, method, sets, params)
        if hit is not None:
            raise Diverged(f"{method} diverged at this setting before (run {hit[0]}): {hit[1]}; "
                           "nothing to score (recompute to try again)", hit[0])  # fmt: skip
    config = {"method": method, "forget_set_id": forget_set_id, "options": params,
              "original_set_id": original_id, "oracle_set_id": oracle_id, "floor_set_id": floor_id}  # fmt: skip
    return Planned(method, params, budget, dev, fs.indices, forget_set_id, dataset, config)


def evaluate(
    store: Store,
    forget_set_id: int,
    method: str,
    device: str | None = None,
    *,
    original_set_id: int | None = None,
    recompute: bool = False,
    budget: float | None = None,
    set_seeds: dict[str, int] | None = None,
    **options,
) -> int:
    """Run ``method`` on the originals, score it against the oracles of the same recipe,
    store it; returns the run id. ``budget``: the share of retraining's example-gradients a
    method that trains may spend; ``options``: its hyperparameters (checked, defaults filled).
    A stored evaluation of the same method, budget, hyperparameters and sets is returned as is
    unless ``recompute``. A method that fails leaves nothing stored; one that diverges
    (non-finite outputs) is recorded as a ``diverged`` run (``core.evaluation.divergence``) and raises
    ``Diverged``. The run's membership audits (``core.evaluation.audits``) are stored after it (and added
    to a reused run stored before audits existed). ``set_seeds``: first seeds of the sets the
    method makes, ``{"unlearned": S, "heldout": S}`` (``UnlearnContext.set_seeds``; default
    free ranges). The run records the torch threads its method ran on (``threads``) and
    ``LAB_THREADS`` (``lab_threads``: the model sets' training threads; None: chosen per chunk)."""
    with store.held():  # its bookkeeping: one connection, not dozens (Store.held)
        p = plan(store, forget_set_id, method, device, original_set_id=original_set_id,
                 recompute=recompute, budget=budget, **options)  # fmt: skip
    if isinstance(p, int):
        return p
    t0 = time.perf_counter()
    data = load_dataset(p.dataset, "cpu")
    ctx = UnlearnContext(store, data, p.forget, p.config["original_set_id"], p.device,
                         dict(p.params), budget=float(p.budget or 0.0),
                         forget_set_id=forget_set_id, set_seeds=dict(set_seeds or {}))  # fmt: skip
    p.config.update(threads=torch.get_num_threads(), lab_threads=env_threads())
    try:
        result = get_method(method)(ctx, **{k: v for k, v in p.params.items() if k != "budget"})
        if not np.isfinite(result.margins).all():
            raise Diverged("its models produce non-finite outputs")
    except BaseException as err:
        if ctx.unlearned_set_id is not None:  # the method's half-made set goes with it
            delete_model_set(store, ctx.unlearned_set_id)
        if not isinstance(err, Diverged):
            raise
        raise record_divergence(store, p, time.perf_counter() - t0, str(err)) from None
    with store.held():
        return store_scored(
            store, p.config, result, forget_set_id, method, (data.n_train, data.n_val),
            p.forget, p.device, t0,
        )  # fmt: skip


def record_divergence(store: Store, p: Planned, wall_s: float, reason: str) -> Diverged:
    """Record the point as a ``diverged`` run; the ``Diverged`` to raise, naming the run."""
    run = record_diverged(store, p.config, p.device, wall_s, reason)
    return Diverged(f"{p.method} diverged: {reason}; recorded as run {run}, no KLoM stored", run)


def store_scored(
    store: Store,
    config: dict,
    result: UnlearnResult,
    forget_set_id: int,
    method: str,
    sizes: tuple[int, int],
    forget: np.ndarray,
    device: str,
    t0: float,
) -> int:
    """Score ``result``'s margins against the evaluation's oracles and store the run in one
    transaction (run, evaluation, points, summaries), then its audits; returns the run id.

    ``config`` names the sets (``original_set_id``, ``oracle_set_id``, ``floor_set_id``);
    ``sizes`` is ``(n_train, n_val)``. A result without correctness (margins imported without
    logits: ``result.correct`` None) and a floor group without it get NaN accuracies: unknown,
    not missing (NULL marks evaluations stored before argmax accuracy, which are recomputed).
    """
    oracle_id, floor_id = config["oracle_set_id"], config["floor_set_id"]
    oracle, floor_group = load_margins(store, oracle_id), load_margins(store, floor_id)
    splits = split_indices(*sizes, forget)
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
    summ = _summaries(k_values, f_values, result.correct, load_correct(store, floor_id), splits)
    config.update(consumed_cost=result.consumed_cost, info=result.info)
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
            con, "evaluation", json.dumps(config), None, device,
            time.perf_counter() - t0, json.dumps(headline), run_id=run_id,
        )  # fmt: skip
        con.execute(
            "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, forget_set_id, method, result.unlearned_set_id, config["original_set_id"],
             oracle_id, floor_id, float(result.compute_cost), margins_file],
        )  # fmt: skip
        points.insert(0, "run_id", run_id)
        con.register("points_df", points)
        con.execute(
            "INSERT INTO klom_points SELECT run_id, point, split, klom, floor, gap FROM points_df"
        )
        for (split, metric), s in summ.items():
            con.execute(
                """INSERT INTO klom_summaries (run_id, split, metric, p50, p95, p99, mean, count,
                   accuracy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [run_id, split, metric, s["p50"], s["p95"], s["p99"], s["mean"], s["count"], s["accuracy"]],
            )  # fmt: skip
    audit_run(store, run_id, strict=False)  # the membership audits, from the arrays just stored
    return run_id


def _summaries(k_values, f_values, unlearned_correct, floor_correct, splits) -> dict:
    """Per split and metric (klom | floor): KLoM percentiles and the argmax accuracy of the
    scored models (the unlearned ones for klom, the second oracle group for floor)."""
    out = {}
    for metric, values, correct in (
        ("klom", k_values, unlearned_correct),
        ("floor", f_values, floor_correct),
    ):
        stats = split_summary(values, splits)
        acc = (
            split_accuracy(correct, splits)
            if correct is not None
            else dict.fromkeys(SPLITS, np.nan)
        )
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


def accuracy_kind(method: str, config: dict) -> str:
    """What a run's stored (klom-side) accuracy is: ``argmax`` (DESIGN.md "Accuracy": the share
    of (model, point) pairs whose argmax is the label) or ``positive-margin share`` (the share
    with margin > 0: Datamodel-Direct with a margin datamodel predicts margins only). Margin
    ``z_y − logsumexp_{j≠y} z_j > 0`` implies argmax = y, not conversely: a lower bound of argmax
    accuracy. Read from the run's ``info``; runs stored before it was recorded are derived."""
    info = config.get("info") or {}
    if "accuracy_kind" in info:
        return str(info["accuracy_kind"])
    if method == "dm_direct" and info.get("datamodel_target") == "margin":
        return POSITIVE_MARGIN_SHARE
    return ARGMAX


def evaluation(store: Store, run_id: int) -> dict:
    """The evaluation row, its summaries (DataFrame: with ``accuracy_kind`` per row, the
    floor's always argmax) and per-point values (DataFrame)."""
    row = store.query_df("SELECT * FROM evaluations WHERE run_id = ?", [run_id])
    if row.empty:
        raise NotFoundError(f"there is no evaluation with id {run_id}")
    summaries = store.query_df(
        "SELECT * EXCLUDE (run_id) FROM klom_summaries WHERE run_id = ? ORDER BY split, metric",
        [run_id],
    )
    kind = accuracy_kind(str(row["method"][0]), store.run(run_id)["config"])
    summaries["accuracy_kind"] = np.where(summaries["metric"] == "klom", kind, ARGMAX)
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
