"""Pure work units: train one chunk of a model set and return its arrays.

A chunk task never touches the database. Its input (``ChunkSpec``) is plain data — the
dataset's name, the recipe as a dict, the models' seeds and masks, the device — and its output
(``ChunkResult``) is arrays: the stacked weights as CPU tensors (saved by the driver with
``torch.save`` and read back with ``weights_only=True``), margins ``(n, n_points)`` and argmax
correctness. So the same task runs in this process (``core.zoo.executors.LocalExecutor``) or on a
Ray worker (``RayExecutor``), and the one process that writes — the driver — commits every
result through the same code (``core.zoo.build``): the stored files and rows do not depend on where a
chunk was trained. Training is deterministic on the CPU (``core.zoo.ensemble``): the same spec gives
bitwise-equal weights on the same number of threads.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ChunkSpec:
    """What one chunk task trains: ``len(seeds)`` models of one recipe.

    ``train``: ``TrainConfig.to_dict()``; ``masks``: ``(n, n_train)`` bool; ``device``: a
    device name resolved where the task runs (``"cuda"`` on a Ray worker is the GPU Ray gave
    it). ``data_root``: where a dataset that is not embedded lives, on the worker.
    """

    dataset: str
    train: dict[str, Any]
    seeds: tuple[int, ...]
    masks: np.ndarray = field(repr=False)
    device: str = "cpu"
    data_root: str | None = None

    @property
    def n_models(self) -> int:
        return len(self.seeds)


@dataclass(frozen=True)
class ChunkResult:
    """What a chunk task returns: ``state`` ``{name: (n, ...)}`` CPU tensors, ``margins``
    ``(n, n_points)`` float32, ``correct`` ``(n, n_points)`` bool, the device it trained on,
    its host and its wall time."""

    state: dict = field(repr=False)
    margins: np.ndarray = field(repr=False)
    correct: np.ndarray = field(repr=False)
    device: str
    host: str
    wall_s: float


def train_chunk(
    spec: ChunkSpec,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ChunkResult:
    """Train the chunk's models and score them on every point (train then val).

    ``progress(fraction)`` and ``should_stop()`` are only given in-process (a Ray task has
    neither: its progress is its arrival, and it is stopped by cancelling it).
    """
    from core.common.device import resolve_device
    from core.zoo.data import load_dataset
    from core.zoo.ensemble import train_ensemble
    from core.zoo.recipe import TrainConfig

    t0 = time.perf_counter()
    dev = resolve_device(spec.device)
    data = load_dataset(spec.dataset, dev, root=spec.data_root)
    cfg = TrainConfig.from_dict(spec.train)

    def tick(step: int, total: int) -> None:
        if progress is not None:
            progress(step / max(total, 1))

    ens = train_ensemble(
        data, spec.masks, list(spec.seeds), cfg, device=dev, progress=tick,
        should_stop=should_stop,
    )  # fmt: skip
    x_all, y_all = data.all_points()
    margins, correct = ens.margins_and_correct(x_all, y_all, chunk=cfg.eval_chunk)
    state = {k: v.cpu() for k, v in ens.state_dict().items()}
    return ChunkResult(
        state, margins, correct, str(dev), socket.gethostname(), time.perf_counter() - t0
    )
