"""Forget sets: which training points an unlearning run must forget.

A ``ForgetSet`` is a named, sorted, duplicate-free array of TRAIN indices (``0..n_train-1``)
plus how it was built (``kind`` and JSON-able ``params``), so it can be stored and rebuilt.
Every constructor here is a pure function of its arguments (no store access) and validates
its result with ``validate_indices``; problems raise ``ConfigError`` with a message fit for the
UI. The digits presets mirror the paper's CIFAR-10 family: random sets of several sizes, part
of one class, and a tight nearest-neighbour cluster.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import numpy as np

from core.common.config import check_float, check_int
from core.common.errors import ConfigError

KINDS = ("random", "class", "knn_pixel", "knn_feature", "manual", "upload", "datamodel_pc",
         "knn_datamodel")  # the last two: core.forget.datamodel_sets  # fmt: skip
INDEX_COLUMNS = ("index", "indices", "idx")
PRESET_NAMES = ("random-10", "random-50", "random-200", "class3-half", "knn-pixel-20")
QUICK_PRESETS = ("random-10", "random-50", "class3-half")
DIGITS_KNN_ANCHOR = 0  # train index of the pixel-space cluster's centre in the digits preset

MAX_NAME_LENGTH = 80
_MAX_DIGITS = 40  # longer numbers are not read at all (Python refuses past 4300 digits)
MAX_LISTED = 8  # an error about bad indices names this many of them, then counts the rest

_INT_RE = re.compile(r"[+-]?[0-9]+")  # ASCII digits: int() also takes "٣" and "３"


@dataclasses.dataclass(frozen=True, eq=False)
class ForgetSet:
    """A validated forget set. ``indices``: ``(k,)`` sorted unique int64 train indices (read-only)."""

    name: str
    kind: str
    params: dict[str, Any]
    indices: np.ndarray
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("a forget set needs a non-empty name")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown forget-set kind {self.kind!r}: one of {', '.join(KINDS)}")
        idx = np.array(self.indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ConfigError("a forget set cannot be empty")
        if idx.size > 1 and np.any(idx[1:] <= idx[:-1]):
            raise ConfigError("forget-set indices must be sorted and unique (use validate_indices)")
        idx.setflags(write=False)
        object.__setattr__(self, "indices", idx)
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "params", dict(self.params))

    @property
    def size(self) -> int:
        return int(self.indices.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ForgetSet):
            return NotImplemented
        return (self.name, self.kind, self.params, self.warnings) == (
            other.name,
            other.kind,
            other.params,
            other.warnings,
        ) and np.array_equal(self.indices, other.indices)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking payload: not hashable

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (indices as a list of ints)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "params": self.params,
            "indices": [int(i) for i in self.indices],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForgetSet:
        """Inverse of ``to_dict``; re-checks the indices against ``params['n_train']``."""
        try:
            name, kind, params, raw = data["name"], data["kind"], data["params"], data["indices"]
        except (KeyError, TypeError) as err:
            raise ConfigError(f"stored forget set is missing field {err}") from None
        n_train = params.get("n_train") if isinstance(params, dict) else None
        if isinstance(n_train, int):
            idx, _ = validate_indices(raw, n_train)
        else:
            idx = np.asarray(raw, dtype=np.int64)
        return cls(name, kind, params, idx, tuple(data.get("warnings", ())))


# ----------------------------------------------------------------------------- validation


def check_name(name: Any) -> str:
    """A forget-set name, stripped: 1 to ``MAX_NAME_LENGTH`` characters, no control characters,
    and no undecodable bytes (lone surrogates: the database stores UTF-8 only)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("a forget set needs a non-empty name")
    name = name.strip()
    undecodable = next((c for c in name if unicodedata.category(c) == "Cs"), None)
    if undecodable is not None:  # bytes that are not UTF-8, as Python keeps them from argv
        raise ConfigError(
            f"a forget-set name must be UTF-8 text; it holds bytes that are not "
            f"(found {ascii(undecodable)})"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"a forget-set name may have at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None:
        raise ConfigError(
            f"a forget-set name cannot contain control or invisible characters "
            f"(found U+{ord(bad):04X}); use letters, digits, spaces and punctuation"
        )
    return name


def _short(value: Any) -> str:
    """``repr`` of a value, cut to a length fit for a one-line message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:30] + "…" + text[-5:]


def _index_text(value: int) -> str:
    text = str(value)
    return f"{text[:12]}…({len(text)} digits)" if len(text) > _MAX_DIGITS else text


def _outside(value: int, n_train: int) -> ConfigError:
    return ConfigError(
        f"index {_index_text(value)} is outside the training set: "
        f"valid indices are 0 to {n_train - 1}"
    )


def _bad_entries(problems: list[str], n_bad: int, n_train: int) -> ConfigError:
    """One error naming every bad entry (the first ``MAX_LISTED`` of them and how many more):
    ``problems`` are ``item i: …`` texts in input order, ``n_bad`` their total count."""
    listed = "; ".join(problems[:MAX_LISTED])
    more = f"; and {n_bad - MAX_LISTED} more" if n_bad > MAX_LISTED else ""
    return ConfigError(
        f"{n_bad} entries are not train indices (valid indices are 0 to {n_train - 1}): "
        f"{listed}{more}"
    )


def _as_int(value: Any, where: str) -> int:
    """One index as a Python int: ints, numpy ints and integral strings; not bools or floats."""
    if isinstance(value, bool | np.bool_):
        raise ConfigError(f"{where}: {value!r} is a boolean, not an index")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            if len(text) > _MAX_DIGITS:
                raise ConfigError(
                    f"{where}: a {len(text)}-digit number is far too large to be a train index"
                )
            return int(text)
        raise ConfigError(f"{where}: {_short(value)} is not an integer")
    if isinstance(value, float | np.floating):
        raise ConfigError(
            f"{where}: {_short(value)} is not an integer (indices must be whole numbers)"
        )
    raise ConfigError(f"{where}: {_short(value)} ({type(value).__name__}) is not an integer")


def _checked_ints(items: list[Any], n_train: int) -> list[int]:
    """``items`` as ints in ``[0, n_train)``, or one ``ConfigError`` naming every bad entry:
    the single problem's own message when there is one, else ``_bad_entries``."""
    ints, problems, n_bad = [], [], 0
    for i, v in enumerate(items):
        try:
            value = _as_int(v, f"item {i + 1}")
        except ConfigError as err:
            problem, single = str(err), err
        else:
            ints.append(value)
            if 0 <= value < n_train:
                continue
            single = _outside(value, n_train)
            problem = f"item {i + 1}: {_index_text(value)} is out of range"
        n_bad += 1
        if len(problems) < MAX_LISTED:
            problems.append(problem)
    if n_bad == 1:
        raise single
    if n_bad:
        raise _bad_entries(problems, n_bad, n_train)
    return ints


def validate_indices(raw: Iterable[Any], n_train: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Check and normalize raw train indices → (sorted unique int64 ``(k,)``, warnings).

    Rules: integers only (Python/numpy ints and integral strings; bools, floats like 2.5 and
    other strings are rejected), each in ``[0, n_train)``, duplicates removed with a warning,
    not empty and not the whole training set. Violations raise ``ConfigError``; bad entries
    are all named in one message (the first ``MAX_LISTED``, then a count of the rest).
    """
    check_int("n_train", n_train, lo=1)
    if isinstance(raw, str | bytes):
        raise ConfigError("indices must be a list of integers, not a single string")
    arr = raw if isinstance(raw, np.ndarray) else None
    if arr is not None and arr.dtype.kind in "iu":
        flat = arr.reshape(-1)
        bad = np.flatnonzero((flat < 0) | (flat >= n_train))  # before any cast: uint64 too
        if bad.size == 1:
            raise _outside(int(flat[bad[0]]), n_train)
        if bad.size:
            problems = [f"item {i + 1}: {_index_text(int(flat[i]))} is out of range"
                        for i in bad[:MAX_LISTED]]  # fmt: skip
            raise _bad_entries(problems, int(bad.size), n_train)
        values = flat.astype(np.int64)
    else:
        try:
            items = (
                list(np.asarray(raw, dtype=object).reshape(-1)) if arr is not None else list(raw)
            )
        except TypeError:
            raise ConfigError(f"indices must be a list of integers, got {_short(raw)}") from None
        ints = items if all(type(v) is int for v in items) else None  # the common case, fast
        if ints is None or (ints and (min(ints) < 0 or max(ints) >= n_train)):
            ints = _checked_ints(items, n_train)  # as Python ints: 10**30 is fine
        values = np.array(ints, dtype=np.int64)
    if values.size == 0:
        raise ConfigError("the forget set is empty: give at least one index")
    unique = np.unique(values)
    warnings: tuple[str, ...] = ()
    n_dup = values.size - unique.size
    if n_dup:
        warnings = (f"removed {n_dup} duplicate {'index' if n_dup == 1 else 'indices'}",)
    if unique.size == n_train:
        raise ConfigError(
            f"the forget set covers the whole training set ({n_train} points): "
            "nothing would be left to retain"
        )
    return unique, warnings


# ----------------------------------------------------------------------------- constructors


def _plain(value: Any) -> Any:
    """NumPy integers as Python ints (so ``check_int`` and JSON accept them)."""
    return int(value) if isinstance(value, np.integer) else value


def random_forget_set(n_train: int, k: int, seed: int, name: str | None = None) -> ForgetSet:
    """``k`` train points drawn uniformly without replacement, fixed by ``seed``."""
    n_train, k, seed = _plain(n_train), _plain(k), _plain(seed)
    check_int("n_train", n_train, lo=2)
    check_int("k", k, lo=1, hi=n_train - 1)
    check_int("seed", seed, lo=0)
    idx = np.random.default_rng(seed).choice(n_train, size=k, replace=False)
    idx, warns = validate_indices(idx, n_train)
    params = {"n_train": n_train, "k": k, "seed": seed}
    return ForgetSet(name or f"random-{k}-seed{seed}", "random", params, idx, warns)


def class_forget_set(
    labels: np.ndarray,
    cls: int,
    k: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    name: str | None = None,
) -> ForgetSet:
    """Part of one class: ``k`` (or ``round(fraction · class size)``, at least 1) random points
    with label ``cls``, fixed by ``seed``. labels: ``(n_train,)`` integer classes.
    """
    y = np.asarray(labels).reshape(-1)  # (n_train,)
    cls, k, seed = _plain(cls), _plain(k), _plain(seed)
    check_int("class", cls, lo=0)
    check_int("seed", seed, lo=0)
    if (k is None) == (fraction is None):
        raise ConfigError("give exactly one of k (a count) or fraction (of the class)")
    members = np.flatnonzero(y == cls)
    if members.size == 0:
        raise ConfigError(f"class {cls} has no training points")
    if fraction is not None:
        check_float("fraction", fraction, lo=0.0, hi=1.0, lo_open=True)
        k = max(1, int(np.floor(fraction * members.size + 0.5)))
    else:
        check_int("k", k, lo=1)
        if k > members.size:
            raise ConfigError(
                f"k={k} is more than class {cls} has ({members.size} training points)"
            )
    pick = np.random.default_rng(seed).choice(members, size=k, replace=False)
    idx, warns = validate_indices(pick, y.size)
    params: dict[str, Any] = {"n_train": int(y.size), "class": int(cls), "seed": seed, "k": int(k)}
    if fraction is not None:
        params["fraction"] = float(fraction)
    default = f"class{cls}-{'all' if k == members.size else k}"
    return ForgetSet(name or default, "class", params, idx, warns)


def knn_forget_set(
    points: np.ndarray, anchor: int, k: int, space: str = "pixel", name: str | None = None
) -> ForgetSet:
    """The anchor plus its ``k - 1`` nearest train neighbours by Euclidean distance.

    points: ``(n_train, d)`` flattened pixels or model features. Order: the anchor first, then
    by ``||x_i - x_anchor||²`` ascending, ties broken by the smaller index.
    """
    if space not in ("pixel", "feature"):
        raise ConfigError(f"space must be 'pixel' or 'feature', got {space!r}")
    x = np.asarray(points)
    if x.ndim != 2:
        x = x.reshape(x.shape[0], -1) if x.ndim > 2 else x
    if x.ndim != 2 or x.shape[0] < 2:
        raise ConfigError(f"points must be (n_train, d) with n_train >= 2, got shape {x.shape}")
    n = x.shape[0]
    anchor, k = _plain(anchor), _plain(k)
    check_int("anchor", anchor, lo=0, hi=n - 1)
    check_int("k", k, lo=1, hi=n - 1)
    centre = x[anchor].astype(np.float64)  # (d,)
    d2 = np.empty(n, dtype=np.float64)  # (n_train,)
    for s in range(0, n, 4096):  # chunks: CIFAR pixels would not fit in float64 at once
        diff = x[s : s + 4096].astype(np.float64) - centre
        d2[s : s + 4096] = np.einsum("ij,ij->i", diff, diff)
    if np.isnan(d2).any():
        raise ConfigError("points contain NaN values")
    d2[anchor] = -1.0  # the anchor always comes first, even among exact duplicates
    order = np.argsort(d2, kind="stable")  # stable ⇒ ties by index
    idx, warns = validate_indices(order[:k], n)
    params = {"n_train": n, "anchor": int(anchor), "k": k, "space": space}
    return ForgetSet(name or f"knn-{space}-{k}-a{anchor}", f"knn_{space}", params, idx, warns)


def manual_forget_set(indices: Iterable[Any], n_train: int, name: str | None = None) -> ForgetSet:
    """A forget set typed or picked by hand."""
    idx, warns = validate_indices(indices, n_train)
    return ForgetSet(name or f"manual-{idx.size}", "manual", {"n_train": n_train}, idx, warns)


# ----------------------------------------------------------------------------- presets


def digits_presets(labels: np.ndarray, pixels: np.ndarray) -> list[ForgetSet]:
    """The digits family, in ``PRESET_NAMES`` order, mirroring the paper's CIFAR-10 sets.

    random-10/50/200 (seeds 0/1/2), half of class 3 (seed 0), and the 20 nearest neighbours of
    train point ``DIGITS_KNN_ANCHOR`` in pixel space. labels ``(n_train,)``, pixels
    ``(n_train, ...)`` (flattened here).
    """
    y = np.asarray(labels).reshape(-1)
    x = np.asarray(pixels).reshape(y.size, -1)  # (n_train, d)
    n = y.size
    return [
        random_forget_set(n, 10, seed=0, name="random-10"),
        random_forget_set(n, 50, seed=1, name="random-50"),
        random_forget_set(n, 200, seed=2, name="random-200"),
        class_forget_set(y, 3, fraction=0.5, seed=0, name="class3-half"),
        knn_forget_set(x, DIGITS_KNN_ANCHOR, 20, space="pixel", name="knn-pixel-20"),
    ]


def digits_preset(name: str, labels: np.ndarray, pixels: np.ndarray) -> ForgetSet:
    """One preset by name (one of ``PRESET_NAMES``)."""
    if name not in PRESET_NAMES:
        raise ConfigError(f"unknown preset {name!r}: one of {', '.join(PRESET_NAMES)}")
    return next(fs for fs in digits_presets(labels, pixels) if fs.name == name)
