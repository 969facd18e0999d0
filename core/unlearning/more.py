"""More baselines: retraining (the reference), ℓ1-sparse fine-tuning, SalUn and SCRUB.

Notation as in ``gradient``: R retain set, F forget set, CE a model's mean cross-entropy on its
batch; every model has its own batches, seeds and loss.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F

from core.common.errors import ConfigError
from core.unlearning.base import UnlearnContext, UnlearnResult, register
from core.unlearning.finetune import budget_steps, finish, model_loss, seeds, sgd, stream, timer
from core.unlearning.gradient import BATCH, LR, MOMENTUM, _setup, relabel_loss
from core.unlearning.params import Range


@register
def retrain(ctx: UnlearnContext) -> UnlearnResult:
    """The reference at cost 1.0: an independent group of oracles (the noise-floor group),
    retrained without F with the originals' recipe — its KLoM is the noise floor."""
    from core.forget.oracles import pair_sets
    from core.zoo.model_sets import load_correct, load_margins

    _, _, floor = pair_sets(ctx.store, ctx.forget_set_id, ctx.original_set_id)
    return UnlearnResult(load_margins(ctx.store, floor), load_correct(ctx.store, floor), 1.0, floor)


@register
def l1_sparse(
    ctx: UnlearnContext,
    *,
    lr: LR = 0.01,
    batch: BATCH = 64,
    l1: Annotated[float, Range(0.0, 1.0, "weight λ of the ℓ1 penalty Σ|θ| per model")] = 5e-5,
    momentum: MOMENTUM = 0.9,
) -> UnlearnResult:
    """ℓ1-sparse: minimise ``CE(R batch) + λ·Σ|θ|`` (each model's own weights)."""
    t0 = timer()
    ens, dev, x, y = _setup(ctx)
    steps = budget_steps(ctx, batch)
    r = stream(ctx.retain, seeds(ctx, ens.n_models), steps, batch, dev)
    params = ens.parameters()

    def loss(t: int) -> torch.Tensor:
        idx = next(r)
        penalty = sum(p.abs().sum() for p in params)  # Σ over models of each model's Σ|θ|
        return model_loss(ens.forward_train(x[idx]), y[idx]) + l1 * penalty

    sgd(ens, steps, loss, lr, momentum)
    return finish(ctx, ens, steps * batch, t0)


def saliency_masks(ens, x, y, forget, batch: int, fraction: float) -> list[torch.Tensor]:
    """Per parameter, a bool mask of the entries whose |∇ forget loss| (summed over F in
    batches) is in each model's top ``fraction`` of all its entries (ties kept)."""
    ens.net.eval()
    for p in ens.parameters():
        p.grad = None
    n = ens.n_models
    for s in range(0, len(forget), batch):
        idx = torch.tensor(forget[s : s + batch], device=x.device)  # a copy: F is read-only
        z = ens.net(x[idx].unsqueeze(0).expand(n, *x[idx].shape))  # (N, b, K)
        model_loss(z, y[idx].unsqueeze(0).expand(n, -1)).backward()
    grads = [p.grad.detach().abs().reshape(n, -1) for p in ens.parameters()]
    flat = torch.cat(grads, dim=1)  # (N, entries of one model)
    k = max(1, int(round(fraction * flat.shape[1])))
    thr = flat.topk(k, dim=1).values[:, -1:]  # (N, 1) each model's k-th largest
    for p in ens.parameters():
        p.grad = None
    return [(g >= thr).reshape(p.shape) for g, p in zip(grads, ens.parameters(), strict=True)]


@register
def salun(
    ctx: UnlearnContext,
    *,
    lr: LR = 0.01,
    batch: BATCH = 64,
    forget_batch: BATCH = 16,
    fraction: Annotated[
        float, Range(0.0, 1.0, "share of each model's weights updated", lo_open=True)
    ] = 0.5,
    momentum: MOMENTUM = 0.9,
) -> UnlearnResult:
    """SalUn: random labels (``random_labels``' loss), updating only the weights whose
    forget-loss gradient magnitude is in the model's top ``fraction``; the rest stay exactly."""
    t0 = timer()
    ens, dev, x, y = _setup(ctx)
    masks = saliency_masks(ens, x, y, ctx.forget, forget_batch, fraction)
    steps, loss = relabel_loss(ctx, ens, x, y, batch, forget_batch)
    sgd(ens, steps, loss, lr, momentum, grad_masks=masks)  # no weight decay: masked stay put
    # the saliency pass costs |F| example-gradients per model
    return finish(ctx, ens, steps * (batch + forget_batch) + len(ctx.forget), t0)


