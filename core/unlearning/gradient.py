"""Gradient baselines: fine-tune the originals on the retain set (plainly, or with clipped and
noised gradients), ascend the forget loss, both, or relabel the forget set at random. Each spends ``budget × T × B`` example-gradients per model.

Notation: ``R`` the retain set, ``F`` the forget set, ``CE`` the mean cross-entropy of a
model's batch; every model takes its own batches and steps (see ``finetune``).
"""

from __future__ import annotations

from typing import Annotated

import torch

from core.unlearning.base import UnlearnContext, UnlearnResult, register
from core.unlearning.finetune import budget_steps, finish, model_loss, seeds, sgd, stream, timer
from core.unlearning.params import Range

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
                  momentum: float, edit=None) -> UnlearnResult:  # fmt: skip
    """SGD on ``sign · CE`` over batches of ``pool`` (+1: descent, −1: ascent); ``edit(dev,
    seed)``, if given, makes the gradient edit of ``sgd`` (``grad_transform``)."""
    t0 = timer()
    ens, dev, x, y = _setup(ctx)
    steps = budget_steps(ctx, batch)
    s = seeds(ctx, ens.n_models)
    b = stream(pool, s, steps, batch, dev)
    grad_transform = edit(dev, s[0]) if edit is not None else None

    def loss(t: int) -> torch.Tensor:
        idx = next(b)  # (N, B)
        return sign * model_loss(ens.forward_train(x[idx]), y[idx])

    sgd(ens, steps, loss, lr, momentum, grad_transform=grad_transform)
    return finish(ctx, ens, steps * batch, t0)


@register
def gradient_descent(
    ctx: UnlearnContext, *, lr: LR = 0.01, batch: BATCH = 64, momentum: MOMENTUM = 0.9
) -> UnlearnResult:
    """GD: minimise ``CE`` on batches of R (fine-tuning on what is kept)."""
    return _fine_tune_on(ctx, ctx.retain, 1.0, lr, batch, momentum)


def clip_and_noise(max_norm: float, noise_std: float, gen: torch.Generator):
    """The gradient edit of noisy descent, per model ``i`` of the stack (every parameter is
    ``(N, …)``): ``g_i ← g_i · min(1, C / (‖g_i‖ + 1e-6))`` with ``‖g_i‖`` the global norm of
    model ``i``'s gradient over all its parameters (``torch.nn.utils.clip_grad_norm_``'s rule,
    one model at a time), then ``g_i ← g_i + ξ``, ``ξ ~ N(0, σ²)`` entrywise, drawn from
    ``gen`` on the models' device."""

    def edit(params: list[torch.Tensor]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        n = grads[0].shape[0]
        norm = torch.sqrt(sum(g.reshape(n, -1).pow(2).sum(1) for g in grads))  # (N,)
        scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.reshape(n, *([1] * (g.dim() - 1))))
            if noise_std > 0:
                g.add_(torch.randn(g.shape, generator=gen, device=g.device, dtype=g.dtype),
                       alpha=noise_std)  # fmt: skip

    return edit


@register
def noisy_descent(
    ctx: UnlearnContext,
    *,
    lr: LR = 0.01,
    batch: BATCH = 64,
    momentum: MOMENTUM = 0.9,
    max_grad_norm: Annotated[
        float, Range(0.0, 1e6, "clip each model's whole gradient to this norm", lo_open=True)
    ] = 1.0,
    noise_std: Annotated[
        float,
        Range(0.0, 10.0, "σ of the Gaussian noise added to every gradient entry after clipping"),
    ] = 0.01,  # fmt: skip
) -> UnlearnResult:
    """Noisy descent (EasyDUB's DP-SGD-style baseline): GD on batches of R, each model's
    gradient clipped to global norm ``C`` then given ``N(0, σ²)`` noise per entry, before
    the SGD update. The noise comes from one generator on the models' device seeded from the
    run's first seed, so a run reproduces on the same device."""

    def edit(dev: torch.device, seed: int):
        gen = torch.Generator(device=dev).manual_seed(int(seed) + 104_729)
        return clip_and_noise(max_grad_norm, noise_std, gen)

    return _fine_tune_on(ctx, ctx.retain, 1.0, lr, batch, momentum, edit)


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
