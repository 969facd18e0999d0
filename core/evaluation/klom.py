"""KLoM, accuracy and per-split summaries of margins (margins themselves: ``core.zoo.margins``).

Every function here works on ensembles of margins, arrays shaped ``(n_models, n_points)``
(NumPy arrays or torch tensors), where a point's index lives in the global *point space*:
train points ``0 .. n_train-1`` then val points ``n_train .. n_train+n_val-1``.

KLoM (see DESIGN.md) of point j, with P the unlearned models' margins on j and Q the oracle
models' margins on j:

    clip both samples to [-clip, clip]
    lo, hi  = min and max over the union of the two clipped samples
    bins    = ``bins`` equal-width bins on [lo, hi], the last one closed on the right,
              every sample assigned exactly as ``np.histogram(x, bins, range=(lo, hi))`` does
    p, q    = counts_P / n_P, counts_Q / n_Q
    q_b     = max(q_b, eps) where p_b > 0;  q = q / sum(q)
    KLoM_j  = sum_{b: p_b > 0} p_b * ln(p_b / q_b)          (0 when lo == hi)

Rounding: ``klom`` renormalizes only rows a floor changed (q sums to 1 exactly otherwise; its
float sum, 1 − ulp for 4/6 + 1/6 + 1/6, gave identical samples −1.1e-16), so identical samples
score exactly 0; a sum still below 0 is rounding (KL ≥ 0, Gibbs) and set to 0.

``klom`` computes all points at once (no Python loop over points); ``klom_reference`` is the
slow per-point loop over ``np.histogram`` that tests and the benchmark compare it against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from core.common.config import check_float, check_int
from core.common.errors import ConfigError
from core.zoo.margins import margins_from_logits  # noqa: F401  (re-exported)

SPLITS = ("forget", "retain", "val")

# Samples (models × points, both sides) per chunk in ``klom``: bounds peak memory and keeps
# the temporaries cache-sized (2**18 float64 = 2 MiB), faster on CPU than one big chunk.
_KLOM_CHUNK_ELEMENTS = 1 << 18


# ----------------------------------------------------------------------------- input checks

Array = np.ndarray | torch.Tensor


def _as_array(x: Any, name: str) -> Array:
    """A float64 2-D ``(n_models, n_points)`` array, checked.

    NumPy for anything on the CPU (CPU tensors included: single-threaded NumPy is as fast here
    and immune to OpenMP thread oversubscription next to training jobs); a torch tensor on
    its own device for CUDA input. MPS tensors come to the CPU (no float64 there).
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.device.type in ("cpu", "mps"):
            arr: Array = t.cpu().to(torch.float64).numpy()
        else:
            arr = t.to(torch.float64)
    else:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{name} margins must be numbers: {err}") from None
    if arr.ndim != 2:
        raise ConfigError(
            f"{name} margins must be 2-D (n_models, n_points), got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConfigError(f"{name} margins are empty: shape {tuple(arr.shape)}")
    if bool(torch.isnan(arr).any()) if isinstance(arr, torch.Tensor) else np.isnan(arr).any():
        raise ConfigError(f"{name} margins contain NaN values")
    return arr


def _to_numpy(x: Array) -> np.ndarray:
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else x


def _pair(unlearned: Any, oracle: Any) -> tuple[Array, Array]:
    """Both sides checked, same number of points, same backend (torch if either is on a GPU)."""
    p = _as_array(unlearned, "unlearned")
    q = _as_array(oracle, "oracle")
    if p.shape[1] != q.shape[1]:
        raise ConfigError(
            f"unlearned and oracle margins cover different points: "
            f"{p.shape[1]} vs {q.shape[1]} columns"
        )
    if isinstance(p, torch.Tensor) or isinstance(q, torch.Tensor):
        device = p.device if isinstance(p, torch.Tensor) else q.device
        p, q = (torch.as_tensor(a, device=device) for a in (p, q))
    return p, q


def _check_klom_args(bins: int, clip: float, eps: float) -> None:
    check_int("bins", bins, lo=1)
    check_float("clip", clip, lo=0.0, lo_open=True)
    check_float("eps", eps, lo=0.0, hi=1.0, lo_open=True)


# ----------------------------------------------------------------------------- KLoM


@dataclasses.dataclass(frozen=True)
class _Backend:
    """The few array operations that are spelled differently in NumPy and torch.

    ``xp`` (the module itself) supplies the rest: clip, minimum, maximum, amin, amax, where,
    abs, bincount, log — same names and argument order in both.
    """

    xp: Any
    take: Callable[[Any, Any], Any]  # a.reshape(-1)[idx]: gather by flat index
    to_int: Callable[[Any], Any]  # → int64
    to_float: Callable[[Any], Any]  # → float64
    ramp: Callable[[int, Any], Any]  # float64 [0, 1, …, n-1] on the device of `like`
    copy: Callable[[Any], Any]  # a new array
    contig: Callable[[Any], Any]  # row-major (C-contiguous) layout
    cat: Callable[[list[Any]], Any]


_NUMPY = _Backend(
    xp=np,
    take=np.take,
    to_int=lambda a: a.astype(np.int64),
    to_float=lambda a: a.astype(np.float64),
    ramp=lambda n, like: np.arange(n, dtype=np.float64),
    copy=lambda a: np.array(a, order="C"),
    contig=np.ascontiguousarray,
    cat=np.concatenate,
)
_TORCH = _Backend(
    xp=torch,
    take=torch.take,
    to_int=lambda a: a.long(),
    to_float=lambda a: a.double(),
    ramp=lambda n, like: torch.arange(n, dtype=torch.float64, device=like.device),
    copy=lambda a: a.clone(memory_format=torch.contiguous_format),
    contig=lambda a: a.contiguous(),
    cat=torch.cat,
)


def _bin_ids(be: _Backend, x: Any, lo: Any, hi: Any, lower: Any, upper: Any, base: Any) -> Any:
    """Flat bin id ``row * bins + bin`` of every sample, assigned as ``np.histogram`` does.

    x: ``(n, n_models)`` inside [lo, hi]; lo, hi: ``(n, 1)``; lower / upper: ``(n, bins)``
    left / right edges of each bin (numpy's ``linspace`` edges; the last right edge is +inf
    because the last bin is closed); base: ``(n, 1)`` int ``row * bins``.
    numpy computes ``floor((x - lo) / (hi - lo) * bins)``, moves x == hi into the last bin,
    then corrects by one where rounding put x on the wrong side of an edge: down if
    ``x < left edge``, then up if ``x >= right edge``.
    """
    xp, bins = be.xp, lower.shape[1]
    idx = be.to_int(((x - lo) / (hi - lo)) * bins)  # numpy's op order; >= 0 so trunc == floor
    idx = xp.where(idx == bins, idx - 1, idx) + base  # x == hi → last bin; then flat ids
    idx = xp.where(x < be.take(lower, idx), idx - 1, idx)
    return xp.where(x >= be.take(upper, idx), idx + 1, idx)  # (n, n_models)


def _counts(be: _Backend, ids: Any, n: int, bins: int) -> Any:
    """Histogram counts per point from flat bin ids → ``(n, bins)`` float64."""
    return be.to_float(be.xp.bincount(ids.reshape(-1), minlength=n * bins).reshape(n, bins))


def _klom_chunk(be: _Backend, p: Any, q: Any, bins: int, clip: float, eps: float) -> Any:
    """KLoM for one chunk of points: p ``(n, n_p)``, q ``(n, n_q)`` float64 → ``(n,)``."""
    xp = be.xp
    p = xp.clip(p, -clip, clip)
    q = xp.clip(q, -clip, clip)
    lo = xp.minimum(xp.amin(p, 1), xp.amin(q, 1))[:, None]  # (n, 1)
    hi = xp.maximum(xp.amax(p, 1), xp.amax(q, 1))[:, None]  # (n, 1)
    same = lo == hi  # every sample equal: KLoM = 0 (the row runs on a dummy range)
    hi = xp.where(same, lo + 1.0 + xp.abs(lo), hi)
    # np.linspace(lo, hi, bins + 1): arange * step + lo, then the last edge set to hi exactly.
    # The divisor is an array, not a Python number: torch on CUDA turns a division by a
    # scalar into a multiplication by its reciprocal, which moves edges by an ulp.
    step = (hi - lo) / xp.full_like(hi, float(bins))  # (n, 1)
    edges = be.ramp(bins + 1, p)[None, :] * step + lo  # (n, bins+1)
    edges[:, -1:] = hi
    lower = be.copy(edges[:, :-1])  # (n, bins) left edges
    upper = be.copy(edges[:, 1:])  # (n, bins) right edges; the last bin is closed on the right
    upper[:, -1] = float("inf")
    n = p.shape[0]
    base = be.to_int(be.ramp(n, p))[:, None] * bins  # (n, 1)
    pp = _counts(be, _bin_ids(be, p, lo, hi, lower, upper, base), n, bins) / p.shape[1]
    qq = _counts(be, _bin_ids(be, q, lo, hi, lower, upper, base), n, bins) / q.shape[1]
    pos = pp > 0
    floored = pos & (qq < eps)
    qq = xp.where(floored, eps, qq)  # floor q at eps where p > 0
    qq = xp.where(floored.any(1)[:, None], qq / qq.sum(1)[:, None], qq)  # see "Rounding" above
    ratio = xp.where(pos, pp / xp.where(pos, qq, 1.0), 1.0)
    kl = (pp * xp.log(ratio)).sum(1)  # (n,)
    kl = xp.where(kl > 0, kl, 0.0)  # KL >= 0 (Gibbs): a negative sum is rounding
    return xp.where(same[:, 0], 0.0, kl)


def klom(
    unlearned: Any,
    oracle: Any,
    bins: int = 20,
    clip: float = 100.0,
    eps: float = 1e-5,
) -> np.ndarray:
    """KLoM per point, all points at once (vectorized; chunks of points bound the memory).

    unlearned: ``(n_models_p, n_points)``; oracle: ``(n_models_q, n_points)`` (model counts may
    differ), NumPy arrays or torch tensors. CUDA tensors are computed in torch on their device,
    everything else in NumPy; always in float64. Returns ``(n_points,)`` float64 NumPy. See the
    module docstring for the definition; agrees with ``klom_reference`` to ~1e-15, samples on
    bin edges included. Raises ``ConfigError`` on NaN, empty or mismatched input.
    """
    _check_klom_args(bins, clip, eps)
    p, q = _pair(unlearned, oracle)
    be = _TORCH if isinstance(p, torch.Tensor) else _NUMPY
    return _klom_rows(be, p, q, bins, float(clip), float(eps))


def _klom_rows(be: _Backend, p: Any, q: Any, bins: int, clip: float, eps: float) -> np.ndarray:
    """``klom`` on checked float64 input of one backend: p ``(n_p, n)``, q ``(n_q, n)``."""
    p, q = be.contig(p.T), be.contig(q.T)  # (n_points, n_models): one contiguous row per point
    n_points = p.shape[0]
    chunk = max(1, _KLOM_CHUNK_ELEMENTS // (p.shape[1] + q.shape[1]))  # points per chunk
    parts = [
        _klom_chunk(be, p[s : s + chunk], q[s : s + chunk], bins, clip, eps)
        for s in range(0, n_points, chunk)
    ]
    return np.asarray(_to_numpy(be.cat(parts)), dtype=np.float64)


def klom_reference(
    unlearned: Any,
    oracle: Any,
    bins: int = 20,
    clip: float = 100.0,
    eps: float = 1e-5,
) -> np.ndarray:
    """SLOW REFERENCE for tests and ``bench/klom_speed.py``: a plain loop over points.

    The definition, line by line, with ``np.histogram`` — use ``klom`` for real work.
    """
    _check_klom_args(bins, clip, eps)
    big_p, big_q = (_to_numpy(a) for a in _pair(unlearned, oracle))
    out = np.zeros(big_p.shape[1], dtype=np.float64)
    for j in range(big_p.shape[1]):
        xp = np.clip(big_p[:, j], -clip, clip)
        xq = np.clip(big_q[:, j], -clip, clip)
        lo = min(xp.min(), xq.min())
        hi = max(xp.max(), xq.max())
        if lo == hi:
            continue  # every sample equal
        cp, _ = np.histogram(xp, bins=bins, range=(lo, hi))
        cq, _ = np.histogram(xq, bins=bins, range=(lo, hi))
        p = cp / len(xp)
        q = cq / len(xq)
        mask = p > 0
        q = np.where(mask, np.maximum(q, eps), q)
        q = q / q.sum()
        out[j] = np.sum(p[mask] * np.log(p[mask] / q[mask]))
    return out


def split_halves(margins: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split one group of models into two disjoint random halves (rows), for the noise floor.

    margins: ``(n_models, n_points)`` with n_models >= 2. Returns ``(a, b)`` with
    ``n_models // 2`` and ``n_models - n_models // 2`` rows; the split is fixed by ``seed``.
    """
    m = _to_numpy(_as_array(margins, "oracle"))
    if m.shape[0] < 2:
        raise ConfigError(f"need at least 2 models to split into halves, got {m.shape[0]}")
    order = np.random.default_rng(seed).permutation(m.shape[0])
    half = m.shape[0] // 2
    return m[order[:half]], m[order[half:]]


def noise_floor(oracle_a: Any, oracle_b: Any, **klom_kwargs: Any) -> np.ndarray:
    """KLoM between two disjoint groups of oracle models, ``(n_points,)``.

    What a perfect unlearner scores with this many models: ``klom(oracle_a, oracle_b)``.
    """
    return klom(oracle_a, oracle_b, **klom_kwargs)


# ----------------------------------------------------------------------------- splits, summaries


def split_indices(n_train: int, n_val: int, forget_indices: Any) -> dict[str, np.ndarray]:
    """Global point-space indices of each split: ``forget``, ``retain``, ``val`` (int64, sorted).

    Train points are ``0..n_train-1`` (retain = train minus forget), val points are
    ``n_train..n_train+n_val-1``.
    """
    check_int("n_train", n_train, lo=1)
    check_int("n_val", n_val, lo=0)
    forget = np.unique(np.asarray(forget_indices, dtype=np.int64).reshape(-1))
    if forget.size and (forget[0] < 0 or forget[-1] >= n_train):
        bad = forget[0] if forget[0] < 0 else forget[-1]
        raise ConfigError(f"forget index {bad} is outside the train set [0, {n_train})")
    keep = np.ones(n_train, dtype=bool)
    keep[forget] = False
    return {
        "forget": forget,
        "retain": np.flatnonzero(keep).astype(np.int64),
        "val": np.arange(n_train, n_train + n_val, dtype=np.int64),
    }


def _split_points(splits: dict[str, Any], n_points: int) -> dict[str, np.ndarray]:
    out = {}
    for name, idx in splits.items():
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (n_points,):
                raise ConfigError(
                    f"mask for split {name!r} has shape {idx.shape}, expected ({n_points},)"
                )
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n_points):
            raise ConfigError(f"split {name!r} has indices outside [0, {n_points})")
        out[name] = idx
    return out


def split_summary(values: Any, splits: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per split: ``p50``, ``p95``, ``p99`` (``np.percentile``, linear), ``mean`` and ``count``.

    values: ``(n_points,)`` per-point values (e.g. KLoM) in point space; splits: name → point
    indices (int array) or boolean mask ``(n_points,)``. An empty split gives count 0 and NaN
    statistics.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)  # (n_points,)
    out: dict[str, dict[str, float]] = {}
    for name, idx in _split_points(splits, v.size).items():
        x = v[idx]
        if x.size == 0:
            nan = float("nan")
            out[name] = {"p50": nan, "p95": nan, "p99": nan, "mean": nan, "count": 0}
            continue
        p50, p95, p99 = np.percentile(x, [50, 95, 99])
        out[name] = {
            "p50": float(p50),
            "p95": float(p95),
            "p99": float(p99),
            "mean": float(x.mean()),
            "count": int(x.size),
        }
    return out


def _correct(correct: Any) -> np.ndarray:
    c = np.asarray(correct)
    if c.ndim != 2 or c.dtype != bool:
        raise ConfigError(f"correctness must be a bool array (n_models, n_points), got {c.shape}")
    return c


def accuracy_from_correct(correct: Any) -> np.ndarray:
    """Argmax accuracy of each model, ``(n_models,)``, from bool correctness ``(n_models,
    n_points)``; not the share of margins > 0 (label probability above ½, a stricter test)."""
    return _correct(correct).mean(axis=1)


def split_accuracy(correct: Any, splits: dict[str, Any]) -> dict[str, float]:
    """Argmax accuracy on each split: the share of (model, point) pairs of the split whose
    argmax prediction is the label (NaN for an empty split)."""
    c = _correct(correct)
    out = {}
    for name, idx in _split_points(splits, c.shape[1]).items():
        out[name] = float(c[:, idx].mean()) if idx.size else float("nan")
    return out


def margin_gap(unlearned: Any, oracle: Any) -> np.ndarray:
    """Signed gap of mean margins per point, ``mean(unlearned) - mean(oracle)``, ``(n_points,)``.

    Positive ⇒ under-unlearning: the unlearned models are still more confident on the point
    than models that never saw it. Negative ⇒ over-unlearning: less confident than the oracle
    (a tell-tale sign an attacker can exploit).
    """
    p, q = _pair(unlearned, oracle)
    return np.asarray(_to_numpy(p.mean(0) - q.mean(0)), dtype=np.float64)
