"""DEL: localized unlearning — reset the weights that matter most to the forget set, retrain
only those (and the final layer) on the retain set.

Per model: each weight's criticality is ``|θ ⊙ ∇θ L_F|`` with the forget loss's gradient summed
over forget batches; an output channel (a row of a weight tensor: ``p[i, c, …]``; for a 1-D
parameter each entry) scores the mean of its top 10% criticalities. The candidates are the
channels of every layer below the final one (``candidates="below_head"``: the head ``fc`` is
retrained anyway, so resetting it localizes nothing; ``"all"``, the older behaviour, ranks the
head's rows too — they score highest). Candidate channels are taken in descending score until
they hold ``fraction`` of the candidates' weights (so the share reset is the requested fraction
plus at most one channel), and their weights are set to their initial values: the model's own
initial weights, rebuilt from its seed (``reset_to="initial"``, as DEL's authors do), or fresh
draws of the architecture's initialisation (``"fresh"``). Fine-tuning on R then updates only
those weights and the final layer. The run records, per parameter, the share of its weights
reset (mean over models), and the overall shares below the head and of all weights.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch

from core.unlearning.base import UnlearnContext, UnlearnResult, register
from core.unlearning.finetune import budget_steps, finish, model_loss, seeds, sgd, stream, timer
from core.unlearning.gradient import BATCH, LR, MOMENTUM, _setup
from core.unlearning.params import Choice, Range

HEAD = "fc."  # the final layer's parameters (``core.zoo.models.Net.fc``): always retrained
FRACTION = Annotated[
    float, Range(0.0, 1.0, "share of the candidate weights reset (below the head by default)",
                 lo_open=True)
]  # fmt: skip
CANDIDATES = Annotated[
    str, Choice(("below_head", "all"), "which layers may be reset: all but the final layer "
                "(always retrained), or every layer (the older behaviour)")
]  # fmt: skip
RESET_TO = Annotated[
    str, Choice(("initial", "fresh"), "reset to each model's own initial weights (rebuilt from "
                "its seed, as DEL's authors do) or to fresh draws of the initialisation")
]  # fmt: skip


def criticality(ens, x, y, forget, batch: int) -> list[torch.Tensor]:
    """``|θ ⊙ Σ_batches ∇θ L_F|`` per parameter, ``(N, …)`` each."""
    ens.net.eval()
    for p in ens.parameters():
        p.grad = None
    n = ens.n_models
    for s in range(0, len(forget), batch):
        idx = torch.tensor(forget[s : s + batch], device=x.device)
        z = ens.net(x[idx].unsqueeze(0).expand(n, *x[idx].shape))  # (N, b, K)
        model_loss(z, y[idx].unsqueeze(0).expand(n, -1)).backward()
    out = [(p.detach() * p.grad).abs() for p in ens.parameters()]
    for p in ens.parameters():
        p.grad = None
    return out


def reset_masks(
    scores: list[torch.Tensor],
    fraction: float,
    top: float = 0.1,
    candidate: list[bool] | None = None,
) -> list[torch.Tensor]:
    """Per parameter, ``(N, …)`` bool: the weights of each model's highest-scoring channels,
    whole channels, until they hold ``fraction`` of the weights of the candidate parameters
    (``candidate[j]``: parameter j may be reset; default all). A channel scores the mean of
    its top ``top`` share of criticalities; non-candidates' masks are all False."""
    n = scores[0].shape[0]
    candidate = [True] * len(scores) if candidate is None else candidate
    chan_scores, chan_sizes, where = [], [], []
    for j, s in enumerate(scores):
        if not candidate[j]:
            continue
        rows = s.reshape(n, s.shape[1], -1) if s.dim() >= 3 else s.reshape(n, -1, 1)  # (N, C, m)
        k = max(1, math.ceil(top * rows.shape[2]))
        chan_scores.append(rows.topk(k, dim=2).values.mean(2))  # (N, C)
        chan_sizes.append(torch.full((rows.shape[1],), rows.shape[2]))
        where += [(j, c) for c in range(rows.shape[1])]
    score = torch.cat(chan_scores, 1).cpu()  # (N, all channels); chosen on the CPU
    size = torch.cat(chan_sizes)  # (all channels,)
    total = int(size.sum())
    masks = [torch.zeros(s.shape, dtype=torch.bool) for s in scores]
    for i in range(n):
        order = torch.argsort(score[i], descending=True)
        taken = torch.cumsum(size[order], 0)
        k = int(torch.searchsorted(taken, torch.tensor(fraction * total)).item()) + 1
        for ch in order[: min(k, len(order))].tolist():
            j, c = where[ch]
            if masks[j].dim() >= 3:
                masks[j][i, c] = True
            else:
                masks[j].reshape(n, -1)[i, c] = True
    return [m.to(s.device) for m, s in zip(masks, scores, strict=True)]


def reset_shares(names: list[str], masks: list[torch.Tensor]) -> dict:
    """What a run records: per parameter the share of its weights reset (mean over models),
    the share of the weights below the head and of all weights (per model, mean over models:
    the models are the same size)."""
    below = [m for name, m in zip(names, masks, strict=True) if not name.startswith(HEAD)]

    def share(ms: list[torch.Tensor]) -> float:
        return float(sum(int(m.sum()) for m in ms) / sum(m.numel() for m in ms)) if ms else 0.0

    return {"reset_share": {name: share([m]) for name, m in zip(names, masks, strict=True)},
            "reset_below_head": share(below), "reset_total": share(masks)}  # fmt: skip


def del_(
    ctx: UnlearnContext,
    *,
    fraction: FRACTION = 0.3,
    candidates: CANDIDATES = "below_head",
    reset_to: RESET_TO = "initial",
    lr: LR = 0.01,
    batch: BATCH = 64,
    momentum: MOMENTUM = 0.9,
) -> UnlearnResult:
    """DEL: reset the forget set's most critical channels, retrain them (and the last layer)."""
    from core.zoo.models import initialised

    t0 = timer()
    ens, dev, x, y = _setup(ctx)
    names = [name for name, _ in ens.net.named_parameters()]
    allowed = [candidates == "all" or not name.startswith(HEAD) for name in names]
    masks = reset_masks(criticality(ens, x, y, ctx.forget, batch), fraction, candidate=allowed)
    s = seeds(ctx, ens.n_models)
    from_seeds = ctx.original_seeds() if reset_to == "initial" else s
    gens = [torch.Generator().manual_seed(int(v)) for v in from_seeds]
    start = initialised(ens.arch, ens.input_shape, ens.num_classes, gens)
    with torch.no_grad():
        for p, q, m in zip(ens.parameters(), start.parameters(), masks, strict=True):
            p[m] = q.to(dev)[m]
    grads = [m | name.startswith(HEAD) for m, name in zip(masks, names, strict=True)]
    steps = budget_steps(ctx, batch)
    r = stream(ctx.retain, s, steps, batch, dev)

    def loss(t: int) -> torch.Tensor:
        idx = next(r)
        return model_loss(ens.forward_train(x[idx]), y[idx])

    sgd(ens, steps, loss, lr, momentum, grad_masks=grads)
    result = finish(ctx, ens, steps * batch + len(ctx.forget), t0)  # + the scoring pass over F
    result.info = reset_shares(names, masks)
    return result


del_.__name__ = "del"  # the method's name ("del" is a Python keyword)
register(del_)
