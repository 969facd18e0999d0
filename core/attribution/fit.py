"""Fit, score and store a datamodel for a set of originals.

Of the M subset models (first M of a subset set of the originals' recipe), the last
``h = max(2, round(holdout·M))`` are held out *for the reported LDS only*; the first
``M − h`` are the fit models. λ is chosen among a grid by the mean LDS of all targets on a
second held-out block (the last h of the fit models, while fitting on the rest); the stored
weights are then fitted on all ``M − h`` fit models with that λ, and their LDS is measured on
the untouched last h. The LDS-vs-M curve refits the chosen λ on growing prefixes of the fit
models and scores each on the same last h.

For a ``logits`` datamodel (T = n_points·K outputs, one per class and point) the LDS is that
of the margins computed from the predicted logits, against the actual margins.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import torch

from core import code_version
from core.attribution import regression as R
from core.attribution.defaults import (
    DEFAULT_MODELS,
    check_fit_settings,
    few_models_note,
    models_needed,
)
from core.attribution.subsets import check_recipe, ensure_subsets, subset_outputs
from core.common.errors import ConfigError
from core.store.db import Store


def few_models_warning(n_models: int, n_train: int) -> str | None:
    """``few_models_note`` (the measured LDS against M on digits) with the ``--models`` to use
    (``models_needed(n_train)``), when ``n_models`` are too few for a readable datamodel."""
    note = few_models_note(n_models, n_train)
    return note and f"{note}; use --models {models_needed(n_train)} or more"


DEFAULT_FRACTION = 0.5
DEFAULT_HOLDOUT = 0.1
LASSO_SCALES = (0.3, 0.1, 0.03, 0.01)  # α / the median over targets of max_j |x̃_jᵀỹ_t| / M
LASSO_SAMPLE = 100  # targets the ℓ1 penalty is chosen on (every target is fitted with it)
Progress = Callable[[float, str], None]


def _scorer(
    target: str, labels: torch.Tensor, n_points: int
) -> Callable[[torch.Tensor], np.ndarray]:
    """Outputs ``(n, T)`` → margins ``(n, n_points)`` (identity for margin datamodels)."""
    from core.zoo.margins import margins_from_logits

    if target == "margin":
        return lambda p: np.asarray(p.cpu() if isinstance(p, torch.Tensor) else p)

    def to_margins(p) -> np.ndarray:
        z = torch.as_tensor(p).reshape(p.shape[0], n_points, -1)
        return margins_from_logits(z, labels.to(z.device)).cpu().numpy()

    return to_margins


def _lds(rho: np.ndarray, n_train: int) -> dict:
    return {"lds_train": R.mean_score(rho[:n_train]), "lds_val": R.mean_score(rho[n_train:])}


def _json(obj) -> str:
    """JSON with NaN (no target with a defined LDS) written as null."""

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return None if isinstance(v, float) and not np.isfinite(v) else v

    return json.dumps(clean(obj), allow_nan=False)


def fit_datamodel(
    store: Store,
    dataset: str = "digits",
    *,
    original_set_id: int | None = None,
    n_models: int = DEFAULT_MODELS,
    fraction: float = DEFAULT_FRACTION,
    kind: str = "ridge",
    target: str = "margin",
    holdout: float = DEFAULT_HOLDOUT,
    subset_set_id: int | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor=None,
) -> int:
    """Train the missing subset models (originals' recipe), fit a datamodel of every point's
    ``target`` (margin | logits) from the masks, score it (LDS), store it; returns its id.

    ``kind``: ``ridge`` (closed form, λ on a grid) or ``lasso`` (ℓ1, margins only).
    ``executor``: where the subset models train (``core.zoo.executors``; default here). On a Ray
    executor they train on the device its tasks get (a GPU when ``gpus_per_task`` > 0, else
    the CPU); ``device`` is where this process reads their outputs and fits.
    """
    from core.common.device import resolve_device
    from core.zoo.data import load_dataset
    from core.zoo.model_sets import get_model_set, originals_for

    check_fit_settings(kind, target, n_models, fraction, holdout)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    orig = get_model_set(store, originals_for(store, dataset, original_set_id))
    if subset_set_id is None:
        sub = None if progress is None else (lambda f, m: progress(0.8 * f, m))  # noqa: E731
        here = executor is None or executor.name == "local"
        subset_set_id = ensure_subsets(store, orig.train, n_models, fraction,
                                       device=str(dev) if here else None, progress=sub,
                                       should_stop=should_stop, executor=executor)  # fmt: skip
    subset = get_model_set(store, subset_set_id)
    check_recipe(subset, orig)
    fraction = float(subset.fraction)
    if progress is not None:
        progress(0.8, f"datamodel: reading {n_models} subset models' outputs ({target})")
    x, y = subset_outputs(store, subset_set_id, n_models, target, str(dev))
    x = x.astype(np.float64)  # (M, n_train) 0/1
    data = load_dataset(orig.dataset, "cpu")
    n_train, n_points, k = data.n_train, data.n_train + data.n_val, data.num_classes
    score = _scorer(target, data.all_points()[1], n_points)
    y2 = y.reshape(len(y), -1)  # (M, T)
    actual = score(torch.as_tensor(y2))  # (M, n_points) margins
    h = max(2, int(round(holdout * n_models)))
    n_fit = n_models - h
    if n_fit - h < 2:
        raise ConfigError(f"{n_models} models leave too few to fit after holding out {2 * h}")
    fit_args = (x, y2, actual, n_fit, h, score, n_train, dev, progress)
    if kind == "ridge":
        lam, grid, w, b, rho, curve = _ridge(*fit_args)
    else:
        lam, grid, w, b, rho, curve = _lasso(*fit_args)
    shape = (n_points, k, n_train) if target == "logits" else (n_points, n_train)
    w = np.ascontiguousarray(w.T.reshape(shape[0], -1, n_train).reshape(shape), dtype=np.float32)
    b = np.asarray(b, dtype=np.float32).reshape(shape[:-1])
    lds = _lds(rho, n_train)
    config = {"holdout": holdout, "grid": grid, "fraction": fraction,
              "lds_median_train": float(np.nanmedian(rho[:n_train])),
              "lds_median_val": float(np.nanmedian(rho[n_train:]))}  # fmt: skip
    files: list[str] = []
    try:  # the files first, then the row in the same transaction; files go if the row fails
        with store.transaction() as con:
            dm_id = int(con.execute("SELECT nextval('datamodel_id_seq')").fetchone()[0])
            for name, arr in (("weights", w), ("bias", b), ("lds", np.asarray(rho, np.float64))):
                files.append(store.save_array(f"datamodels/{dm_id}.{name}.npy", arr))
            con.execute(
                f"""INSERT INTO datamodels ({R_COLUMNS}) VALUES ({", ".join("?" * 25)})""",
                [dm_id, orig.dataset, subset_set_id, orig.id, orig.recipe_id, n_models, n_fit,
                 h, fraction, kind, target, float(lam), n_train, n_points, k,
                 *(None if np.isnan(v) else v for v in (lds["lds_train"], lds["lds_val"])),
                 _json(curve), *files, _json(config), code_version(), str(dev),
                 time.perf_counter() - t0],
            )  # fmt: skip
    except BaseException:
        for f in files:
            store.file_path(f).unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(1.0, f"datamodel {dm_id}: LDS train {lds['lds_train']:.3f}")
    return dm_id


R_COLUMNS = (
    "id, dataset, subset_set_id, original_set_id, recipe_id, n_models, n_fit, n_heldout, "
    "fraction, kind, target, lam, n_train, n_targets, num_classes, lds_train, lds_val, "
    "lds_curve, weights_file, bias_file, lds_file, config, code_version, device, wall_time_s"
)


def _prefixes(n_fit: int) -> list[int]:
    return sorted({m for m in (n_fit // 8, n_fit // 4, n_fit // 2, n_fit) if m >= 10})


def _ridge(x, y2, actual, n_fit, h, score, n_train, dev, progress, with_curve: bool = True):
    """λ scale by LDS on the inner block, final fit, test LDS per target, LDS-vs-M curve
    (``with_curve=False``: the final fit alone, for timing)."""
    inner = slice(0, n_fit - h)
    val = slice(n_fit - h, n_fit)
    test = slice(n_fit, n_fit + h)
    basis = R.ridge_basis(x[inner], y2[inner], dev)
    grid = []
    for s in R.LAMBDA_SCALES:
        rho = R.spearman_columns(score(basis.predict(x[val], s)), actual[val])
        grid.append({"scale": s, "lam": basis.lam(s), "lds": R.mean_score(rho)})
    best = max(grid, key=lambda g: -np.inf if np.isnan(g["lds"]) else g["lds"])["scale"]
    if progress is not None:
        progress(0.9, f"datamodel: λ scale {best:g} chosen; fitting {n_fit} models")
    curve = []
    for m in _prefixes(n_fit) if with_curve else [n_fit]:
        bm = R.ridge_basis(x[:m], y2[:m], dev)
        rho = R.spearman_columns(score(bm.predict(x[test], best)), actual[test])
        curve.append({"m": m, **_lds(rho, n_train)})
        if m == n_fit:
            w, b = bm.weights(best)
            lam = bm.lam(best)
    return lam, grid, w.cpu().numpy(), b.cpu().numpy(), rho, curve


def _lasso(x, y2, actual, n_fit, h, score, n_train, dev, progress):
    """α chosen on a sample of targets by LDS on the inner block; every target is fitted with
    it. The LDS-vs-M curve uses the sample's targets only (``config.grid`` says so)."""
    inner = slice(0, n_fit - h)
    val = slice(n_fit - h, n_fit)
    test = slice(n_fit, n_fit + h)
    n_t = y2.shape[1]
    sample = np.unique(np.linspace(0, n_t - 1, min(LASSO_SAMPLE, n_t)).astype(int))
    xc = x[inner] - x[inner].mean(0)
    yc = y2[inner][:, sample] - y2[inner][:, sample].mean(0)
    unit = float(np.median(np.abs(xc.T.astype(np.float64) @ yc).max(0))) / len(xc)
    grid = []
    for s in LASSO_SCALES:
        w, b = R.lasso_fit(x[inner], y2[inner][:, sample], s * unit)
        rho = R.spearman_columns(x[val] @ w + b, actual[val][:, sample])
        grid.append({"scale": s, "alpha": s * unit, "lds": R.mean_score(rho),
                     "targets": "sample", "n_sample": int(len(sample))})  # fmt: skip
    best = max(grid, key=lambda g: -np.inf if np.isnan(g["lds"]) else g["lds"])
    alpha = best["alpha"]
    if progress is not None:
        progress(0.9, f"datamodel: ℓ1 α {alpha:.3g} chosen; fitting {n_t} targets")
    w, b = R.lasso_fit(x[:n_fit], y2[:n_fit], alpha)
    rho = R.spearman_columns(x[test] @ w + b, actual[test])
    curve = []
    for m in _prefixes(n_fit)[:-1]:
        wm, bm = R.lasso_fit(x[:m], y2[:m][:, sample], alpha)
        r = np.full(n_t, np.nan)
        r[sample] = R.spearman_columns(x[test] @ wm + bm, actual[test][:, sample])
        curve.append({"m": m, "targets": "sample", **_lds(r, n_train)})
    curve.append({"m": n_fit, **_lds(rho, n_train)})
    return alpha, grid, w, b, rho, curve
