"""Stored datamodels: rows of ``datamodels`` and their weight files, and what is read from them.

A datamodel's weights ``W`` are ``(n_targets, n_train)`` for a ``margin`` datamodel and
``(n_targets, K, n_train)`` for a ``logits`` one (targets: every point, train then val, in the
global point order); ``W[t, j]`` is the predicted change of target t's output when train point j
joins the training set. Removing a forget set F from a model's training set is predicted to
shift target t's output by ``Δ_t = −Σ_{j∈F} W[t, j]`` (Datamodel-Direct).

Light to import: NumPy and pandas only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.attribution.defaults import DEFAULT_MODELS, WEAK_LDS, few_models_note, is_weak, lds_note  # noqa: F401
from core.common.errors import ConfigError, NotFoundError
from core.store.db import Store

COLUMNS = (
    "id, dataset, subset_set_id, original_set_id, recipe_id, n_models, n_fit, n_heldout, "
    "fraction, kind, target, lam, n_train, n_targets, num_classes, lds_train, lds_val, "
    "lds_curve, weights_file, bias_file, lds_file, config"
)


@dataclass(frozen=True)
class Datamodel:
    """One row of ``datamodels`` (``lds_curve``: ``[{"m", "lds_train", "lds_val"}, …]``)."""

    id: int
    dataset: str
    subset_set_id: int
    original_set_id: int | None
    recipe_id: str
    n_models: int
    n_fit: int
    n_heldout: int
    fraction: float
    kind: str
    target: str
    lam: float
    n_train: int
    n_targets: int
    num_classes: int
    lds_train: float | None
    lds_val: float | None
    lds_curve: list
    weights_file: str
    bias_file: str
    lds_file: str
    config: dict


def _row(values) -> Datamodel:
    v = list(values)
    v[17] = json.loads(v[17]) if isinstance(v[17], str) else v[17]
    v[21] = json.loads(v[21]) if isinstance(v[21], str) else v[21]
    return Datamodel(*v)


def get_datamodel(store: Store, datamodel_id: int) -> Datamodel:
    with store.connect(read_only=True) as con:
        row = con.execute(
            f"SELECT {COLUMNS} FROM datamodels WHERE id = ?", [datamodel_id]
        ).fetchone()
    if row is None:
        raise NotFoundError(f"there is no datamodel with id {datamodel_id}")
    return _row(row)


def list_datamodels(store: Store) -> pd.DataFrame:
    """Every datamodel without its weights, newest first."""
    return store.query_df(
        """SELECT id, dataset, kind, target, n_models, n_fit, n_heldout, fraction, lam,
                  lds_train, lds_val, subset_set_id, original_set_id, recipe_id, device,
                  wall_time_s, created_at FROM datamodels ORDER BY id DESC"""
    )


def find_datamodel(
    store: Store, recipe_id: str, target: str | None = None, kind: str | None = None
) -> int | None:
    """The newest datamodel of this recipe (and target and kind, when given), or None."""
    sql, args = "SELECT id FROM datamodels WHERE recipe_id = ?", [recipe_id]
    for col, value in (("target", target), ("kind", kind)):
        if value is not None:
            sql += f" AND {col} = ?"
            args.append(value)
    df = store.query_df(sql + " ORDER BY id DESC LIMIT 1", args)
    return None if df.empty else int(df["id"][0])


def datamodel_status(
    store: Store, original_set_id: int, target: str = "margin"
) -> tuple[int | None, float | None]:
    """``(id, lds_val)`` of the newest ``target`` datamodel of the originals' recipe, or
    ``(None, None)`` when there is none (``lds_val`` None when no val target had a score).
    ``is_weak(lds_val)`` says whether it is worth reading; ``lds_note`` words it."""
    from core.zoo.model_sets import get_model_set

    found = find_datamodel(store, get_model_set(store, original_set_id).recipe_id, target)
    if found is None:
        return None, None
    lds = get_datamodel(store, found).lds_val
    return found, None if lds is None or not np.isfinite(lds) else float(lds)


def datamodel_for(
    store: Store, original_set_id: int, target: str | None = None, kind: str | None = None
) -> Datamodel:
    """The newest datamodel of the originals' recipe (of ``target`` and ``kind``, when given);
    a ``ConfigError`` naming the command that fits one when there is none."""
    from core.zoo.model_sets import get_model_set

    orig = get_model_set(store, original_set_id)
    found = find_datamodel(store, orig.recipe_id, target, kind)
    if found is None:
        other = store.query_df(
            "SELECT id, recipe_id, target FROM datamodels WHERE dataset = ? ORDER BY id DESC",
            [orig.dataset],
        )
        theirs = (
            f" (stored ones are of other recipes or outputs: "
            f"{', '.join(f'{r.id}: {r.recipe_id}/{r.target}' for r in other.itertuples())})"
            if len(other)
            else ""
        )
        flag = f" --target {target}" if target else ""
        raise ConfigError(
            f"there is no {target + ' ' if target else ''}datamodel for the recipe of original "
            f"set {orig.id} ({orig.recipe_id}){theirs}; fit one first: python -m core "
            f"datamodels fit --dataset {orig.dataset} --originals {orig.id}{flag}"
        )
    return get_datamodel(store, found)


def load_weights(store: Store, datamodel_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``W`` ``(n_targets, n_train)`` | ``(n_targets, K, n_train)`` float32 and the bias
    ``(n_targets,)`` | ``(n_targets, K)``."""
    dm = get_datamodel(store, datamodel_id)
    w, b = store.load_array(dm.weights_file), store.load_array(dm.bias_file)
    if w.shape[0] != dm.n_targets or w.shape[-1] != dm.n_train:
        raise ConfigError(f"the weights file of datamodel {dm.id} has shape {w.shape}")
    return w, b


