"""Model sets: N models of one kind, trained in chunks and kept in the store.

Kinds: ``original`` (trained on the whole train split), ``oracle`` (train minus a forget set;
role ``main`` or ``floor``, the independent second group for the noise floor), ``subset``
(each model on its own random ``fraction`` of the train split, for datamodels) and, later,
``unlearned``. Model i of a set is trained from seed ``seed + i``.

A build is resumable: models are trained ``chunk_size`` at a time; each finished chunk writes
its weights, margins and masks as files and then one row in ``model_chunks`` in a single
transaction. A rerun skips the chunks that have a row. Margins are on every point of the
global point space: train points ``0 … n_train−1``, then val points ``n_train …``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import code_version
from .catalog import list_model_sets  # noqa: F401  (re-exported: listings live in catalog)
from .config import check_float, check_int
from .data import Dataset, load_dataset
from .device import resolve_device
from .ensemble import Ensemble, train_ensemble
from .errors import ConfigError, NotFoundError
from .recipe import TrainConfig, random_subset_masks
from .store import Store

KINDS = ("original", "oracle", "subset", "unlearned")
# Progress callbacks take (fraction done in [0, 1], a short message).
Progress = Callable[[float, str], None]


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

    @property
    def n_chunks(self) -> int:
        return -(-self.n_models // self.chunk_size)

    def chunk_range(self, chunk: int) -> range:
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.n_models))


def all_points(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Train then val points as one batch: ``x (n_train + n_val, ...)``, ``y``."""
    return torch.cat([data.x_train, data.x_val]), torch.cat([data.y_train, data.y_val])


