"""Hyperparameters of unlearning methods, read from the methods' signatures.

A method is ``def name(ctx, *, lr: Annotated[float, Range(1e-5, 1.0, "…")] = 0.01, …)``: every
keyword-only parameter with a default and a ``Range`` (numbers) or ``Choice`` (strings) is a
hyperparameter. The same spec builds the dashboard's form and parses the CLI's
``--param key=value`` strings; ``parse`` refuses unknown names, wrong types and values out of
range with one message naming the parameter and what is allowed.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.common.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """A number in [lo, hi] (``lo_open``: strictly above lo)."""

    lo: float
    hi: float
    help: str = ""
    lo_open: bool = False


@dataclass(frozen=True)
class Choice:
    """One of a few strings."""

    options: tuple[str, ...]
    help: str = ""


@dataclass(frozen=True)
class Param:
    """One hyperparameter: name, Python type (int, float, str), default and its limits."""

    name: str
    kind: type
    default: Any
    limits: Range | Choice

    @property
    def help(self) -> str:
        return self.limits.help

    def describe(self) -> str:
        if isinstance(self.limits, Choice):
            return f"one of {', '.join(self.limits.options)}"
        lo = "(" if self.limits.lo_open else "["
        kind = {"int": "a whole number", "float": "a number"}.get(
            self.kind.__name__, self.kind.__name__
        )
        return f"{kind} in {lo}{self.limits.lo:g}, {self.limits.hi:g}]"

    def check(self, value: Any) -> Any:
        """``value`` (a string from the CLI, or a number/str from a form) as this type, in range."""
        if isinstance(self.limits, Choice):
            if not isinstance(value, str) or value not in self.limits.options:
                raise ConfigError(f"{self.name} must be {self.describe()}, got {value!r}")
            return value
        try:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, str):
                value = float(value) if self.kind is float else int(value.strip())
            if self.kind is int and (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = self.kind(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{self.name} must be {self.describe()}, got {value!r}") from None
        r = self.limits
        below = value <= r.lo if r.lo_open else value < r.lo
        if not math.isfinite(float(value)) or below or value > r.hi:
            raise ConfigError(f"{self.name} must be {self.describe()}, got {value!r}")
        return value


def params_of(fn: Callable) -> list[Param]:
    """The hyperparameters of a method: its keyword-only parameters, in order."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        hint = hints.get(p.name)
        meta = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Range | Choice)]
        if not meta or p.default is inspect.Parameter.empty:
            raise TypeError(f"{fn.__name__}: hyperparameter {p.name} needs a default and a Range")
        kind = typing.get_args(hint)[0]
        out.append(Param(p.name, kind, p.default, meta[0]))
    return out


def parse(method: str, spec: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """Every hyperparameter of ``method``: the defaults overridden by ``values``, checked."""
    known = {p.name: p for p in spec}
    unknown = sorted(set(values) - set(known))
    if unknown:
        names = ", ".join(known) or "none"
        raise ConfigError(f"{method} has no parameter {unknown[0]!r} (its parameters: {names})")
    return {
        name: p.check(values[name]) if name in values else p.default for name, p in known.items()
    }
