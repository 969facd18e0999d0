"""Unlearning methods: one function each, registered by name in ``METHODS``.

A method is ``def name(ctx: UnlearnContext, *, hyperparameters…) -> UnlearnResult``; its
keyword-only parameters, typed with ``Annotated[float, Range(lo, hi, help)]`` and given defaults,
are its hyperparameters (``core.unlearning.params``): the dashboard's form and the CLI's
``--param`` flags. It receives the original models (``ctx.originals()``: N models stacked), the
data, the forget indices and a compute budget (``ctx.budget``: the share of retraining's
example-gradients it may spend, 0.1 = a tenth of retraining), and returns the unlearned
models' margins and argmax correctness on every point with the compute it spent
(example-gradients / (total_steps × batch_size) of the originals' recipe). Methods that
fine-tune store their N models as a model set of kind ``unlearned`` (``ctx.finish``).

To add a method: write it in a module of this package, decorate it with ``@register``, and
import the module at the bottom of this file; the CLI, the dashboard and the registry-wide
tests pick it up.

Modules: ``base`` (the interface, ``register``, ``UnlearnContext``), ``params`` (typed
hyperparameters), ``finetune`` (budgets, batch streams, SGD, storage), ``baselines``
(do-nothing), ``gradient`` (GD, noisy descent, GA, GA+GD, random labels), ``more``
(retrain, ℓ1-sparse, SalUn, SCRUB), ``localized`` (DEL), ``matching`` (Oracle Matching),
``datamodel_methods`` (Datamodel-Direct, DMM). Uses ``forget`` and below; never imports
streamlit.
"""

from __future__ import annotations

from core.unlearning import (  # noqa: E402, F401  (registers)
    baselines,
    datamodel_methods,
    gradient,
    localized,
    matching,
    more,
)
from core.unlearning.base import (  # noqa: F401  (the interface, re-exported)
    METHODS,
    PARAMS,
    Method,
    UnlearnContext,
    UnlearnResult,
    get_method,
    method_params,
    register,
    uses_budget,
)
