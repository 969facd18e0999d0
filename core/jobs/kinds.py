"""What a background job can do: each kind is a thin call into the engine.

Each kind declares its parameters; ``jobs.submit`` checks them (required keys, types, ranges,
device names, ids that exist, no unknown keys) before a row is written. The engine modules are
imported inside the job functions, so listing jobs does not load torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.common.config import check_int
from core.common.errors import ConfigError, NotFoundError
from core.jobs.registry import JobContext, job_kind
from core.store.db import Store

MAX_MODELS = 100_000  # as core.zoo.build.create_model_set
MAX_EPOCHS = 10_000  # as core.zoo.recipe.TrainConfig

# a parameter check: (store, name, value) -> None, raising ConfigError
Check = Callable[[Store, str, Any], None]


def _row_id(table: str, what: str) -> Check:
    def check(store: Store, name: str, value: Any) -> None:
        check_int(name, value, 1)
        found = store.query_df(f"SELECT 1 FROM {table} WHERE id = ?", [value])
        if found.empty:
            raise NotFoundError(f"there is no {what} with id {value}")

    return check


def _models(store: Store, name: str, value: Any) -> None:
    check_int(name, value, 1, MAX_MODELS)


def _epochs(store: Store, name: str, value: Any) -> None:
    if value is not None:
        check_int(name, value, 1, MAX_EPOCHS)


def _device(store: Store, name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a device name such as 'cpu' or 'cuda', got {value!r}")
    from core.common.device import resolve_device

    resolve_device(value)  # unknown or absent devices are refused with a clear message


def _method(store: Store, name: str, value: Any) -> None:
    from core.unlearning import METHODS

    if not isinstance(value, str) or value not in METHODS:
        raise ConfigError(f"unknown {name} {value!r}: choose one of {', '.join(sorted(METHODS))}")


def params_check(
    kind: str, required: dict[str, Check], optional: dict[str, Check]
) -> Callable[[Store, dict], None]:
    """A ``check(store, params)`` for ``kind``: every required key, no unknown key, each valid."""

    def check(store: Store, params: dict) -> None:
        known = {**required, **optional}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown parameter {unknown[0]!r} for a {kind} job: it takes {', '.join(known)}"
            )
        missing = [k for k in required if k not in params]
        if missing:
            raise ConfigError(f"a {kind} job needs the parameter {missing[0]!r}")
        for key, value in params.items():
            known[key](store, key, value)

    return check


def _flag(store: Store, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


_SET = {"set_id": _row_id("model_sets", "model set")}
_ORIGINALS = {"original_set_id": _row_id("model_sets", "model set")}
_FORGET = {"forget_set_id": _row_id("forget_sets", "forget set")}


@job_kind("build_models", params_check("build_models", _SET, {"device": _device}))
def _build_models(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: set_id (created by the caller), device."""
    from core.forget.store import get_forget_set
    from core.zoo.build import build_model_set, get_model_set

    ms = get_model_set(store, int(params["set_id"]))
    forget = get_forget_set(store, ms.forget_set_id)[0].indices if ms.forget_set_id else None
    build_model_set(
        store, ms.id, forget=forget, device=params.get("device"),
        progress=ctx.progress, should_stop=ctx.should_stop,
    )  # fmt: skip
    return {"set_id": ms.id}


