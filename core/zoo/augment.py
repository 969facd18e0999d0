"""Data augmentation on the device, per model and per example: random flip and translation.

For a batch ``x (N, B, C, H, W)`` (model n's B examples), each example of model n draws from
model n's own generator (the one that drew its initial weights and its data order), on the
CPU, so the draws — and the trained weights — do not depend on the device or on which other
models share the call:

    flip  ~ Bernoulli(½)                  (left–right mirror)
    dy, dx ~ Uniform{−t, …, t}            (t = ``translate`` pixels)

and the output is the (mirrored) image shifted by (dy, dx) inside its padding of t pixels
(``reflect``: mirrored edges, as airbench; ``zeros``: zero-valued pixels, as torchvision's
RandomCrop(padding=t)): ``out[i, j] = pad(x)[i + t + dy, j + t + dx]`` with the mirror applied
first. Computed as two ``gather`` over the padded batch, one pass on the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PADS = ("reflect", "zeros")


def draw(gens: list[torch.Generator], batch: int, translate: int) -> tuple[Tensor, Tensor]:
    """Each model's draws for one batch: ``flip (N, B)`` bool and ``shift (N, B, 2)`` int64
    in ``[0, 2t]`` (dy + t, dx + t), from ``gens[n]`` in that order, on the CPU."""
    flips, shifts = [], []
    for g in gens:
        flips.append(torch.rand(batch, generator=g) < 0.5)
        shifts.append(torch.randint(0, 2 * translate + 1, (batch, 2), generator=g))
    return torch.stack(flips), torch.stack(shifts)


def flip_translate(x: Tensor, flip: Tensor, shift: Tensor, translate: int, pad: str) -> Tensor:
    """Apply the draws of ``draw`` to ``x (N, B, C, H, W)``; returns a new ``(N, B, C, H, W)``.

    Source indices in the padded image ``(H + 2t, W + 2t)``: row ``i + sy``; column ``j + sx``,
    or ``W + 2t − 1 − j − sx`` when mirrored (the mirror of a padded image is the padded mirror,
    for either padding).
    """
    if pad not in PADS:
        raise ValueError(f"unknown padding {pad!r}: {', '.join(PADS)}")
    n, b, c, h, w = x.shape
    t, dev = int(translate), x.device
    flip, shift = flip.to(dev), shift.to(dev)
    if t:
        mode = "reflect" if pad == "reflect" else "constant"
        xp = F.pad(x.reshape(n * b, c, h, w), (t, t, t, t), mode=mode).view(n, b, c, h + 2 * t, -1)
    else:
        xp = x
    wp = w + 2 * t
    rows = torch.arange(h, device=dev) + shift[..., 0:1]  # (N, B, H)
    j = torch.arange(w, device=dev)
    cols = torch.where(flip[..., None], wp - 1 - j - shift[..., 1:2], j + shift[..., 1:2])
    xr = xp.gather(3, rows[:, :, None, :, None].expand(n, b, c, h, wp))  # (N, B, C, H, Wp)
    return xr.gather(4, cols[:, :, None, None, :].expand(n, b, c, h, w))  # (N, B, C, H, W)


def augment(x: Tensor, gens: list[torch.Generator], translate: int, pad: str) -> Tensor:
    """Draw (``draw``) and apply (``flip_translate``) one batch's augmentation."""
    flip, shift = draw(gens, x.shape[1], translate)
    return flip_translate(x, flip, shift, translate, pad)
