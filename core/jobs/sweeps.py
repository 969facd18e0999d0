"""Unlearning sweeps: every grid point of one method here, or each as a Ray task.

``run_sweep`` yields ``(grid index, run id | Diverged)`` as each point is stored. With the
local executor it is ``core.evaluation.run.evaluate`` point after point. With a ``RayExecutor``
this process stays the only writer:

1. every point is planned as locally (checked; a stored run or recorded divergence is
   reused unless ``recompute``); do-nothing and retrain, which only read stored margins, run
   here;
2. the inputs every point shares (``core.jobs.sweep_tasks.SweepInputs``: the originals' weights,
   margins and correctness, Oracle Matching's held-out group — built first, on the cluster —
   or the datamodel's weights) go into Ray's object store once;
3. each point that trains gets its ``unlearned`` model set created here, in grid order, so its
   id and seeds are those a local sweep gives it; then all points run at once as tasks;
4. each result is stored as it arrives: the models (``core.zoo.build.store_state``), then the run
   scored and audited (``core.evaluation.run.store_scored``), or a divergence recorded — the same
   rows and array files as a local sweep of the same seeds (on the same number of threads:
   a task uses one per CPU it asks for).

A task that raises a ``LabError`` (bad input) ends the sweep; the points stored before it stay,
and the model sets created for the unfinished ones are deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial

import numpy as np

from core.common.errors import Diverged
from core.evaluation.run import (
    MARGINS_ONLY,
    Planned,
    evaluate,
    plan,
    record_divergence,
    store_scored,
)
from core.jobs.sweep_tasks import PointSpec, SweepInputs, unlearn_point
from core.store.db import Store
from core.unlearning import METHODS, UnlearnContext, UnlearnResult, uses_budget
from core.zoo.executors import Executor, LocalExecutor

Outcome = int | Diverged


def run_sweep(
    store: Store,
    forget_set_id: int,
    method: str,
    grid: list[dict],
    device: str | None = None,
    executor: Executor | None = None,
    *,
    original_set_id: int | None = None,
    recompute: bool = False,
) -> Iterator[tuple[int, Outcome]]:
    """Run ``method`` at every point of ``grid`` (``evaluate`` keywords: ``budget`` and
    hyperparameters); yields ``(index, run id or Diverged)`` as each is stored."""
    kw = dict(original_set_id=original_set_id, recompute=recompute)
    if executor is None or isinstance(executor, LocalExecutor) or method in MARGINS_ONLY:
        for i, point in enumerate(grid):
            try:
                yield i, evaluate(store, forget_set_id, method, device, **kw, **point)
            except Diverged as err:
                yield i, err
        return
    planned: dict[int, Planned] = {}
    for i, point in enumerate(grid):
        try:
            p = plan(store, forget_set_id, method, device, executor=executor, **kw, **point)
        except Diverged as err:
            yield i, err
            continue
        if isinstance(p, int):
            yield i, p
        else:
            planned[i] = p
    if planned:
        yield from _on_cluster(store, planned, executor)


def _inputs(store: Store, p: Planned, data, executor: Executor) -> SweepInputs:
    """What every point reads, from the store (the held-out oracles built first if missing)."""
    from core.zoo.build import get_model_set, load_correct, load_ensemble, load_margins

    orig_id = p.config["original_set_id"]
    ms = get_model_set(store, orig_id)
    fn = METHODS[p.method]
    ctx = UnlearnContext(store, data, p.forget, orig_id, p.device, forget_set_id=p.forget_set_id)
    heldout = datamodel = None
    if getattr(fn, "needs_heldout", False):
        heldout = load_ensemble(store, ctx.heldout_set(executor), "cpu").state_dict()
    if hasattr(fn, "datamodel_target"):
        datamodel = ctx.datamodel(fn.datamodel_target)
    return SweepInputs(
        p.dataset, np.asarray(p.forget), p.forget_set_id, orig_id, ms.train.to_dict(), ms.arch,
        tuple(data.meta()["input_shape"]), data.num_classes,
        load_ensemble(store, orig_id, "cpu").state_dict(), load_margins(store, orig_id),
        load_correct(store, orig_id), heldout, datamodel, original_seed=ms.seed,
    )  # fmt: skip


def _on_cluster(
    store: Store, planned: dict[int, Planned], executor: Executor
) -> Iterator[tuple[int, Outcome]]:
    from core.zoo.build import create_model_set, delete_model_set, get_model_set, store_state
    from core.zoo.data import load_dataset

    first = next(iter(planned.values()))
    data = load_dataset(first.dataset, "cpu")
    inputs = _inputs(store, first, data, executor)
    n_models = len(inputs.margins)
    recipe = get_model_set(store, inputs.original_set_id).train
    order, specs, made = list(planned), [], {}
    try:
        threads = getattr(executor, "cpus_per_task", None)  # a task's torch and training threads
        for i in order:  # grid order: the ids and seeds a local sweep gives these sets
            p, set_id = planned[i], None
            p.config.update(threads=threads, lab_threads=threads)  # as ``evaluate`` records them
            if uses_budget(p.method):
                set_id = create_model_set(
                    store, "unlearned", recipe, n_models,
                    forget_set_id=p.forget_set_id, base_set_id=inputs.original_set_id,
                    device=p.device, data=data, chunk_size=n_models, executor=executor,
                )  # fmt: skip
                made[i] = set_id
            seed = None if set_id is None else get_model_set(store, set_id).seed
            specs.append(PointSpec(p.method, p.params, float(p.budget or 0.0), set_id, seed,
                                   p.device))  # fmt: skip
        for k, res in executor.run(partial(unlearn_point, inputs=inputs), specs):
            i = order[k]
            p, set_id = planned[i], made.pop(i, None)
            t0 = time.perf_counter() - res.wall_s  # the run's wall time: the task's + storing
            if res.diverged is not None:
                if set_id is not None:
                    delete_model_set(store, set_id)
                yield i, record_divergence(store, p, res.wall_s, res.diverged)
                continue
            if res.state is not None:
                store_state(store, set_id, res.state, res.margins, res.correct, res.masks, data,
                            res.device, res.wall_s)  # fmt: skip
            elif set_id is not None:
                delete_model_set(store, set_id)  # the method trained nothing after all
                set_id = None
            result = UnlearnResult(res.margins, res.correct, res.compute_cost, set_id,
                                   res.consumed_cost, res.info)  # fmt: skip
            yield i, store_scored(store, p.config, result, p.forget_set_id, p.method,
                                  (data.n_train, data.n_val), p.forget, res.device, t0)  # fmt: skip
    finally:
        for set_id in made.values():  # failed, stopped or abandoned: no half-made set stays
            delete_model_set(store, set_id)
