"""Device selection: ``cuda`` → ``mps`` → ``cpu``, overridable by argument or ``LAB_DEVICE``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from core.common.errors import ConfigError

if TYPE_CHECKING:  # torch is imported when a device is resolved, not to read the names
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str | None = None) -> torch.device:
    """Return the torch device for ``name`` ("auto", "cpu", "cuda", "cuda:1", "mps").

    ``None`` reads the ``LAB_DEVICE`` environment variable, defaulting to "auto", which picks
    the first available of cuda, mps, cpu. Asking for a device that is not present is an error
    with a clear message rather than a silent fallback.
    """
    import torch

    name = (name or os.environ.get("LAB_DEVICE") or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    base = name.split(":")[0]
    if base not in DEVICE_CHOICES:
        raise ConfigError(f"unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but this machine has no CUDA GPU")
    if base == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError("device 'mps' was asked for but this machine has no Apple GPU")
    return torch.device(name)
