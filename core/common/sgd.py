"""Stochastic gradient descent with momentum, in place, on a list of parameters.

The update is ``torch.optim.SGD``'s (dampening 0): with ``g = ∇θ + wd·θ``,

    v ← g                     (first step)
    v ← μ·v + g               (later steps)
    θ ← θ − lr·(g + μ·v)      (Nesterov)   or   θ ← θ − lr·v   (heavy ball; plain SGD if μ = 0)

done with the same tensor operations in the same order, so the parameters match
``torch.optim.SGD``'s bit for bit (``tests/common/test_sgd.py``). It exists because constructing a
``torch.optim`` optimizer imports ``torch._dynamo`` on first use — about 3 s of every CLI
command and job worker that fine-tunes, for a loop of four lines.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class SGD:
    """SGD with momentum, weight decay and optional Nesterov on ``params``; ``lr`` may change
    between steps (``opt.lr = …``). Parameters without a gradient are skipped, as in torch."""

    def __init__(
        self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
        weight_decay: float = 0.0, nesterov: bool = False,
    ) -> None:  # fmt: skip
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs a momentum > 0")
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay, self.nesterov = (
            lr,
            momentum,
            weight_decay,
            nesterov,
        )
        self.bufs: list[Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        """Drop every gradient (``set_to_none``)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.momentum:
                v = self.bufs[i]
                if v is None:
                    v = self.bufs[i] = torch.clone(g).detach()
                else:
                    v.mul_(self.momentum).add_(g)
                g = g.add(v, alpha=self.momentum) if self.nesterov else v
            p.add_(g, alpha=-self.lr)
