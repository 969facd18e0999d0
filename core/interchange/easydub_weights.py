"""EasyDUB's pretrained ResNet-9 checkpoints, loaded strictly into the lab's stacked ensemble.

A checkpoint ``models/DS/pretrain/resnet9/id_{m}_epoch_23.pt`` is the ``state_dict`` of
EasyDUB's ResNet-9, an ``nn.Sequential`` whose parameter names are positions: blocks ``0``,
``1``, ``3``, ``6`` are conv-BN-ReLU (``.0`` the conv, ``.1`` the batch norm), ``2`` and ``5``
residual blocks of two of them (``.module.0``, ``.module.1``), ``9`` the bias-free head; keys
may carry a ``model.`` or ``module.`` prefix (a wrapped model). Each name maps to one of
``core.zoo.models.ResNet9EasyDUB``; model m's tensors become row m of the stacked state. Loading is
strict: a key missing or extra, a shape or dtype other than the architecture's, a value not
finite, or a file ``torch.load(weights_only=True)`` refuses is one ``ConfigError`` naming the
file. Nothing is unpickled beyond tensors and plain containers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from core.common.errors import ConfigError
from core.zoo.models import build

ARCH = "resnet9_easydub"
# EasyDUB's conv-BN block prefixes → the lab's module names (core.zoo.models.ResNet9EasyDUB)
BLOCKS = {"0": "c1", "1": "c2", "2.module.0": "res1.a", "2.module.1": "res1.b", "3": "c3",
          "5.module.0": "res2.a", "5.module.1": "res2.b", "6": "c4"}  # fmt: skip
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
PREFIXES = ("module.", "model.")


def name_map() -> dict[str, str]:
    """EasyDUB's parameter and buffer names → the lab's, one to one."""
    out = {"9.weight": "fc.weight"}
    for theirs, ours in BLOCKS.items():
        out[f"{theirs}.0.weight"] = f"{ours}.conv.weight"
        out.update({f"{theirs}.1.{b}": f"{ours}.bn.{b}" for b in BN_KEYS})
    return out


def _strip(key: str) -> str:
    while key.startswith(PREFIXES):
        key = key.split(".", 1)[1]
    return key


def read_checkpoint(path: Path, rel: str, spec: dict[str, Tensor]) -> dict[str, Tensor]:
    """One checkpoint as the lab's single-model state (names of ``spec``, its shapes and
    dtypes), or ``ConfigError`` naming ``rel``."""
    if not path.is_file():
        raise ConfigError(f"{rel}: missing (--weights needs a checkpoint for every model)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (an unpickler error of any kind: one line)
        raise ConfigError(f"{rel}: not a checkpoint of tensors torch loads safely "
                          f"({type(err).__name__})") from None  # fmt: skip
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ConfigError(f"{rel}: not a state dict (a mapping of names to tensors)")
    names = name_map()
    theirs = {_strip(str(k)): v for k, v in sd.items()}
    missing = sorted(set(names) - set(theirs))
    extra = sorted(set(theirs) - set(names))
    if missing or extra:
        raise ConfigError(
            f"{rel}: not EasyDUB's ResNet-9 (missing {missing[:3] or 'none'}, unexpected "
            f"{extra[:3] or 'none'})"
        )
    out = {}
    for k, v in theirs.items():
        want = spec[names[k]]
        if tuple(v.shape) != tuple(want.shape):
            raise ConfigError(f"{rel}: {k} has shape {tuple(v.shape)}; EasyDUB's ResNet-9 has "
                              f"{tuple(want.shape)}")  # fmt: skip
        if v.dtype.is_floating_point != want.dtype.is_floating_point:
            raise ConfigError(f"{rel}: {k} is {v.dtype}, expected {want.dtype}")
        if v.dtype.is_floating_point and not torch.isfinite(v).all():
            raise ConfigError(f"{rel}: {k} holds values that are not finite")
        out[names[k]] = v.to(want.dtype)
    return out


def load_stacked(
    paths: list[tuple[Path, str]], input_shape: tuple[int, ...], num_classes: int,
    tick: Callable[[], None] | None = None,
) -> dict[str, Tensor]:  # fmt: skip
    """The stacked state of N checkpoints ``(path, name)``: every tensor ``(N, *single)``;
    checked by a strict ``load_state_dict`` into the N-model build."""
    spec = build(ARCH, input_shape, num_classes).state_dict()
    if set(name_map().values()) != set(spec):  # the map and the architecture must agree
        raise RuntimeError(
            "core.interchange.easydub_weights.name_map does not cover ResNet9EasyDUB"
        )
    states = []
    for path, rel in paths:
        states.append(read_checkpoint(path, rel, spec))
        if tick is not None:
            tick()
    stacked = {k: torch.stack([s[k] for s in states]) for k in spec}
    build(ARCH, input_shape, num_classes, len(states)).load_state_dict(stacked, strict=True)
    return stacked
