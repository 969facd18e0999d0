"""Unlearning methods: one function each, registered by name in ``METHODS``.

A method takes an ``UnlearnContext`` (the original models, the data, the forget set) and returns
an ``UnlearnResult``: the unlearned models' margins and argmax correctness on every point and
the compute it spent, as a fraction of retraining from scratch (example-gradient evaluations /
(total_steps × batch_size) of the originals' recipe).
To add a method: write ``def my_method(ctx) -> UnlearnResult`` in this package, decorate it with
``@register``, and import its module at the bottom of this file; the CLI, the dashboard and the
registry-wide tests pick it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Dataset
from ..errors import ConfigError
from ..store import Store


@dataclass
class UnlearnContext:
    """What a method may use. ``forget``: sorted train indices; margins are ``(n_models, n_points)``."""

    store: Store
    data: Dataset
    forget: np.ndarray
    original_set_id: int
    device: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def original_margins(self) -> np.ndarray:
        from ..model_sets import load_margins

        return load_margins(self.store, self.original_set_id)

    def original_correct(self) -> np.ndarray:
        """``(n_models, n_points)`` bool: the originals' argmax prediction is the label."""
        from ..model_sets import load_correct

        return load_correct(self.store, self.original_set_id)

    def originals(self):
        """The original models as one stacked ``Ensemble`` (for methods that fine-tune)."""
        from ..model_sets import load_ensemble

        return load_ensemble(self.store, self.original_set_id, self.device)


@dataclass
class UnlearnResult:
    margins: np.ndarray  # (n_models, n_train + n_val)
    correct: np.ndarray  # (n_models, n_train + n_val) bool: argmax prediction == label
    compute_cost: float  # example-gradients spent / (total_steps × batch_size) of retraining
    unlearned_set_id: int | None = None  # a stored model set, when the method keeps its models


Method = Callable[[UnlearnContext], UnlearnResult]
METHODS: dict[str, Method] = {}


def register(fn: Method) -> Method:
    """Register ``fn`` under its function name."""
    METHODS[fn.__name__] = fn
    return fn


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}: choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


from . import baselines  # noqa: E402, F401  (registers the methods)
