"""Oracle Matching (OM): fine-tune every original model so that its logits on the forget points
and a sample of retain points match targets built from a held-out group of oracle models.

The held-out group is a *third* group of oracles of the originals' recipe and size (role
``heldout``), never the group an evaluation compares with nor the noise-floor group. Targets,
per model i, on train point x (H_j: held-out oracle j's logits, O_i: original i's logits,
both in eval mode before fine-tuning, bars: means over the group):

    mean     T_i(x) = H̄(x)
    paired   T_i(x) = H_i(x)
    shift    T_i(x) = O_i(x) + H̄(x) − Ō(x)        (the form Datamodel Matching's targets have)

Loss of model i on a batch b of its pool (forget ∪ its retain sample), weights w = ``forget_weight``
on forget points and 1 on retain points: ``Σ_b w_b · mean_k (z_ibk − T_ibk)² / Σ_b w_b``.
Compute cost: fine-tuning example-gradients / retraining's; the held-out group it consumed is
recorded apart (one retraining per model).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch

from core.unlearning.base import UnlearnContext, UnlearnResult, register
from core.unlearning.finetune import budget_steps, finish, seeds, sgd, timer
from core.unlearning.gradient import BATCH, LR, MOMENTUM
from core.unlearning.params import Choice, Range


def heldout_oracles(ctx: UnlearnContext, executor=None) -> int:
    """The forget set's held-out oracle group for these originals: built (or resumed) here
    (``UnlearnContext.heldout_set``)."""
    return ctx.heldout_set(executor)


@register
def oracle_matching(
    ctx: UnlearnContext,
    *,
    target: Annotated[str, Choice(("shift", "mean", "paired"), "how targets are built")] = "shift",
    lr: LR = 0.02,
    batch: BATCH = 64,
    forget_weight: Annotated[float, Range(0.0, 1000.0, "loss weight of forget points")] = 5.0,
    retain_sample: Annotated[int, Range(0, 1_000_000, "retain points matched per model")] = 250,
    momentum: MOMENTUM = 0.9,
) -> UnlearnResult:
    """OM: match held-out oracles' logits (MSE, each model its own loss) on F ∪ a retain sample."""
    t0 = timer()
    ens = ctx.originals()
    dev = ens.device
    x = ctx.data.x_train.to(dev)
    held = ctx.heldout_ensemble(str(dev))
    with torch.no_grad():
        h = held.logits(x)  # (N, n_train, K)
        o = ens.logits(x)
    t_all = {"mean": h.mean(0, keepdim=True).expand_as(o), "paired": h,
             "shift": o + (h.mean(0, keepdim=True) - o.mean(0, keepdim=True))}[target]  # fmt: skip
    result = match_logits(ctx, ens, t_all, lr, batch, forget_weight, retain_sample, momentum, t0)
    result.consumed_cost = 1.0  # the held-out oracle group: one retraining per model
    return result


oracle_matching.needs_heldout = True  # a sweep task is given the held-out group's weights


def match_logits(
    ctx: UnlearnContext, ens, t_all: torch.Tensor, lr: float, batch: int, forget_weight: float,
    retain_sample: int, momentum: float, t0: float,
) -> UnlearnResult:  # fmt: skip
    """Fine-tune ``ens`` so model i's logits on the forget set and its own retain sample match
    ``t_all[i]`` (``(N, n_train, K)`` targets on every train point; the loss is the module's),
    within the budget; store the models (``finish``). Shared by OM and Datamodel Matching."""
    dev = ens.device
    x = ctx.data.x_train.to(dev)
    steps = budget_steps(ctx, batch)
    s = seeds(ctx, ens.n_models)
    retain = ctx.retain
    r = min(retain_sample, len(retain))
    pools = np.stack([  # (N, |F| + r): the forget set and each model's own retain sample
        np.concatenate([ctx.forget, np.random.default_rng(v).choice(retain, r, replace=False)])
        for v in s
    ])  # fmt: skip
    weight = torch.ones(pools.shape[1], device=dev)
    weight[: len(ctx.forget)] = forget_weight
    from core.zoo.ensemble import _Stream

    pos = _Stream(torch.arange(pools.shape[1]).expand(len(s), -1).contiguous(),
                  [torch.Generator().manual_seed(v) for v in s])  # fmt: skip
    pools_t = torch.from_numpy(pools).to(dev)
    rows = torch.arange(ens.n_models, device=dev)[:, None]

    def loss(t: int) -> torch.Tensor:
        p = pos.take(batch).to(dev)  # (N, B) positions in each model's pool
        idx = pools_t.gather(1, p)  # (N, B) train indices
        z = ens.forward_train(x[idx]).float()  # (N, B, K)
        w = weight[p]  # (N, B)
        err = (z - t_all[rows, idx]).pow(2).mean(-1)  # (N, B)
        return ((err * w).sum(1) / w.sum(1).clamp_min(1e-12)).sum()

    sgd(ens, steps, loss, lr, momentum)
    return finish(ctx, ens, steps * batch, t0)
