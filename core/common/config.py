"""Typed configuration: frozen dataclasses, validated on creation, saved as JSON with results.

One flat list of defaults per study (nanoGPT style). ``to_json`` / ``from_dict`` give the exact
config back from the store, so every stored result can be re-run.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypeVar

from core.common.errors import ConfigError

T = TypeVar("T", bound="Config")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: JSON round-trip and range checks shared by every config."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:  # overridden by subclasses
        """Raise ``ConfigError`` with a user-facing message if a field is out of range."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build from a dict, ignoring unknown keys (configs stored by older code versions)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> None:
    """Require an integer (not a bool, not a float) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{name} must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name} must be at most {hi}, got {value}")


def check_float(
    name: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Require a finite real number in the interval given (closed unless ``*_open``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ConfigError(
            f"{name} must be {'greater than' if lo_open else 'at least'} {lo}, got {value}"
        )
    if hi is not None and (value >= hi if hi_open else value > hi):
        raise ConfigError(
            f"{name} must be {'less than' if hi_open else 'at most'} {hi}, got {value}"
        )