def create_model_set(
    store: Store,
    kind: str,
    train: TrainConfig,
    n_models: int,
    *,
    seed: int | None = None,
    fraction: float | None = None,
    forget_indices: np.ndarray | None = None,
    forget_set_id: int | None = None,
    role: str = "main",
    chunk_size: int | None = None,
    device: str | None = None,
    data: Dataset | None = None,
) -> int:
    """Validate everything, then insert the set's row (status ``building``); returns its id.

    Nothing is written when the input is bad: unknown kind, models < 1, a fraction outside
    (0, 1) for subsets, an oracle without a forget set, a dataset that cannot be loaded.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")
    check_int("models", n_models, 1, 100_000)
    if kind == "subset":
        if fraction is None:
            raise ConfigError("a subset model set needs --fraction in (0, 1)")
        check_float("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    elif fraction is not None:
        raise ConfigError("--fraction only applies to --kind subset")
    if kind in ("oracle", "unlearned") and forget_set_id is None:
        raise ConfigError(f"a {kind} model set needs a forget set")
    dev = str(resolve_device(device))
    data = data or load_dataset(train.dataset, "cpu")  # fails early on a missing dataset
    chunk_size = chunk_size or min(n_models, train.model_chunk)
    check_int("chunk size", chunk_size, 1)
    with store.transaction() as con:
        set_id = con.execute("SELECT nextval('model_set_id_seq')").fetchone()[0]
        con.execute(
            """INSERT INTO model_sets (id, kind, role, dataset, arch, n_models, chunk_size, seed,
               fraction, forget_set_id, train_config, data_meta, code_version, device, status)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'building')""",
            [
                set_id, kind, role, train.dataset, train.arch, n_models, chunk_size,
                set_id * 100_000 if seed is None else seed, fraction, forget_set_id,
                train.to_json(), json.dumps(data.meta()), code_version(), dev,
            ],
        )  # fmt: skip
    return int(set_id)


def get_model_set(store: Store, set_id: int) -> ModelSet:
    with store.connect(read_only=True) as con:
        row = con.execute(
            """SELECT id, kind, role, dataset, arch, n_models, chunk_size, seed, fraction,
               forget_set_id, train_config, status, device FROM model_sets WHERE id = ?""",
            [set_id],
        ).fetchone()
    if row is None:
        raise NotFoundError(f"there is no model set with id {set_id}")
    *head, train_json, status, device = row
    return ModelSet(
        *head, TrainConfig.from_dict(json.loads(train_json)), status=status, device=device
    )


def masks_for(ms: ModelSet, n_train: int, forget: np.ndarray | None) -> np.ndarray:
    """The training masks of every model of the set, ``(n_models, n_train)`` bool."""
    if ms.kind == "subset":
        return random_subset_masks(ms.n_models, n_train, float(ms.fraction), ms.seed)
    mask = np.ones(n_train, dtype=bool)
    if ms.kind == "oracle":
        mask[forget] = False
    return np.broadcast_to(mask, (ms.n_models, n_train)).copy()


def done_chunks(store: Store, set_id: int) -> set[int]:
    df = store.query_df("SELECT chunk FROM model_chunks WHERE set_id = ?", [set_id])
    return set(df["chunk"].tolist())


def build_model_set(
    store: Store,
    set_id: int,
    *,
    forget: np.ndarray | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ModelSet:
    """Train every chunk of the set that is not stored yet; resumable and idempotent.

    ``forget``: train indices left out by an oracle set (read from its forget set by callers).
    """
    ms = get_model_set(store, set_id)
    dev = resolve_device(device or ms.device)
    data = load_dataset(ms.dataset, dev)
    if ms.kind == "oracle" and forget is None:
        raise ConfigError("building an oracle set needs its forget set's indices")
    masks = masks_for(ms, data.n_train, forget)
    x_all, y_all = all_points(data)
    done = done_chunks(store, set_id)
    todo = [c for c in range(ms.n_chunks) if c not in done]
    n_done = sum(len(ms.chunk_range(c)) for c in done)
    for chunk in todo:
        idx = ms.chunk_range(chunk)
        base = n_done / ms.n_models

        def tick(step: int, total: int, base: float = base, idx: range = idx) -> None:
            if progress is not None:
                frac = base + (step / max(total, 1)) * len(idx) / ms.n_models
                progress(frac, f"set {set_id}: training models {idx.start}–{idx.stop - 1}")

        t0 = time.perf_counter()
        ens = train_ensemble(
            data, masks[idx.start : idx.stop], [ms.seed + i for i in idx], ms.train,
            device=dev, progress=tick, should_stop=should_stop,
        )  # fmt: skip
        margins = ens.margins(x_all, y_all, chunk=ms.train.eval_chunk)  # (k, n_train + n_val)
        _commit_chunk(store, ms, chunk, ens, margins, masks[idx.start : idx.stop], data, dev, t0)
        n_done += len(idx)
    if progress is not None:
        progress(1.0, f"set {set_id}: {ms.n_models} models ready")
    with store.transaction() as con:
        con.execute("UPDATE model_sets SET status = 'complete' WHERE id = ?", [set_id])
    return get_model_set(store, set_id)


def _commit_chunk(store, ms, chunk, ens, margins, masks, data, dev, t0) -> None:
    """Write the chunk's files, then its row: the row exists only if the files are complete."""
    folder = f"model_sets/{ms.id}"
    weights = store.save_tensors(f"{folder}/chunk{chunk:05d}.weights.pt", ens.state_dict())
    marg = store.save_array(f"{folder}/chunk{chunk:05d}.margins.npy", margins.astype(np.float32))
    mask = store.save_array(f"{folder}/chunk{chunk:05d}.masks.npy", masks)
    train_acc = float((margins[:, : data.n_train] > 0).mean())
    val_acc = float((margins[:, data.n_train :] > 0).mean())
    with store.transaction() as con:
        con.execute(
            """INSERT OR REPLACE INTO model_chunks (set_id, chunk, first_model, n_models,
               weights_file, margins_file, masks_file, train_acc, val_acc, wall_time_s, device)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                ms.id, chunk, ms.chunk_range(chunk).start, len(margins), weights, marg, mask,
                train_acc, val_acc, time.perf_counter() - t0, str(dev),
            ],
        )  # fmt: skip


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


def load_ensemble(store: Store, set_id: int, device: str | None = None) -> Ensemble:
    """The stacked models of a complete set, on ``device``."""
    ms = get_model_set(store, set_id)
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


def find_model_set(
    store: Store,
    kind: str,
    dataset: str,
    *,
    forget_set_id: int | None = None,
    role: str = "main",
    status: str = "complete",
) -> int | None:
    """The newest set of this kind, forget set, role and status (complete | building), or None."""
    df = store.query_df(
        """SELECT id FROM model_sets WHERE kind = ? AND dataset = ? AND role = ? AND status = ?
           AND forget_set_id IS NOT DISTINCT FROM ? ORDER BY id DESC LIMIT 1""",
        [kind, dataset, role, status, forget_set_id],
    )
    return None if df.empty else int(df["id"][0])


def delete_model_set(store: Store, set_id: int) -> None:
    """Remove a set's rows (one transaction), then its files."""
    get_model_set(store, set_id)
    with store.transaction() as con:
        con.execute("DELETE FROM model_chunks WHERE set_id = ?", [set_id])
        con.execute("DELETE FROM model_sets WHERE id = ?", [set_id])
    store.remove_files(f"model_sets/{set_id}")