def load_lds(store: Store, datamodel_id: int) -> np.ndarray:
    """Each target's LDS over the held-out models, ``(n_targets,)`` (train points, then val;
    NaN where the actual or predicted outputs were constant)."""
    return store.load_array(get_datamodel(store, datamodel_id).lds_file)


def margin_weights(store: Store, datamodel_id: int) -> np.ndarray:
    """Margin weights ``(n_targets, n_train)``; a ``logits`` datamodel is refused (its
    margins are not linear in the mask)."""
    dm = get_datamodel(store, datamodel_id)
    if dm.target != "margin":
        raise ConfigError(
            f"datamodel {dm.id} predicts logits; this needs a margin datamodel "
            f"(python -m core datamodels fit --dataset {dm.dataset} --target margin)"
        )
    return load_weights(store, datamodel_id)[0]


def forget_shift(weights: np.ndarray, forget) -> np.ndarray:
    """Datamodel-Direct's predicted change of every target's output when ``forget`` is left
    out: ``Δ[t] = −Σ_{j∈F} W[t, …, j]`` → ``(n_targets,)`` or ``(n_targets, K)``."""
    f = np.asarray(forget, dtype=np.int64)
    if f.size == 0 or f.min() < 0 or f.max() >= weights.shape[-1]:
        raise ConfigError(f"forget indices must lie in 0..{weights.shape[-1] - 1}")
    return -weights[..., f].sum(-1, dtype=np.float64)


def top_influencers(store: Store, datamodel_id: int, point: int, k: int = 10) -> pd.DataFrame:
    """The ``k`` train points with the largest |W[point, j]| for a margin datamodel: columns
    ``source`` (train index), ``weight`` (signed: > 0 helps the point's margin)."""
    w = margin_weights(store, datamodel_id)
    if not 0 <= point < w.shape[0]:
        raise ConfigError(f"point must lie in 0..{w.shape[0] - 1}")
    row = w[point]
    order = np.argsort(-np.abs(row), kind="stable")[:k]
    return pd.DataFrame({"source": order, "weight": row[order]})


def self_influence(store: Store, datamodel_id: int) -> np.ndarray:
    """``W[j, j]`` for every train point j: how much a point's own presence raises its
    margin (large: memorized), ``(n_train,)``."""
    w = margin_weights(store, datamodel_id)
    n = w.shape[1]
    return w[np.arange(n), np.arange(n)].copy()


def moved_by_forget_set(store: Store, datamodel_id: int, forget, k: int = 20) -> pd.DataFrame:
    """The ``k`` points (train or val, global index) whose margin the forget set moves most,
    by the predicted ``Δ = −Σ_{j∈F} W[t, j]``: columns ``point``, ``shift``."""
    shift = forget_shift(margin_weights(store, datamodel_id), forget)
    order = np.argsort(-np.abs(shift), kind="stable")[:k]
    return pd.DataFrame({"point": order, "shift": shift[order]})


def train_matrix(store: Store, datamodel_id: int) -> np.ndarray:
    """The train × train block of a margin datamodel, ``(n_train, n_train)``: row t is train
    point t's datamodel (its embedding in datamodel space)."""
    w = margin_weights(store, datamodel_id)
    return w[: w.shape[1]]


def delete_datamodel(store: Store, datamodel_id: int) -> None:
    """Remove a datamodel's row, then its weight files (its subset models stay)."""
    dm = get_datamodel(store, datamodel_id)
    with store.transaction() as con:
        con.execute("DELETE FROM datamodels WHERE id = ?", [datamodel_id])
    for f in (dm.weights_file, dm.bias_file, dm.lds_file):
        store.file_path(f).unlink(missing_ok=True)
