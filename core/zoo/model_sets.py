"""Stored model sets: read back, find, list and delete (rows in ``model_sets`` and
``model_chunks`` plus the array files they name). Building them is ``core.zoo.build``'s job.

Light to import (no torch at module level): listing commands use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.common.errors import ConfigError, NotFoundError
from core.store.db import Store
from core.zoo.recipe import TrainConfig


@dataclass(frozen=True)
class ModelSet:
    """One row of ``model_sets``."""

    id: int
    kind: str
    role: str
    dataset: str
    arch: str
    n_models: int
    chunk_size: int
    seed: int
    fraction: float | None
    forget_set_id: int | None
    train: TrainConfig
    status: str
    device: str
    recipe_id: str = ""
    base_set_id: int | None = None
    source: dict | None = (
        None  # imported margins (``core.interchange.imports``): file, sha-256, rows
    )

    @property
    def imported(self) -> bool:
        """True for a set imported from files (margins, and maybe weights: ``margins_only``)."""
        return self.source is not None

    @property
    def margins_only(self) -> bool:
        """True for a set imported without weights: no model outputs, no correctness."""
        return self.source is not None and not self.source.get("weights")

    def recipe_text(self) -> str:
        """One line for messages: the recipe id and what it stands for, and the size."""
        what = (
            f"margins imported from {self.source.get('file', '?')}"
            if self.source is not None
            else self.train.describe()
        )
        return f"{self.recipe_id}: {what}, {self.n_models} models"

    @property
    def n_chunks(self) -> int:
        return -(-self.n_models // self.chunk_size)

    def chunk_range(self, chunk: int) -> range:
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.n_models))


def get_model_set(store: Store, set_id: int) -> ModelSet:
    with store.connect(read_only=True) as con:
        row = con.execute(
            """SELECT id, kind, role, dataset, arch, n_models, chunk_size, seed, fraction,
               forget_set_id, train_config, status, device, recipe_id, base_set_id, source
               FROM model_sets WHERE id = ?""",
            [set_id],
        ).fetchone()
    if row is None:
        raise NotFoundError(f"there is no model set with id {set_id}")
    *head, train_json, status, device, recipe_id, base, source = row
    return ModelSet(
        *head, TrainConfig.from_dict(json.loads(train_json)), status=status, device=device,
        recipe_id=recipe_id or "", base_set_id=None if base is None else int(base),
        source=None if source is None else json.loads(source),
    )  # fmt: skip


def _no_weights(ms: ModelSet, what: str) -> ConfigError:
    return ConfigError(
        f"model set {ms.id} holds margins imported from {ms.source.get('file', 'a file')} and "
        f"no weights, so {what} cannot be computed from it; only margins-only methods "
        "(do_nothing, imported unlearned margins) and KLoM, the audits and Compare work on it"
    )


def done_chunks(store: Store, set_id: int) -> set[int]:
    df = store.query_df("SELECT chunk FROM model_chunks WHERE set_id = ?", [set_id])
    return set(df["chunk"].tolist())


def remove_unnamed_files(store: Store, set_id: int) -> list[str]:
    """Delete files in the set's folder that no ``model_chunks`` row names; returns them."""
    folder = store.file_path(f"model_sets/{set_id}")
    if not folder.is_dir():
        return []
    rows = store.query_df(
        "SELECT weights_file, margins_file, masks_file, correct_file FROM model_chunks "
        "WHERE set_id = ?",
        [set_id],
    )
    named = {str(v) for v in rows.to_numpy().ravel() if isinstance(v, str)}
    gone = []
    for path in folder.iterdir():
        rel = f"model_sets/{set_id}/{path.name}"
        if path.is_file() and rel not in named:
            path.unlink(missing_ok=True)
            gone.append(rel)
    return gone


def _chunk_rows(store: Store, set_id: int, complete: bool = True) -> pd.DataFrame:
    ms = get_model_set(store, set_id)
    rows = store.query_df("SELECT * FROM model_chunks WHERE set_id = ? ORDER BY chunk", [set_id])
    if complete and len(rows) < ms.n_chunks:
        raise ConfigError(
            f"model set {set_id} is not complete ({len(rows)} of {ms.n_chunks} chunks); "
            "build it first (it resumes where it stopped)"
        )
    return rows


