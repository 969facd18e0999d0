"""Margins from logits: a point's margin is ``z_y − logsumexp_{j≠y} z_j``. It is positive
exactly when the label's softmax probability exceeds ½ (``p_y > Σ_{j≠y} p_j``). Every model
set stores its models' margins on every point."""

from __future__ import annotations

import torch

from core.common.errors import ConfigError


def margins_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Margins ``m = z_y - logsumexp_{j != y} z_j`` from logits.

    logits: ``(..., n_points, n_classes)``; labels: ``(n_points,)`` integer classes.
    Returns ``(..., n_points)`` in the logits' dtype (computed in float32 at least).
    """
    if logits.shape[-1] < 2:
        raise ConfigError("margins need at least two classes")
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    y = labels.to(z.device).long()
    idx = y.expand(z.shape[:-1]).unsqueeze(-1)  # (..., n_points, 1)
    z_y = z.gather(-1, idx).squeeze(-1)  # (..., n_points)
    others = z.scatter(-1, idx, float("-inf"))  # true class masked out
    return z_y - torch.logsumexp(others, dim=-1)
