"""What a background job can do: each kind is a thin call into the engine."""

from __future__ import annotations

from .demo import quick_demo
from .evaluation import build_oracles, evaluate
from .forget_store import get_forget_set
from .jobs import JobContext, job_kind
from .store import Store
from .zoo import build_model_set, get_model_set


@job_kind("build_models")
def _build_models(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: set_id (created by the caller), device."""
    ms = get_model_set(store, int(params["set_id"]))
    forget = get_forget_set(store, ms.forget_set_id)[0].indices if ms.forget_set_id else None
    build_model_set(
        store, ms.id, forget=forget, device=params.get("device"),
        progress=ctx.progress, should_stop=ctx.should_stop,
    )  # fmt: skip
    return {"set_id": ms.id}


@job_kind("oracles")
def _oracles(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: forget_set_id, models, device."""
    main, floor = build_oracles(
        store, int(params["forget_set_id"]), int(params.get("models", 100)), params.get("device"),
        progress=ctx.progress, should_stop=ctx.should_stop,
    )  # fmt: skip
    return {"oracle_set_id": main, "floor_set_id": floor}


@job_kind("evaluate")
def _evaluate(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: forget_set_id, method, device."""
    ctx.progress(0.1, f"evaluating {params['method']}")
    run_id = evaluate(store, int(params["forget_set_id"]), params["method"], params.get("device"))
    return {"run_id": run_id}


@job_kind("demo")
def _demo(store: Store, params: dict, ctx: JobContext) -> dict:
    """params: models, device, epochs (optional)."""
    return quick_demo(
        store, int(params.get("models", 100)), params.get("device"),
        progress=ctx.progress, should_stop=ctx.should_stop, epochs=params.get("epochs"),
    )  # fmt: skip
