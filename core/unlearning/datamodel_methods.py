"""Unlearning from datamodels: Datamodel-Direct (a predictor) and Datamodel Matching (DMM).

A datamodel of the originals' recipe (``core.attribution``) predicts how leaving the forget set
F out of training shifts every point's output: ``Δ(x) = −Σ_{j∈F} W[x, j]`` (per class for a
``logits`` datamodel). Model i's predicted unlearned output is its own output plus that shift:

    Datamodel-Direct   m̂_i(x) = m_i(x) + Δ(x)          (margins; or logits z_i(x) + Δ(x))
    DMM                fine-tune model i to T_i(x) = z_i(x) + Δ(x) on F ∪ its retain sample

(the ``shift`` form of Oracle Matching's targets, with the datamodel in place of oracles:
``core.unlearning.matching.match_logits`` does the fine-tuning). The shift is the same for every
model, so the N predictions keep the originals' natural spread.

Accounting. Datamodel-Direct trains nothing: compute cost 0. DMM: its fine-tuning's
example-gradients over retraining's, as OM. Both *consumed* the M subset models behind the
datamodel, each trained with the recipe's full number of steps (one retraining each):
``consumed_cost = M / N`` retrainings per unlearned model when this run is charged the whole
zoo. The same datamodel serves every forget set, so over k forget sets the share is M / (N·k);
the run's ``info`` records M, N and the datamodel.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch

from core.unlearning.base import (
    ARGMAX,
    POSITIVE_MARGIN_SHARE,
    UnlearnContext,
    UnlearnResult,
    register,
)
from core.unlearning.finetune import timer
from core.unlearning.gradient import BATCH, LR, MOMENTUM
from core.unlearning.params import Range

TOP_K = Annotated[int, Range(0, 100_000, "keep only each target's k largest |weights| (0: all)")]


def _shift(ctx: UnlearnContext, w: np.ndarray, top_k: int = 0) -> np.ndarray:
    """``Δ = −Σ_{j∈F} W'[:, …, j]``: ``(n_points,)`` or ``(n_points, K)``, float32, where
    ``W' = W`` or, with ``top_k`` = k > 0, each target's (and class's) row of W with all but
    its k largest-magnitude weights over the train points set to 0. A dense fit spreads every
    target's error over all train points, and the sum over a forget set adds that noise to
    every target; the largest weights carry most of the signal."""
    from core.attribution.datamodels import forget_shift

    if top_k and top_k < w.shape[-1]:
        kth = -np.partition(-np.abs(w), top_k - 1, axis=-1)[..., top_k - 1 : top_k]
        wf = w[..., np.asarray(ctx.forget, dtype=np.int64)]  # only F's columns are summed
        return (-np.where(np.abs(wf) >= kth, wf, 0.0).sum(-1)).astype(np.float32)
    return forget_shift(w, ctx.forget).astype(np.float32)


def _accounting(ctx: UnlearnContext, dm, n_models: int) -> tuple[float, dict]:
    consumed = dm.n_models / n_models
    info = {"datamodel_id": dm.id, "datamodel_kind": dm.kind, "datamodel_target": dm.target,
            "subset_set_id": dm.subset_set_id, "subset_models": dm.n_models,
            "unlearned_models": n_models, "lds_train": dm.lds_train, "lds_val": dm.lds_val,
            "consumed": "M/N: the subset models (one retraining each) charged to this run's "
                        "N models; shared by every forget set the datamodel serves"}  # fmt: skip
    return consumed, info


@register
def dm_direct(ctx: UnlearnContext, *, top_k: TOP_K = 0) -> UnlearnResult:
    """Datamodel-Direct: each original's outputs plus the datamodel's predicted shift of the
    forget set, ``m̂_i(x) = m_i(x) − Σ_{j∈F} W[x, j]`` (``top_k``: each target's largest
    weights only, see ``_shift``); no training (compute cost 0).

    A margin datamodel shifts the margins, so only margins are known: "correct" is m̂ > 0 and
    the run's accuracy is the share of positive margins, a lower bound of argmax accuracy
    (m̂ > 0 ⇒ argmax = y), recorded as ``info["accuracy_kind"]``. A logits one shifts the
    logits (margins and argmax accuracy from the shifted logits)."""
    from core.zoo.margins import margins_from_logits

    dm, w = ctx.datamodel(None)
    shift = _shift(ctx, w, top_k)
    if dm.target == "margin":
        margins = ctx.original_margins() + shift[None, :]  # (N, n_points)
        correct = margins > 0
    else:
        x, y = ctx.data.all_points()
        with torch.no_grad():
            z = ctx.originals().logits(x).cpu() + torch.from_numpy(shift)  # (N, n_points, K)
        margins = margins_from_logits(z, y).numpy().astype(np.float32)
        correct = (z.argmax(-1) == y).numpy()
    consumed, info = _accounting(ctx, dm, margins.shape[0])
    info["accuracy_kind"] = POSITIVE_MARGIN_SHARE if dm.target == "margin" else ARGMAX
    return UnlearnResult(margins.astype(np.float32), correct, 0.0, consumed_cost=consumed,
                         info=info)  # fmt: skip


dm_direct.predictor = True  # computed, not trained: no budget (``base.uses_budget``)
dm_direct.datamodel_target = None  # a sweep task is given this datamodel (None: the newest)


@register
def dm_matching(
    ctx: UnlearnContext,
    *,
    lr: LR = 0.005,
    batch: BATCH = 64,
    forget_weight: Annotated[float, Range(0.0, 1000.0, "loss weight of forget points")] = 5.0,
    retain_sample: Annotated[int, Range(0, 1_000_000, "retain points matched per model")] = 250,
    momentum: MOMENTUM = 0.9,
    top_k: TOP_K = 0,
) -> UnlearnResult:
    """DMM: Oracle Matching with Datamodel-Direct's logits as targets, no oracle used —
    model i is fine-tuned towards ``z_i(x) − Σ_{j∈F} W[x, :, j]`` (MSE on logits; ``top_k``:
    each target's largest weights only) on F ∪ its retain sample. Needs a ``logits``
    datamodel of the originals' recipe."""
    from core.unlearning.matching import match_logits

    t0 = timer()
    dm, w = ctx.datamodel("logits")
    shift = torch.from_numpy(_shift(ctx, w, top_k)[: ctx.data.n_train])  # (n_train, K)
    ens = ctx.originals()
    with torch.no_grad():
        t_all = ens.logits(ctx.data.x_train) + shift.to(ens.device)  # (N, n_train, K)
    result = match_logits(ctx, ens, t_all, lr, batch, forget_weight, retain_sample, momentum, t0)
    result.consumed_cost, result.info = _accounting(ctx, dm, ens.n_models)
    return result


dm_matching.datamodel_target = "logits"