def load_margins(store: Store, set_id: int) -> np.ndarray:
    """All margins of a complete set, ``(n_models, n_train + n_val)`` float32."""
    rows = _chunk_rows(store, set_id)
    return np.concatenate([store.load_array(f) for f in rows["margins_file"]])


def load_masks(store: Store, set_id: int) -> np.ndarray:
    """Training masks of a complete set, ``(n_models, n_train)`` bool."""
    rows = _chunk_rows(store, set_id)
    return np.concatenate([store.load_array(f) for f in rows["masks_file"]])


def load_correct(store: Store, set_id: int) -> np.ndarray | None:
    """Argmax correctness of a complete set, ``(n_models, n_train + n_val)`` bool; None for an
    imported set (margins do not determine the argmax: unknown, not guessed).

    Chunks stored before correctness was kept are evaluated once more from their weights.
    """
    from core.zoo.data import load_dataset
    from core.zoo.ensemble import Ensemble

    if get_model_set(store, set_id).margins_only:
        return None
    rows = _chunk_rows(store, set_id)
    parts, data = [], None
    for r in rows.itertuples():
        if isinstance(r.correct_file, str):
            parts.append(store.load_array(r.correct_file))
            continue
        ms = get_model_set(store, set_id)
        data = data or load_dataset(ms.dataset, "cpu")
        meta = data.meta()
        ens = Ensemble.from_state(
            ms.arch,
            store.load_tensors(r.weights_file),
            meta["input_shape"],
            meta["num_classes"],
            "cpu",
        )
        parts.append(ens.margins_and_correct(*data.all_points(), chunk=ms.train.eval_chunk)[1])
    return np.concatenate(parts)


def load_ensemble(store: Store, set_id: int, device: str | None = None):
    """The stacked models of a complete set, on ``device``."""
    from core.common.device import resolve_device
    from core.zoo.ensemble import Ensemble

    ms = get_model_set(store, set_id)
    if ms.margins_only:
        raise _no_weights(ms, "the models' outputs")
    rows = _chunk_rows(store, set_id)
    meta = json.loads(
        store.query_df("SELECT data_meta FROM model_sets WHERE id = ?", [set_id])["data_meta"][0]
    )
    dev = resolve_device(device)
    parts = [
        Ensemble.from_state(
            ms.arch, store.load_tensors(f), meta["input_shape"], meta["num_classes"], dev
        )
        for f in rows["weights_file"]
    ]
    return parts[0] if len(parts) == 1 else Ensemble.concat(parts)


def list_model_sets(store: Store) -> pd.DataFrame:
    """Every set with its progress, argmax accuracies and recipe, newest first."""
    return store.query_df(
        """SELECT s.id, s.kind, s.role, s.dataset, s.arch, s.n_models, s.forget_set_id,
                  s.fraction, s.status,
                  coalesce(sum(c.n_models), 0)::INTEGER AS models_done,
                  sum(c.val_acc * c.n_models) / nullif(sum(c.n_models), 0) AS mean_val_acc,
                  sum(c.train_acc * c.n_models) / nullif(sum(c.n_models), 0) AS mean_train_acc,
                  s.device, coalesce(sum(c.wall_time_s), 0) AS wall_time_s, s.created_at,
                  s.recipe_id, s.base_set_id, s.seed, s.seed + s.n_models - 1 AS last_seed,
                  s.source IS NOT NULL AS imported
           FROM model_sets s LEFT JOIN model_chunks c ON c.set_id = s.id
           GROUP BY ALL ORDER BY s.id DESC"""
    )


