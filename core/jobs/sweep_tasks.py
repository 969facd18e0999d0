"""Pure work units of an unlearning sweep: run one grid point and return its arrays.

A sweep task never touches the database. What every grid point shares (``SweepInputs``: the
dataset's name, the forget set, the originals' recipe, stacked weights, margins and
correctness, and what the method reads beyond them — Oracle Matching's held-out oracle group, a
datamodel's weights) is put in Ray's object store once; each task gets only its point
(``PointSpec``: method, budget, hyperparameters, the unlearned set's seeds). The method runs on
a ``DetachedContext``, which serves the same reads from those arrays and, instead of storing
the unlearned models, hands their weights back. The task returns ``PointResult`` (margins,
correctness, costs, weights, or the reason it diverged), and the driver — the only writer —
stores and scores it through the same code as a local run (``core.jobs.sweeps``), so the stored
run does not depend on where the point ran.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SweepInputs:
    """What every point of a sweep reads: ``state``/``heldout``: ``{name: (N, ...)}`` CPU
    tensors; ``margins`` ``(N, n_points)`` float32 and ``correct`` bool: the originals';
    ``datamodel``: ``(record, weights)`` of the datamodel the method uses, or None."""

    dataset: str
    forget: np.ndarray = field(repr=False)
    forget_set_id: int
    original_set_id: int
    train: dict[str, Any]
    arch: str
    input_shape: tuple[int, ...]
    num_classes: int
    state: dict = field(repr=False)
    margins: np.ndarray = field(repr=False)
    correct: np.ndarray = field(repr=False)
    heldout: dict | None = field(default=None, repr=False)
    datamodel: tuple | None = field(default=None, repr=False)
    data_root: str | None = None
    original_seed: int | None = None  # the originals' first seed (model i: + i)


@dataclass(frozen=True)
class PointSpec:
    """One grid point: the method, its checked hyperparameters (``budget`` among them when it
    trains), the unlearned set the driver created for it (id and first seed; None when the
    method trains nothing) and the device name (resolved where the task runs)."""

    method: str
    params: dict[str, Any]
    budget: float
    unlearned_set_id: int | None
    seed: int | None
    device: str = "cpu"


@dataclass(frozen=True)
class PointResult:
    """What a point returns: its ``UnlearnResult``'s fields, the unlearned models' weights and
    masks (None when it trains nothing), or ``diverged`` (the reason; no arrays)."""

    margins: np.ndarray | None = field(repr=False)
    correct: np.ndarray | None = field(repr=False)
    compute_cost: float
    consumed_cost: float
    info: dict
    state: dict | None = field(repr=False)
    masks: np.ndarray | None = field(repr=False)
    device: str
    host: str
    wall_s: float
    diverged: str | None = None


def _ensemble(inputs: SweepInputs, state: dict, device: str):
    from core.zoo.ensemble import Ensemble

    own = {k: v.clone() for k, v in state.items()}  # methods fine-tune it in place
    return Ensemble.from_state(inputs.arch, own, inputs.input_shape, inputs.num_classes, device)


def detached_context(inputs: SweepInputs, spec: PointSpec, data):
    """An ``UnlearnContext`` with no store: reads served from ``inputs``, models kept in it."""
    from core.unlearning import UnlearnContext
    from core.zoo.recipe import TrainConfig

    class DetachedContext(UnlearnContext):
        kept: tuple | None = None

        def original_margins(self) -> np.ndarray:
            return inputs.margins.copy()

        def original_correct(self) -> np.ndarray:
            return inputs.correct.copy()

        def originals(self):
            return _ensemble(inputs, inputs.state, self.device)

        @property
        def recipe(self):
            return TrainConfig.from_dict(inputs.train)

        def original_seeds(self) -> list[int]:
            if inputs.original_seed is None:
                from core.common.errors import LabError

                raise LabError("this sweep task was given no seeds of the originals")
            return [inputs.original_seed + i for i in range(inputs.margins.shape[0])]

        def seeds(self, n_models: int) -> list[int]:
            if spec.seed is None:
                from core.common.errors import LabError

                raise LabError(f"{spec.method} trains, but its sweep task was given no seeds")
            return [spec.seed + i for i in range(n_models)]

        def keep(self, ens, margins, correct, masks, t0) -> int | None:
            self.kept = ({k: v.detach().cpu() for k, v in ens.state_dict().items()}, masks)
            return spec.unlearned_set_id

        def heldout_ensemble(self, device: str):
            return _ensemble(inputs, inputs.heldout, device)

        def datamodel(self, target):
            return inputs.datamodel

    return DetachedContext(None, data, inputs.forget, inputs.original_set_id, spec.device,
                           dict(spec.params), budget=spec.budget,
                           forget_set_id=inputs.forget_set_id,
                           unlearned_set_id=spec.unlearned_set_id)  # fmt: skip


def unlearn_point(
    spec: PointSpec,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    inputs: SweepInputs,
) -> PointResult:
    """Run ``spec.method`` on the originals as ``core.evaluation.run.evaluate`` does; a method
    whose outputs are not finite returns ``diverged`` (a ``LabError`` of any other kind is
    raised: bad input, not retried)."""
    from core.common.device import resolve_device
    from core.common.errors import Diverged
    from core.unlearning import get_method
    from core.zoo.data import load_dataset

    t0 = time.perf_counter()
    dev = str(resolve_device(spec.device))
    data = load_dataset(inputs.dataset, "cpu", root=inputs.data_root)
    ctx = detached_context(inputs, spec, data)
    ctx.device = dev
    host = socket.gethostname()
    try:
        res = get_method(spec.method)(
            ctx, **{k: v for k, v in spec.params.items() if k != "budget"}
        )
        if not np.isfinite(res.margins).all():
            raise Diverged("its models produce non-finite outputs")
    except Diverged as err:
        return PointResult(None, None, 0.0, 0.0, {}, None, None, dev, host,
                           time.perf_counter() - t0, diverged=str(err))  # fmt: skip
    state, masks = ctx.kept or (None, None)
    return PointResult(res.margins, res.correct, float(res.compute_cost),
                       float(res.consumed_cost), res.info, state, masks, dev, host,
                       time.perf_counter() - t0)  # fmt: skip
