"""The method interface: what a method receives (``UnlearnContext``), what it returns
(``UnlearnResult``) and the registry (``@register``, ``METHODS``, ``PARAMS``). See the package's
docstring for how to add a method."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.common.errors import ConfigError
from core.store.db import Store
from core.unlearning.params import Param, params_of, parse
from core.zoo.data import Dataset


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
    # first seeds asked for (a card's reproduction): {"unlearned": S, "heldout": S}; a key left
    # out takes a free range, as by default
    set_seeds: dict[str, int] = field(default_factory=dict)

    def original_margins(self) -> np.ndarray:
        from core.zoo.model_sets import load_margins

        return load_margins(self.store, self.original_set_id)

    def original_correct(self) -> np.ndarray:
        """``(n_models, n_points)`` bool: the originals' argmax prediction is the label."""
        from core.zoo.model_sets import load_correct

        return load_correct(self.store, self.original_set_id)

    def originals(self):
        """The original models as one stacked ``Ensemble`` (for methods that fine-tune)."""
        from core.zoo.model_sets import load_ensemble

        return load_ensemble(self.store, self.original_set_id, self.device)

    def original_seeds(self) -> list[int]:
        """The original models' seeds (model i: the set's ``seed + i``), from which training
        drew their initial weights (``core.zoo.models.initialised``)."""
        from core.zoo.model_sets import get_model_set

        ms = get_model_set(self.store, self.original_set_id)
        return [ms.seed + i for i in range(ms.n_models)]

    @property
    def recipe(self):
        from core.zoo.model_sets import get_model_set

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

    # What a method writes or reads beyond the originals goes through these four, so that a
    # sweep task (``core.unlearning.detached``) can run the same method with no store.

    def seeds(self, n_models: int) -> list[int]:
        """One seed per model for the method's randomness: the unlearned set's own range
        (the set is created here, status building), so they never repeat another set's."""
        from core.zoo.build import create_model_set, get_model_set

        if self.unlearned_set_id is None:
            self.unlearned_set_id = create_model_set(
                self.store, "unlearned", self.recipe, n_models, forget_set_id=self.forget_set_id,
                base_set_id=self.original_set_id, device=self.device, data=self.data,
                chunk_size=n_models, seed=self.set_seeds.get("unlearned"),
            )  # fmt: skip
        s0 = get_model_set(self.store, self.unlearned_set_id).seed
        return [s0 + i for i in range(n_models)]

    def keep(self, ens, margins: np.ndarray, correct: np.ndarray, masks: np.ndarray,
             t0: float) -> int | None:  # fmt: skip
        """Store the unlearned models as the set ``seeds`` created; its id."""
        from core.zoo.build import store_ensemble

        with self.store.held():  # its rows and files: one connection (Store.held)
            store_ensemble(self.store, self.unlearned_set_id, ens, margins, correct, masks,
                           self.data, t0)  # fmt: skip
        return self.unlearned_set_id

    def heldout_set(self, executor=None) -> int:
        """Oracle Matching's held-out oracle group of the forget set for these originals (a
        third group of their recipe and size, role ``heldout``): built (or resumed) here, its
        chunks trained by ``executor`` (``core.zoo.executors``; default: this process)."""
        from core.forget.oracles import ensure_model_set
        from core.zoo.model_sets import get_model_set

        orig = get_model_set(self.store, self.original_set_id)
        return ensure_model_set(
            self.store, "oracle", orig.dataset, train=orig.train, n_models=orig.n_models,
            forget_set_id=self.forget_set_id, forget=self.forget, role="heldout",
            device=self.device, base_set_id=orig.id, executor=executor,
            seed=self.set_seeds.get("heldout"),
        )  # fmt: skip

    def heldout_ensemble(self, device: str):
        """The held-out oracle group's models (``heldout_set``), stacked on ``device``."""
        from core.zoo.model_sets import load_ensemble

        return load_ensemble(self.store, self.heldout_set(), device)

    def datamodel(self, target: str | None):
        """The datamodel a datamodel method uses (``chosen_datamodel``) and its weights
        ``(n_points[, K], n_train)``, checked against the dataset (``ConfigError`` naming the
        fitting command when there is none)."""
        from core.attribution.datamodels import datamodel_for, get_datamodel, load_weights

        found = chosen_datamodel(self.store, self.original_set_id, target)
        if found is None:  # the error names the fix
            dm = datamodel_for(self.store, self.original_set_id, target)
        else:
            dm = get_datamodel(self.store, found)
        n_points = self.data.n_train + self.data.n_val
        if (dm.n_train, dm.n_targets) != (self.data.n_train, n_points):
            raise ConfigError(
                f"datamodel {dm.id} is for {dm.n_train} train / {dm.n_targets} points, the "
                f"data has {self.data.n_train} / {n_points}"
            )
        return dm, load_weights(self.store, dm.id)[0]


def chosen_datamodel(store: Store, original_set_id: int, target: str | None) -> int | None:
    """The id of the datamodel a datamodel method uses on these originals, or None: the newest
    of their recipe and ``target``; ``target`` None: the first found of ridge on margins, ridge
    on logits, lasso on margins — ridge first, because the ℓ1 fit shrinks the weights' size,
    and so the predicted shift (on digits its forget-set KLoM was 5× the ridge one's despite a
    higher LDS)."""
    from core.attribution.datamodels import find_datamodel
    from core.zoo.model_sets import get_model_set

    recipe = get_model_set(store, original_set_id).recipe_id
    if target is not None:
        return find_datamodel(store, recipe, target)
    for t, kind in (("margin", "ridge"), ("logits", "ridge"), ("margin", "lasso")):
        found = find_datamodel(store, recipe, t, kind)
        if found is not None:
            return found
    return None


# what a result's ``correct`` holds (its ``info["accuracy_kind"]``; absent: argmax)
ARGMAX = "argmax"  # the argmax prediction is the label (DESIGN.md "Accuracy")
POSITIVE_MARGIN_SHARE = "positive-margin share"  # margin > 0: a lower bound of argmax


@dataclass
class UnlearnResult:
    margins: np.ndarray  # (n_models, n_train + n_val)
    correct: np.ndarray | None  # (n_models, n_train + n_val) bool: argmax == label (or margin > 0:
    # info's accuracy_kind); None: unknown
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