def find_model_set(
    store: Store,
    kind: str,
    dataset: str,
    *,
    forget_set_id: int | None = None,
    role: str = "main",
    status: str = "complete",
    recipe_id: str | None = None,
    n_models: int | None = None,
    base_set_id: int | None = None,
    fraction: float | None = None,
    seed: int | None = None,
) -> int | None:
    """The newest set of this kind, forget set, role and status (complete | building), or None.

    ``recipe_id``, ``n_models``, ``base_set_id``, ``fraction`` and ``seed`` (the first model's
    seed), when given, must match too.
    """
    sql = """SELECT id FROM model_sets WHERE kind = ? AND dataset = ? AND role = ? AND status = ?
             AND forget_set_id IS NOT DISTINCT FROM ?"""
    args: list = [kind, dataset, role, status, forget_set_id]
    for col, value in (("recipe_id", recipe_id), ("n_models", n_models),
                       ("base_set_id", base_set_id), ("fraction", fraction), ("seed", seed)):  # fmt: skip
        if value is not None:
            sql += f" AND {col} = ?"
            args.append(value)
    df = store.query_df(sql + " ORDER BY id DESC LIMIT 1", args)
    return None if df.empty else int(df["id"][0])


def originals_for(store: Store, dataset: str, original_set_id: int | None = None) -> int:
    """``original_set_id`` checked (a complete set of originals of ``dataset``), or the newest
    complete set of originals for ``dataset``; a clear error when there is none."""
    if original_set_id is not None:
        ms = get_model_set(store, original_set_id)
        if ms.kind != "original" or ms.dataset != dataset:
            raise ConfigError(
                f"model set {original_set_id} holds {ms.kind} models of {ms.dataset}, not "
                f"originals of {dataset}"
            )
        if ms.status != "complete":
            raise ConfigError(
                f"original set {original_set_id} is unfinished; finish it first (python -m core "
                "train resumes it)"
            )
        return original_set_id
    df = store.query_df(  # by default the newest trained originals: imported ones have no weights
        """SELECT id FROM model_sets WHERE kind = 'original' AND dataset = ? AND role = 'main'
           AND status = 'complete' AND source IS NULL ORDER BY id DESC LIMIT 1""",
        [dataset],
    )
    set_id = None if df.empty else int(df["id"][0])
    if set_id is None:
        raise ConfigError(
            f"there are no original models for {dataset} yet: build them first "
            f"(python -m core train --dataset {dataset}, or the Models page)"
        )
    return set_id


def evaluations_using(store: Store, set_id: int) -> list[int]:
    """Run ids of the evaluations that read this set (as originals, oracles, floor or
    unlearned models)."""
    df = store.query_df(
        """SELECT run_id FROM evaluations WHERE ? IN (original_set_id, oracle_set_id,
           floor_set_id, coalesce(unlearned_set_id, -1)) ORDER BY run_id""",
        [set_id],
    )
    return [int(r) for r in df["run_id"]]


def delete_model_set(store: Store, set_id: int, cascade: bool = False) -> list[int]:
    """Remove a set's rows (one transaction), then its files; returns deleted evaluations.

    A set that evaluations use is refused unless ``cascade``, which deletes those
    evaluations (rows and margins files) with it.
    """
    get_model_set(store, set_id)
    runs = evaluations_using(store, set_id)
    if runs and not cascade:
        listed = ", ".join(map(str, runs[:10])) + (" …" if len(runs) > 10 else "")
        raise ConfigError(
            f"model set {set_id} is used by {len(runs)} evaluation(s) ({listed}); delete those "
            "first, or ask for a cascade (--cascade) to delete them with it"
        )
    with store.transaction() as con:
        if runs:
            delete_runs_in(con, runs)
        con.execute("DELETE FROM model_chunks WHERE set_id = ?", [set_id])
        con.execute("DELETE FROM model_sets WHERE id = ?", [set_id])
    store.remove_files(f"model_sets/{set_id}")
    for r in runs:
        store.file_path(f"evaluations/{r}.margins.npy").unlink(missing_ok=True)
    return runs


def delete_runs_in(con, runs: list[int]) -> None:
    """Delete evaluation runs' rows (points, summaries, audits, evaluation, run) in the caller's
    transaction; their margins files are the caller's to remove afterwards."""
    tables = ("klom_points", "klom_summaries", "audit_points", "audit_summaries", "audit_models",
              "audits", "evaluations")  # fmt: skip
    for table in tables:
        con.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT unnest(?::BIGINT[]))", [runs])
    con.execute("DELETE FROM runs WHERE id IN (SELECT unnest(?::BIGINT[]))", [runs])
