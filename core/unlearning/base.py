"""The method interface: what a method receives (``UnlearnContext``), what it returns
(``UnlearnResult``) and the registry (``@register``, ``METHODS``, ``PARAMS``). See the package's
docstring for how to add a method."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Dataset
from ..errors import ConfigError
from ..store import Store
from .params import Param, params_of, parse


@dataclass
class UnlearnContext:
    """What a method may use. ``forget``: sorted train indices; margins are ``(n_models, n_points)``."""

    store: Store
    data: Dataset
    forget: np.ndarray
    original_set_id: int
    device: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    budget: float = 0.0  # share of retraining's example-gradients the method may spend
    forget_set_id: int | None = None
    unlearned_set_id: int | None = None  # created by ``seeds()`` for methods that train

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

    @property
    def recipe(self):
        from ..model_sets import get_model_set

        return get_model_set(self.store, self.original_set_id).train

    @property
    def retrain_examples(self) -> int:
        """Example-gradients of retraining one model: ``total_steps × batch_size``."""
        r = self.recipe
        return r.total_steps(self.data.n_train) * r.batch_size

    @property
    def retain(self) -> np.ndarray:
        """Train indices not in the forget set, sorted."""
        return np.setdiff1d(np.arange(self.data.n_train), self.forget)


@dataclass
class UnlearnResult:
    margins: np.ndarray  # (n_models, n_train + n_val)
    correct: np.ndarray | None  # (n_models, n_train + n_val) bool: argmax == label; None: unknown
    compute_cost: float  # example-gradients spent / (total_steps × batch_size) of retraining
    unlearned_set_id: int | None = None  # a stored model set, when the method keeps its models
    consumed_cost: float = 0.0  # what else it used (e.g. oracle models), in retrainings per model
    info: dict = field(default_factory=dict)  # what the method records (e.g. DEL's reset shares)


Method = Callable[..., UnlearnResult]
METHODS: dict[str, Method] = {}
PARAMS: dict[str, list[Param]] = {}


def register(fn: Method) -> Method:
    """Register ``fn`` under its function name, with the hyperparameters of its signature."""
    METHODS[fn.__name__] = fn
    PARAMS[fn.__name__] = params_of(fn)
    return fn


def uses_budget(name: str) -> bool:
    """Whether method ``name`` trains within a budget: it has hyperparameters and is not a
    predictor (a function marked ``predictor = True``, such as Datamodel-Direct, computes its
    outputs without training, whatever its hyperparameters)."""
    return bool(PARAMS.get(name)) and not getattr(METHODS.get(name), "predictor", False)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}: choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_params(name: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every hyperparameter of method ``name``: defaults overridden by ``values``, checked."""
    get_method(name)
    return parse(name, PARAMS[name], values or {})