@job_kind(
    "oracles",
    params_check("oracles", _FORGET, {"models": _models, "device": _device, **_ORIGINALS}),
)
def _oracles(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: forget_set_id, original_set_id (default: the newest originals), models (must
    equal the originals'), device."""
    from core.evaluation.run import build_oracles

    main, floor = build_oracles(
        store, int(params["forget_set_id"]), params.get("models"), params.get("device"),
        progress=ctx.progress, should_stop=ctx.should_stop,
        original_set_id=params.get("original_set_id"),
    )  # fmt: skip
    return {"oracle_set_id": main, "floor_set_id": floor}


def _ready(store: Store, params: dict) -> None:
    """The oracles (and the datamodel of a datamodel method) that the evaluation needs."""
    from core.jobs.prerequisites import check_ready

    check_ready(
        store, int(params["forget_set_id"]), params["method"], params.get("original_set_id")
    )


@job_kind(
    "evaluate",
    params_check(
        "evaluate", {**_FORGET, "method": _method},
        {"device": _device, "recompute": _flag, **_ORIGINALS},
    ),
    ready=_ready,
)  # fmt: skip
def _evaluate(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: forget_set_id, method, original_set_id (default: the oracles' originals),
    recompute (default false: a stored evaluation is reused), device."""
    from core.evaluation.run import evaluate

    ctx.progress(0.1, f"evaluating {params['method']}")
    run_id = evaluate(
        store, int(params["forget_set_id"]), params["method"], params.get("device"),
        original_set_id=params.get("original_set_id"), recompute=params.get("recompute", False),
    )  # fmt: skip
    return {"run_id": run_id}


@job_kind(
    "demo", params_check("demo", {}, {"models": _models, "device": _device, "epochs": _epochs})
)
def _demo(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: models, device, epochs (optional)."""
    from core.evaluation.run import DEFAULT_MODELS
    from core.presets.demo import quick_demo

    return quick_demo(
        store, int(params.get("models", DEFAULT_MODELS)), params.get("device"),
        progress=ctx.progress, should_stop=ctx.should_stop, epochs=params.get("epochs"),
    )  # fmt: skip


def _grid(store: Store, name: str, value: Any) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{name} must be a non-empty list of grid points (dicts)")
    if len(value) > 500:
        raise ConfigError(f"{name} has {len(value)} points; at most 500 per job")


@job_kind(
    "unlearn",
    params_check(
        "unlearn", {**_FORGET, "method": _method, "grid": _grid},
        {"device": _device, **_ORIGINALS},
    ),
    ready=_ready,
)  # fmt: skip
def _unlearn(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: forget_set_id, method, grid (a list of {budget, hyperparameter: value}),
    original_set_id, device. Each point is a stored evaluation; a rerun reuses them."""
    from core.common.errors import Diverged
    from core.evaluation.run import evaluate
    from core.unlearning import method_params

    grid = params["grid"]
    diverged: list[dict] = []
    for point in grid:  # every point is checked before the first runs
        method_params(params["method"], {k: v for k, v in point.items() if k != "budget"})
    runs = []
    for k, point in enumerate(grid):
        if ctx.should_stop():
            from core.zoo.ensemble import Cancelled

            raise Cancelled("cancelled between grid points")
        ctx.progress(k / len(grid), f"{params['method']}: point {k + 1} of {len(grid)}")
        try:
            runs.append(evaluate(
                store, int(params["forget_set_id"]), params["method"], params.get("device"),
                original_set_id=params.get("original_set_id"), **point,
            ))  # fmt: skip
        except Diverged as err:  # recorded as a diverged run; the grid goes on
            diverged.append({"run_id": err.run_id, **point, "message": str(err)})
    return {"run_ids": runs, "diverged": diverged, "forget_set_id": int(params["forget_set_id"])}


def _choice(*options: str) -> Check:
    def check(store: Store, name: str, value: Any) -> None:
        if value not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")

    return check


def _fraction(store: Store, name: str, value: Any) -> None:
    from core.common.config import check_float

    check_float(name, value, 0.0, 1.0, lo_open=True, hi_open=True)


def _dm_models(store: Store, name: str, value: Any) -> None:
    check_int(name, value, 20, MAX_MODELS)


@job_kind(
    "datamodel",
    params_check(
        "datamodel", {},
        {"dataset": _choice("digits", "cifar10"), "models": _dm_models, "fraction": _fraction,
         "kind": _choice("ridge", "lasso"), "target": _choice("margin", "logits"),
         "device": _device, **_ORIGINALS},
    ),
)  # fmt: skip
def _datamodel(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: dataset (digits), models M (2000), fraction α (0.5), kind (ridge | lasso),
    target (margin | logits), original_set_id (default: the newest originals), device. Trains
    the subset models it lacks (resumable), fits, stores; returns the datamodel id and LDS."""
    from core.attribution.datamodels import get_datamodel
    from core.attribution.fit import DEFAULT_FRACTION, DEFAULT_MODELS, fit_datamodel

    dm_id = fit_datamodel(
        store, params.get("dataset", "digits"), original_set_id=params.get("original_set_id"),
        n_models=int(params.get("models", DEFAULT_MODELS)),
        fraction=float(params.get("fraction", DEFAULT_FRACTION)),
        kind=params.get("kind", "ridge"), target=params.get("target", "margin"),
        device=params.get("device"), progress=ctx.progress, should_stop=ctx.should_stop,
    )  # fmt: skip
    dm = get_datamodel(store, dm_id)
    return {"datamodel_id": dm_id, "lds_train": dm.lds_train, "lds_val": dm.lds_val}


def _directory(store: Store, name: str, value: Any) -> None:
    from pathlib import Path

    if not isinstance(value, str) or not value.strip() or not Path(value).expanduser().is_dir():
        raise ConfigError(f"{name} {value!r}: not a directory (an EasyDUB dataset directory)")


def _ids(store: Store, name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{name} must be a non-empty list of forget-set ids, got {value!r}")
    for v in value:
        check_int(name, v, 0)


@job_kind(
    "import_easydub",
    params_check("import_easydub", {"dir": _directory},
                 {"forget_sets": _ids, "models": _models, "weights": _flag,
                  "dataset": _choice("cifar10", "digits")}),
)  # fmt: skip
def _import_easydub(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: dir, forget_sets (default: every one there), models N (default: the most the
    directory holds), weights (load the checkpoints), dataset (cifar10; digits for a lab's
    export). One batch, all or nothing."""
    import os
    from pathlib import Path

    from core.interchange.easydub import import_easydub

    root = Path(params["dir"]).expanduser()
    os.environ.setdefault("LAB_DATA_ROOT", str(root / "data"))  # the job's evaluations, if any
    ctx.progress(0.0, "reading EasyDUB's files")
    return import_easydub(
        store, root, forget_sets=params.get("forget_sets"), n_models=params.get("models"),
        weights=bool(params.get("weights", False)), dataset=params.get("dataset", "cifar10"),
        progress=lambda done, total: ctx.progress(0.9 * done / total,
                                                  f"read {done} of {total} files"),
    )  # fmt: skip
