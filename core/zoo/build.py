"""Model sets: N models of one kind, trained in chunks and kept in the store.

Kinds: ``original`` (trained on the whole train split), ``oracle`` (train minus a forget set;
role ``main`` or ``floor``, the independent second group for the noise floor), ``subset``
(each model on its own random ``fraction`` of the train split, for datamodels) and, later,
``unlearned``. Model i of a set is trained from seed ``seed + i``; the seed ranges
``[seed, seed + n_models)`` of two sets never overlap (checked when a set is created), so no
two sets share a model seed. Every set carries its recipe's identity (``recipe_id``: dataset,
architecture and training config, see ``TrainConfig.recipe_id``); oracle and unlearned sets
also name the originals they pair with (``base_set_id``).

A build is resumable: models are trained ``chunk_size`` at a time; each finished chunk writes
its weights, margins and masks as files and then one row in ``model_chunks`` in a single
transaction (retried with backoff while another process holds the database; its files are
removed if it cannot be recorded). A rerun skips the chunks that have a row. A chunk is a
pure task (``core.zoo.tasks``) that an executor runs here or on a Ray cluster
(``core.zoo.executors``); this process alone writes, committing each result as it arrives.
Margins and argmax correctness are on every point of the global point space: train points
``0 … n_train−1``, then val points ``n_train …``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from core import code_version
from core.common.config import check_float, check_int
from core.common.errors import ConfigError, StoreBusyError, StoreError
from core.common.threads import env_threads
from core.store.claims import claimed
from core.store.db import Store
from core.zoo.data import Dataset, load_dataset
from core.zoo.ensemble import Ensemble
from core.zoo.executors import Executor, LocalExecutor
from core.zoo.model_sets import (
    ModelSet,
    delete_model_set,
    done_chunks,
    evaluations_using,
    find_model_set,
    get_model_set,
    list_model_sets,
    load_correct,
    load_ensemble,
    load_margins,
    load_masks,
    remove_unnamed_files,
)
from core.zoo.recipe import TrainConfig, random_subset_masks
from core.zoo.tasks import ChunkSpec, train_chunk

__all__ = [  # the model-set readers are re-exported: callers import them from here too
    "ModelSet", "all_points", "build_model_set", "create_model_set", "delete_model_set",
    "done_chunks", "evaluations_using", "find_model_set", "get_model_set", "list_model_sets",
    "load_correct", "load_ensemble", "load_margins", "load_masks", "masks_for",
    "remove_unnamed_files", "store_ensemble", "store_state",
]  # fmt: skip

KINDS = ("original", "oracle", "subset", "unlearned")
MAX_SEED = 2**62  # model seeds lie in [0, MAX_SEED): within DuckDB's BIGINT and torch's range
SEED_BLOCK = 100_000  # default seeds: set s starts at the first free multiple of this ≥ s·block
# Progress callbacks take (fraction done in [0, 1], a short message).
Progress = Callable[[float, str], None]


def all_points(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Train then val points as one batch (``Dataset.all_points``)."""
    return data.all_points()


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
    base_set_id: int | None = None,
    executor: Executor | None = None,
) -> int:
    """Validate everything a build needs, then insert the set's row (``building``); its id.

    Nothing is written when the input is bad: unknown kind, models < 1, a fraction outside
    (0, 1) for subsets, an oracle without its forget set's indices, a training set (mask)
    smaller than one batch, a seed outside [0, 2⁶²) or whose range ``[seed, seed + n)``
    overlaps another set's, an unknown device (for ``executor``: a Ray cluster that cannot be
    reached, or has no GPU for a CUDA build), a dataset that cannot be loaded.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")
    check_int("models", n_models, 1, 100_000)
    if seed is not None:
        check_int("seed", seed, 0, MAX_SEED - n_models)
    if kind == "subset":
        if fraction is None:
            raise ConfigError("a subset model set needs --fraction in (0, 1)")
        check_float("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    elif fraction is not None:
        raise ConfigError("--fraction only applies to --kind subset")
    if kind in ("oracle", "unlearned") and forget_set_id is None:
        raise ConfigError(f"a {kind} model set needs a forget set")
    if kind == "oracle" and forget_indices is None:
        raise ConfigError("an oracle model set needs its forget set's indices")
    ex = executor or LocalExecutor()
    dev = ex.device(device)
    data = data or load_dataset(train.dataset, "cpu")  # fails early on a missing dataset
    train.total_steps(data.n_train)  # the batch fits the train split
    mask_size = _mask_size(kind, data.n_train, fraction, forget_indices)
    if mask_size < train.batch_size:
        raise ConfigError(
            f"each model would train on {mask_size} of {data.n_train} points, fewer than one "
            f"batch ({train.batch_size}); use a larger fraction or a smaller forget set"
        )
    # default: the models spread over the tasks that can run at once (here: one)
    if chunk_size is None:  # 0 is a bad value, not "the default"
        chunk_size = min(train.model_chunk, -(-n_models // ex.slots()))
    check_int("chunk size", chunk_size, 1)
    env_threads(), commit_patience()  # the environment is read per chunk: check it before a row
    with store.transaction() as con:
        set_id = con.execute("SELECT nextval('model_set_id_seq')").fetchone()[0]
        if seed is None:
            seed = _free_seed(con, set_id * SEED_BLOCK, n_models)
        else:
            _check_seed_range(con, seed, n_models)
        con.execute(
            """INSERT INTO model_sets (id, kind, role, dataset, arch, n_models, chunk_size, seed,
               fraction, forget_set_id, train_config, data_meta, code_version, device, status,
               recipe_id, base_set_id)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'building', ?, ?)""",
            [
                set_id, kind, role, train.dataset, train.arch, n_models, chunk_size, seed,
                fraction, forget_set_id, train.to_json(), json.dumps(data.meta()),
                code_version(), dev, train.recipe_id(), base_set_id,
            ],
        )  # fmt: skip
    return int(set_id)


def _mask_size(kind: str, n_train: int, fraction: float | None, forget) -> int:
    """How many train points each model of the set trains on."""
    if kind == "subset":
        return int(round(float(fraction) * n_train))
    if kind == "oracle":
        return n_train - len(np.unique(np.asarray(forget)))
    return n_train


def _overlapping(con, seed: int, n_models: int) -> tuple | None:
    return con.execute(
        "SELECT id, seed, n_models FROM model_sets WHERE seed < ? AND ? < seed + n_models "
        "ORDER BY id LIMIT 1",
        [seed + n_models, seed],
    ).fetchone()


def _check_seed_range(con, seed: int, n_models: int) -> None:
    """Refuse a seed range that shares a seed with a stored set (its models would be
    correlated with that set's: same initial weights and data order)."""
    hit = _overlapping(con, seed, n_models)
    if hit is not None:
        sid, s0, n = hit
        raise ConfigError(
            f"seeds {seed}..{seed + n_models - 1} overlap model set {sid}'s seeds "
            f"{s0}..{s0 + n - 1}; two sets must not share a seed (leave --seed out to get "
            "free ones)"
        )


def _free_seed(con, start: int, n_models: int) -> int:
    """The first multiple of ``SEED_BLOCK`` from ``start`` whose range is unused."""
    seed = start
    while _overlapping(con, seed, n_models) is not None:
        seed += SEED_BLOCK
    if seed + n_models > MAX_SEED:
        raise ConfigError("no free range of seeds is left")
    return seed


def masks_for(ms: ModelSet, n_train: int, forget: np.ndarray | None) -> np.ndarray:
    """The training masks of every model of the set, ``(n_models, n_train)`` bool."""
    if ms.kind == "subset":
        return random_subset_masks(ms.n_models, n_train, float(ms.fraction), ms.seed)
    mask = np.ones(n_train, dtype=bool)
    if ms.kind == "oracle":
        mask[forget] = False
    return np.broadcast_to(mask, (ms.n_models, n_train)).copy()


def build_model_set(
    store: Store,
    set_id: int,
    *,
    forget: np.ndarray | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor: Executor | None = None,
    data_root: str | None = None,
) -> ModelSet:
    """Train every chunk of the set that is not stored yet; resumable and idempotent.

    ``forget``: train indices left out by an oracle set (read from its forget set by callers).
    Files of chunks that no row names (left by a killed build) are removed first. Each chunk
    is a pure task (``core.zoo.tasks.train_chunk``) run by ``executor`` (default: in this process,
    in order; ``RayExecutor``: all at once on a cluster); this process commits each result as
    it arrives, so the stored set does not depend on where its chunks were trained.
    ``data_root``: where a dataset that is not embedded lives (on the machines that train).
    """
    ms = get_model_set(store, set_id)
    ex = executor or LocalExecutor()
    dev = ex.device(device or ms.device)
    # the driver needs the split sizes only; here, the copy the local tasks train on (cached)
    here = isinstance(ex, LocalExecutor)
    data = load_dataset(ms.dataset, dev if here else "cpu", root=data_root)
    if ms.kind == "oracle" and forget is None:
        raise ConfigError("building an oracle set needs its forget set's indices")
    masks = masks_for(ms, data.n_train, forget)
    with claimed(store, set_id):  # one builder at a time: clean-up deletes unrecorded files
        return _build(store, ms, ex, dev, data, masks, progress, should_stop, data_root)


def _build(store, ms, ex, dev, data, masks, progress, should_stop, data_root) -> ModelSet:
    """``build_model_set`` with the set claimed: clean up, train what is missing, commit."""
    set_id = ms.id
    done = done_chunks(store, set_id)
    remove_unnamed_files(store, set_id)
    todo = [c for c in range(ms.n_chunks) if c not in done]
    specs = [
        ChunkSpec(ms.dataset, ms.train.to_dict(), tuple(ms.seed + i for i in ms.chunk_range(c)),
                  masks[ms.chunk_range(c).start : ms.chunk_range(c).stop], dev, data_root)
        for c in todo
    ]  # fmt: skip
    n_done = sum(len(ms.chunk_range(c)) for c in done)

    def tick(k: int, frac: float) -> None:  # task k is frac done
        if progress is not None:
            idx = ms.chunk_range(todo[k])
            progress((n_done + frac * len(idx)) / ms.n_models,
                     f"set {set_id}: training models {idx.start}–{idx.stop - 1}")  # fmt: skip

    for k, res in ex.run(train_chunk, specs, progress=tick, should_stop=should_stop):
        _commit_chunk(store, ms, todo[k], res.state, res.margins, res.correct, specs[k].masks,
                      data, res.device, res.wall_s)  # fmt: skip
        n_done += specs[k].n_models
    if progress is not None:
        progress(1.0, f"set {set_id}: {ms.n_models} models ready")
    with store.transaction() as con:
        con.execute("UPDATE model_sets SET status = 'complete' WHERE id = ?", [set_id])
    return get_model_set(store, set_id)


def store_ensemble(
    store: Store, set_id: int, ens: Ensemble, margins, correct, masks, data: Dataset, t0: float
) -> ModelSet:
    """Store already-trained models (an unlearning method's) as the set's one chunk and mark
    the set complete: weights, margins ``(N, n_points)``, correctness and masks."""
    return store_state(store, set_id, ens.state_dict(), margins, correct, masks, data,
                       ens.device, time.perf_counter() - t0)  # fmt: skip


def store_state(
    store: Store, set_id: int, state: dict, margins, correct, masks, data: Dataset, device,
    wall_s: float,
) -> ModelSet:  # fmt: skip
    """``store_ensemble`` for models given as their stacked weights ``{name: (N, ...)}`` (a
    sweep task's, trained elsewhere) and their training time ``wall_s``."""
    ms = get_model_set(store, set_id)
    n = len(margins)
    if ms.n_models != n or ms.chunk_size != n:
        raise ConfigError(f"model set {set_id} expects {ms.n_models} models in one chunk")
    _commit_chunk(store, ms, 0, state, margins, correct, masks, data, device, wall_s)
    with store.transaction() as con:
        con.execute("UPDATE model_sets SET status = 'complete' WHERE id = ?", [set_id])
    return get_model_set(store, set_id)


def commit_patience() -> float:
    """Seconds a finished chunk waits for a busy database before it is given up
    (``LAB_COMMIT_PATIENCE``, default 120)."""
    raw = os.environ.get("LAB_COMMIT_PATIENCE", "120")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e6:
        raise ConfigError(f"LAB_COMMIT_PATIENCE must be a number of seconds ≥ 0, got {raw!r}")
    return value


def _commit_chunk(store, ms, chunk, state, margins, correct, masks, data, dev, wall_s) -> None:
    """Write the chunk's files, then its row: the row exists only if the files are complete.

    ``state``: the stacked weights ``{name: (n, ...)}``; ``wall_s``: the chunk's training time.

    A database held by another process is retried with exponential backoff for
    ``commit_patience()`` seconds; if the row still cannot be written, the chunk's files are
    removed (no file is left that no row names) and a ``StoreError`` says so.
    """
    stem = f"model_sets/{ms.id}/chunk{chunk:05d}"
    files = [
        store.save_tensors(f"{stem}.weights.pt", state),
        store.save_array(f"{stem}.margins.npy", margins.astype(np.float32)),
        store.save_array(f"{stem}.masks.npy", masks),
        store.save_array(f"{stem}.correct.npy", correct),
    ]
    train_acc = float(correct[:, : data.n_train].mean())  # argmax accuracy
    val_acc = float(correct[:, data.n_train :].mean())
    row = [ms.id, chunk, ms.chunk_range(chunk).start, len(margins), *files[:3], train_acc,
           val_acc, float(wall_s), str(dev), files[3]]  # fmt: skip
    deadline, delay = time.monotonic() + commit_patience(), 0.2
    while True:
        try:
            with store.transaction() as con:
                con.execute(
                    """INSERT OR REPLACE INTO model_chunks (set_id, chunk, first_model, n_models,
                       weights_file, margins_file, masks_file, train_acc, val_acc, wall_time_s,
                       device, correct_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    row,
                )
            return
        except StoreBusyError as err:
            if time.monotonic() + delay > deadline:
                _remove(store, files)
                raise StoreError(
                    f"{err}; chunk {chunk} of model set {ms.id} was trained but could not be "
                    "recorded, and its files were removed — rerun the build to resume"
                ) from err
            time.sleep(delay)
            delay = min(2 * delay, 5.0)
        except BaseException:
            _remove(store, files)
            raise


def _remove(store: Store, files: list[str]) -> None:
    for f in files:
        store.file_path(f).unlink(missing_ok=True)
