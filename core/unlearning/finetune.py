"""Fine-tuning N stacked models at once for unlearning: budgets, batch streams, SGD, storage.

Every model of the ensemble is fine-tuned on its own batches (its own generator), with its own
loss (the per-model mean over its batch; the sum over models keeps their gradients separate),
by SGD with momentum on the stacked parameters, so nothing couples the models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.common.errors import ConfigError
from core.common.sgd import SGD
from core.unlearning.base import UnlearnContext, UnlearnResult


def budget_steps(ctx: UnlearnContext, examples_per_step: int) -> int:
    """Steps a budget buys: ``⌊budget × T × B / examples_per_step⌋`` (T × B: retraining's
    example-gradients per model). A budget that buys no step is refused."""
    steps = int(ctx.budget * ctx.retrain_examples // examples_per_step)
    if steps < 1:
        raise ConfigError(
            f"a budget of {ctx.budget:g} buys no step of {examples_per_step} examples "
            f"(retraining is {ctx.retrain_examples} example-gradients per model)"
        )
    return steps


def seeds(ctx: UnlearnContext, n_models: int) -> list[int]:
    """One seed per model for the method's randomness (``UnlearnContext.seeds``)."""
    return ctx.seeds(n_models)


def stream(
    pool: np.ndarray, gen_seeds: list[int], steps: int, batch: int, dev: torch.device
) -> Iterator[Tensor]:
    """``steps`` batches ``(N, batch)`` of train indices from ``pool``, each model drawing from
    its own stream of permutations (``core.zoo.ensemble``); ``batch`` may exceed the pool."""
    from core.zoo.ensemble import _Stream

    pools = torch.from_numpy(np.broadcast_to(np.asarray(pool), (len(gen_seeds), len(pool))).copy())
    s = _Stream(pools, [torch.Generator().manual_seed(int(x)) for x in gen_seeds])
    for _ in range(steps):
        yield s.take(batch).to(dev)


def model_loss(z: Tensor, y: Tensor) -> Tensor:
    """Sum over models of each model's mean cross-entropy: ``z (N, B, K)``, ``y (N, B)``."""
    n, b, k = z.shape
    return F.cross_entropy(z.float().reshape(n * b, k), y.reshape(-1), reduction="sum") / b


def sgd(
    ens, steps: int, batch_loss: Callable[[int], Tensor], lr: float, momentum: float = 0.9,
    weight_decay: float = 0.0, grad_masks: list[Tensor] | None = None,
    grad_transform: Callable[[list[Tensor]], None] | None = None,
) -> None:  # fmt: skip
    """``steps`` SGD steps on ``batch_loss(t)`` (a sum of per-model losses), constant ``lr``.

    ``grad_masks`` (one bool tensor per parameter): only those entries are updated; without
    weight decay a masked-out entry never moves (its gradient and momentum stay zero).
    ``grad_transform(params)``, if given, edits the gradients in place after each backward
    pass and before the update (``noisy_descent``'s clipping and noise).
    """
    hooks = [p.register_hook(lambda g, m=m: g * m)
             for p, m in zip(ens.parameters(), grad_masks or [], strict=False)]  # fmt: skip
    opt = SGD(ens.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    ens.net.train()
    try:
        for t in range(steps):
            loss = batch_loss(t)
            opt.zero_grad()
            loss.backward()
            if grad_transform is not None:
                grad_transform(opt.params)
            opt.step()
    finally:
        for h in hooks:
            h.remove()


def finish(ctx: UnlearnContext, ens, examples_per_model: int, t0: float) -> UnlearnResult:
    """Score the unlearned models on every point, store them as the ``unlearned`` set, and
    return the result; compute cost = ``examples_per_model / (T × B)``."""
    x, y = ctx.data.all_points()
    margins, correct = ens.margins_and_correct(x, y)
    if not np.isfinite(margins).all():
        from core.common.errors import Diverged

        raise Diverged("its models produce non-finite outputs")
    masks = np.zeros((ens.n_models, ctx.data.n_train), dtype=bool)
    masks[:, ctx.retain] = True
    set_id = ctx.keep(ens, margins, correct, masks, t0)
    cost = examples_per_model / ctx.retrain_examples
    return UnlearnResult(margins, correct, cost, set_id)


def timer() -> float:
    return time.perf_counter()