def scrub_steps(ctx: UnlearnContext, batch: int, forget_batch: int, max_share: float):
    """The most steps ``S`` whose example-gradients fit the budget, and ``n_max``, the max
    steps among them: every step computes one retain batch, the first
    ``n_max = round(max_share · S)`` also one forget batch, so SCRUB spends
    ``S·batch + n_max·forget_batch ≤ budget × T × B`` per model."""

    def spent(s: int) -> int:
        return s * batch + int(round(max_share * s)) * forget_batch

    limit = ctx.budget * ctx.retrain_examples
    s = int(limit // (batch + max_share * forget_batch)) + 1
    while s > 0 and spent(s) > limit:
        s -= 1
    while spent(s + 1) <= limit:
        s += 1
    if s < 1:
        raise ConfigError(
            f"a budget of {ctx.budget:g} buys no step of {spent(1)} examples "
            f"(retraining is {ctx.retrain_examples} example-gradients per model)"
        )
    return s, int(round(max_share * s)), spent(s)


@register
def scrub(
    ctx: UnlearnContext,
    *,
    lr: LR = 0.005,
    batch: BATCH = 64,
    forget_batch: BATCH = 16,
    max_share: Annotated[float, Range(0.0, 1.0, "share of steps with a forget (max) step")] = 0.5,
    alpha: Annotated[float, Range(0.0, 100.0, "weight of the KL term on retain")] = 1.0,
    momentum: MOMENTUM = 0.9,
) -> UnlearnResult:
    """SCRUB: a student (a copy of each original) moves *away* from its frozen teacher (the
    original) on F — ascent on KL(teacher ‖ student) — during the first ``max_share`` of the
    steps, and stays close on R throughout: descent on ``α·KL(teacher ‖ student) + CE``. Only
    the student's parameters are optimised; the teacher is never updated.

    Accounting: one student forward and backward per retain example of every step (the KL and
    CE terms share it) and per forget example of the max steps only; the teacher's forward
    computes no gradient. Cost = ``(S·batch + n_max·forget_batch) / (T × B)`` (``scrub_steps``).

    At the start the student equals the teacher, where ∇ KL(teacher ‖ student) = 0 (its
    gradient in the student's logits is ``softmax(s) − softmax(t)``): the ascent only acts once
    the retain descent has moved the student, so early on SCRUB is close to retain fine-tuning
    (docs/user-guide.md, "Unlearn: the methods", the scrub entry)."""
    t0 = timer()
    teacher, dev, x, y = _setup(ctx)
    student = teacher.select(range(teacher.n_models))  # an independent copy
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.net.eval()
    steps, n_max, spent = scrub_steps(ctx, batch, forget_batch, max_share)
    s = seeds(ctx, student.n_models)
    r = stream(ctx.retain, s, steps, batch, dev)
    f = stream(ctx.forget, [v + 7_919 for v in s], n_max, forget_batch, dev)

    def kl(idx: torch.Tensor, zs: torch.Tensor) -> torch.Tensor:
        """Σ over models of the mean KL(teacher ‖ student) over the batch; ``zs`` the
        student's logits ``(N, B, K)`` on ``x[idx]``."""
        with torch.no_grad():
            pt = F.log_softmax(teacher.net(x[idx]).float(), -1)
        ps = F.log_softmax(zs.float(), -1)
        return (pt.exp() * (pt - ps)).sum(-1).mean(1).sum()

    def loss(t: int) -> torch.Tensor:
        ir = next(r)
        zr = student.forward_train(x[ir])  # one pass serves both retain terms
        kept = alpha * kl(ir, zr) + model_loss(zr, y[ir])
        if t >= n_max:
            return kept
        i_f = next(f)
        return kept - kl(i_f, student.forward_train(x[i_f]))

    sgd(student, steps, loss, lr, momentum)
    return finish(ctx, student, spent, t0)
