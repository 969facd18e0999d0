"""Gradient baselines: fine-tune the originals on the retain set, ascend the forget loss, both,
or relabel the forget set at random. Each spends ``budget × T × B`` example-gradients per model.

Notation: ``R`` the retain set, ``F`` the forget set, ``CE`` the mean cross-entropy of a
model's batch; every model takes its own batches and steps (see ``finetune``).
"""

from __future__ import annotations

from typing import Annotated

import torch

from .base import UnlearnContext, UnlearnResult, register
from .finetune import budget_steps, finish, model_loss, seeds, sgd, stream, timer
from .params import Range

LR = Annotated[float, Range(0.0, 1.0, "SGD step size (constant)", lo_open=True)]
BATCH = Annotated[int, Range(1, 4096, "examples per step per model, of each set used")]
MOMENTUM = Annotated[float, Range(0.0, 0.99, "SGD momentum")]


def _setup(ctx: UnlearnContext):
    ens = ctx.originals()
    dev = ens.device
    x, y = ctx.data.x_train.to(dev), ctx.data.y_train.to(dev)
    return ens, dev, x, y


def two_streams(ctx: UnlearnContext, n_models: int, batch: int, forget_batch: int, dev):
    """Steps a budget buys at ``batch`` retain plus ``forget_batch`` forget examples per step,
    the models' seeds, and their retain and forget batch streams (independent draws)."""
    steps = budget_steps(ctx, batch + forget_batch)
    s = seeds(ctx, n_models)
    r = stream(ctx.retain, s, steps, batch, dev)
    f = stream(ctx.forget, [v + 7_919 for v in s], steps, forget_batch, dev)
    return steps, s, r, f


def relabel_loss(ctx: UnlearnContext, ens, x, y, batch: int, forget_batch: int):
    """Steps a budget buys and the loss ``CE(R batch) + CE(F batch, random wrong labels)``,
    each forget point relabelled once per model (``wrong_labels``)."""
    steps, s, r, f = two_streams(ctx, ens.n_models, batch, forget_batch, x.device)
    wrong = wrong_labels(y, ctx.data.num_classes, s)  # (N, n_train)
    rows = torch.arange(ens.n_models, device=x.device)[:, None]

    def loss(t: int) -> torch.Tensor:
        ir, i_f = next(r), next(f)
        kept = model_loss(ens.forward_train(x[ir]), y[ir])
        return kept + model_loss(ens.forward_train(x[i_f]), wrong[rows, i_f])

    return steps, loss


def wrong_labels(y: torch.Tensor, k: int, model_seeds: list[int]) -> torch.Tensor:
    """``(N, n_train)``: for every model and train point a label drawn uniformly from the
    ``k − 1`` classes other than its own, from the model's seed."""
    draws = [torch.randint(1, k, y.shape, generator=torch.Generator().manual_seed(v))
             for v in model_seeds]  # fmt: skip
    return torch.stack([(y.cpu() + d) % k for d in draws]).to(y.device)


def _fine_tune_on(ctx: UnlearnContext, pool, sign: float, lr: float, batch: int,
                  momentum: float) -> UnlearnResult:  # fmt: skip
    """SGD on ``sign · CE`` over batches of ``pool`` (+1: descent, −1: ascent)."""
    t0 = timer()
    ens, dev, x, y = _setup(ctx)
    steps = budget_steps(ctx, batch)
    b = stream(pool, seeds(ctx, ens.n_models), steps, batch, dev)

    def loss(t: int) -> torch.Tensor:
        idx = next(b)  # (N, B)
        return sign * model_loss(ens.forward_train(x[idx]), y[idx])

    sgd(ens, steps, loss, lr, momentum)
    return finish(ctx, ens, steps * batch, t0)


@register
def gradient_descent(
    ctx: UnlearnContext, *, lr: LR = 0.01, batch: BATCH = 64, momentum: MOMENTUM = 0.9
) -> UnlearnResult:
    """GD: minimise ``CE`` on batches of R (fine-tuning on what is kept)."""
    return _fine_tune_on(ctx, ctx.retain, 1.0, lr, batch, momentum)


@register
def gradient_ascent(
    ctx: UnlearnContext, *, lr: LR = 0.001, batch: BATCH = 32, momentum: MOMENTUM = 0.0
) -> UnlearnResult:
    """GA: maximise ``CE`` on batches of F (push the forget points' loss up)."""
    return _fine_tune_on(ctx, ctx.forget, -1.0, lr, batch, momentum)


@register
def ga_gd(
    ctx: UnlearnContext,
    *,
    lr: LR = 0.01,
    batch: BATCH = 64,
    forget_batch: BATCH = 16,
    ascent_weight: Annotated[float, Range(0.0, 100.0, "weight α of the ascent term")] = 0.5,
    momentum: MOMENTUM = 0.9,
) -> UnlearnResult:
    """NegGrad+: minimise ``CE(R batch) − α·CE(F batch)`` (descent on kept, ascent on forgotten)."""
    t0 = timer()
    ens, dev, x, y = _setup(ctx)
    steps, _, r, f = two_streams(ctx, ens.n_models, batch, forget_batch, dev)

    def loss(t: int) -> torch.Tensor:
        ir, i_f = next(r), next(f)
        kept = model_loss(ens.forward_train(x[ir]), y[ir])
        return kept - ascent_weight * model_loss(ens.forward_train(x[i_f]), y[i_f])

    sgd(ens, steps, loss, lr, momentum)
    return finish(ctx, ens, steps * (batch + forget_batch), t0)


@register
def random_labels(
    ctx: UnlearnContext,
    *,
    lr: LR = 0.01,
    batch: BATCH = 64,
    forget_batch: BATCH = 16,
    momentum: MOMENTUM = 0.9,
) -> UnlearnResult:
    """Minimise ``CE(R batch) + CE(F batch, random wrong labels)``: each forget point gets a
    label drawn uniformly from the other classes, per model, once."""
    t0 = timer()
    ens, dev, x, y = _setup(ctx)
    steps, loss = relabel_loss(ctx, ens, x, y, batch, forget_batch)
    sgd(ens, steps, loss, lr, momentum)
    return finish(ctx, ens, steps * (batch + forget_batch), t0)
