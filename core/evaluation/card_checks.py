"""What ``core.evaluation.reproduce`` checks: a card's shape, and how near a reproduced figure must be.

``check_card`` refuses a malformed card with one ``ConfigError`` naming the field. Figures are
compared in one of two modes:

- **exact** — same device, same thread counts (recorded in the card and set for the rebuild),
  same seeds: the lab's training is deterministic there (``core.zoo.tasks``), so every figure must
  be equal to the last bit, and every model set's margins hash too.
- **tolerance** — another device or thread count (or counts the card does not know: model sets
  are trained on as many threads as are idle, unless ``LAB_THREADS`` fixes them) changes the
  order of floating-point sums, and training amplifies those last-bit differences. The rebuilt
  models are then at most as different from the card's as models retrained from other seeds,
  so a figure may move by what a redraw of the models moves it:

  - a KLoM percentile (KLoM P50 / P95 / P99, floor P95) of a split: by at most that split's
    noise-floor P95 in the card — the KLoM two independent groups of oracles score against
    each other, i.e. the size of KLoM that redrawing N models alone produces;
  - an accuracy a over n points and N models: by at most ``4·√(2·a(1−a)/(N·n)) + 1/(N·n)``,
    four standard deviations of the difference of two independent ensembles' accuracies under
    a binomial model (plus one pair's worth);
  - costs (spent, consumed), seeds, recipe id, forget indices and training masks depend on no
    floating-point sum: they must be equal in both modes.
"""

from __future__ import annotations

import math
import re
from typing import Any

from core.common.errors import ConfigError

_HEX = re.compile(r"[0-9a-f]{64}")
SET_FIELDS = {"n_models": int, "seed_first": int, "chunk_size": int, "kind": str, "role": str,
              "masks_sha256": str, "margins_sha256": str}  # fmt: skip


def field(c: Any, path: str, kind: type | tuple = object, optional: bool = False) -> Any:
    """``c[a][b]…`` for ``path`` ``"a.b…"``, of type ``kind``; a malformed card otherwise."""
    value = c
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            if optional:
                return None
            raise ConfigError(f"malformed card: it has no field {path!r}")
        value = value[part]
    if value is None and optional:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (bool not in kinds and isinstance(value, bool)) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"malformed card: field {path!r} should be {names}, got {value!r:.60}")
    return value


def _set(c: dict, path: str) -> dict:
    entry = field(c, path, dict)
    for name, kind in SET_FIELDS.items():
        field(c, f"{path}.{name}", kind)
    if entry["n_models"] < 1 or entry["chunk_size"] < 1 or entry["seed_first"] < 0:
        raise ConfigError(f"malformed card: {path} has a bad size, chunk size or seed")
    return entry


def check_card(c: Any) -> dict:
    """The card if well formed (fields, types, hashes that match what they hash); else one
    ``ConfigError`` saying what is wrong."""
    from core.evaluation.cards import CARD_FORMAT, CARD_VERSION, SPLITS, sha256_arrays
    from core.zoo.recipe import TrainConfig

    if not isinstance(c, dict) or c.get("card") != CARD_FORMAT:
        raise ConfigError(f'malformed card: not an {CARD_FORMAT} (no "card" field naming one)')
    if field(c, "card_version", int) != CARD_VERSION:
        raise ConfigError(f"malformed card: card_version {c['card_version']!r}, this lab reads "
                          f"{CARD_VERSION}")  # fmt: skip
    kind = field(c, "kind", str)
    if kind not in ("run", "model_set"):
        raise ConfigError(f"malformed card: kind {kind!r} (run or model_set)")
    field(c, "dataset.name", str)
    if not _HEX.fullmatch(field(c, "dataset.sha256", str)):
        raise ConfigError("malformed card: dataset.sha256 is not a sha-256")
    try:
        TrainConfig.from_dict(field(c, "recipe.config", dict))
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"malformed card: its recipe is not one this lab trains: {err}") from None
    field(c, "recipe.id", str)
    field(c, "code.version", str)
    fs = field(c, "forget_set", dict, optional=kind == "model_set")
    if fs is not None:
        idx = field(c, "forget_set.indices", list)
        if not idx or not all(isinstance(i, int) and not isinstance(i, bool) for i in idx):
            raise ConfigError("malformed card: forget_set.indices must be a list of integers")
        import numpy as np

        if sha256_arrays(np.asarray(idx, dtype=np.int64)) != field(c, "forget_set.indices_sha256",
                                                                   str):  # fmt: skip
            raise ConfigError("malformed card: forget_set.indices do not match their sha-256")
        field(c, "forget_set.name", str), field(c, "forget_set.kind", str)
        field(c, "forget_set.params", dict)
    field(c, "environment.device", str)
    if kind == "model_set":
        _set(c, "model_set")
        for name in ("train_accuracy", "val_accuracy"):
            field(c, f"figures.{name}", (int, float))
        return c
    for role in ("originals", "oracles", "floor"):
        _set(c, f"model_sets.{role}")
    for role in ("unlearned", "heldout"):
        if field(c, f"model_sets.{role}", dict, optional=True) is not None:
            _set(c, f"model_sets.{role}")
    if field(c, "datamodel", dict, optional=True) is not None:
        _set(c, "datamodel.subset_set")
        for name, kind_ in (("kind", str), ("target", str), ("n_models", int),
                            ("fraction", (int, float)), ("holdout", (int, float))):  # fmt: skip
            field(c, f"datamodel.{name}", kind_)
    field(c, "method.name", str), field(c, "method.params", dict)
    field(c, "method.budget", (int, float), optional=True)
    field(c, "costs.spent", (int, float)), field(c, "costs.consumed", (int, float))
    for split in SPLITS:
        field(c, f"figures.{split}.count", int)
        for name in ("klom_p50", "klom_p95", "klom_p99", "floor_p95"):
            field(c, f"figures.{split}.{name}", (int, float))
        for name in ("accuracy", "floor_accuracy"):
            field(c, f"figures.{split}.{name}", (int, float), optional=True)
    return c


def accuracy_tolerance(a: float, n_pairs: int) -> float:
    """``4·√(2·a(1−a)/n) + 1/n`` for an accuracy ``a`` over ``n`` (model, point) pairs."""
    n = max(int(n_pairs), 1)
    return 4.0 * math.sqrt(2.0 * a * (1.0 - a) / n) + 1.0 / n


def compare(name: str, card_value, new_value, tolerance: float | None, exact: bool) -> dict:
    """One figure's comparison: equal (bit for bit), within ``tolerance`` (absolute), and
    whether it passes in this mode (``exact``: equal; else within; no tolerance: equal)."""
    equal = card_value == new_value or (card_value is None and new_value is None)
    diff = None
    if isinstance(card_value, int | float) and isinstance(new_value, int | float):
        diff = abs(float(new_value) - float(card_value))
    within = equal or (tolerance is not None and diff is not None and diff <= tolerance)
    ok = equal if (exact or tolerance is None) else within
    return {"figure": name, "card": card_value, "reproduced": new_value, "diff": diff,
            "tolerance": tolerance, "equal": bool(equal), "within": bool(within), "ok": bool(ok)}  # fmt: skip
