"""The Unlearn page's grid: budgets × the values of one swept hyperparameter, each checked."""

from __future__ import annotations

from core.common.config import check_float
from core.unlearning import method_params, uses_budget


def unlearn_grid(method: str, values: dict, sweep: str, budgets: str) -> list[dict]:
    """One grid point per budget (none for a method that does not train) and swept value;
    ``ConfigError`` for a bad hyperparameter or budget, ``ValueError`` for budgets that are not
    numbers. Every point is checked before anything starts."""
    bs = [float(b) for b in budgets.split(",") if b.strip()] if uses_budget(method) else [None]
    for b in bs:
        if b is not None:
            check_float("budget", b, 0.0, 10.0, lo_open=True)
    swept = [v.strip() for v in str(values[sweep]).split(",")] if sweep != "—" else [None]
    grid = []
    for b in bs:
        for v in swept:
            point = {**values, **({sweep: v} if v is not None else {})}
            method_params(method, point)  # refuse a bad value before anything starts
            grid.append({**({"budget": b} if b is not None else {}), **point})
    return grid
