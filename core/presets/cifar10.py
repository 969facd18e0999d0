"""The ``cifar10`` preset: originals, the authors' random forget sets with their oracles, and a
do-nothing evaluation of each — after an honest cost estimate measured on this machine.

Work (training only counts here; evaluating margins adds ``n_train + n_val`` forward passes
per model, about a third of an example-gradient each):

    models          = N originals + 2N oracles per forget set (main + noise-floor group)
    example-grads   = models × total_steps × batch_size      (``TrainConfig.total_steps``)
    estimate (s)    = (example-grads + models × (n_train + n_val) / 3) × s per example-gradient

The seconds per example-gradient come from a probe: ``probe_models`` models of the recipe
trained here, on the device asked for, for ``warmup + steps`` steps; the time of the last
``steps`` steps divided by the examples they took (models × batch). On a CPU the probe uses
a batch of at most ``CPU_PROBE_BATCH`` (a step of batch 512 there takes minutes) and assumes
the cost per example does not depend on the batch; stacking more models per step (the
recipe's ``model_chunk``) usually makes a GPU cheaper per example than the probe says, so the
estimate errs on the long side there. Every step of the preset is idempotent (reused, resumed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch

from core.common.config import check_int
from core.common.device import resolve_device
from core.common.errors import ConfigError
from core.evaluation.run import evaluate
from core.forget.oracles import build_oracles, ensure_model_set
from core.forget.sets import random_forget_set
from core.forget.store import find_forget_set, save_forget_set
from core.store.db import Store
from core.zoo.build import Progress
from core.zoo.data import Dataset
from core.zoo.ensemble import Cancelled, train_ensemble
from core.zoo.recipe import TrainConfig, default_train_config

CIFAR_SIZES = (10, 100, 1000)  # the authors' random forget sets on CIFAR-10
CPU_PROBE_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the preset will train: ``n_models`` a group, ``sizes`` of random forget sets."""

    train: TrainConfig
    n_models: int
    sizes: tuple[int, ...]
    n_train: int
    n_val: int

    @property
    def models(self) -> int:
        """Models to train: N originals + 2N oracles per forget set."""
        return self.n_models * (1 + 2 * len(self.sizes))

    @property
    def example_gradients(self) -> int:
        return self.models * self.train.total_steps(self.n_train) * self.train.batch_size

    @property
    def eval_passes(self) -> int:
        """Forward passes of the margins (every point, every model)."""
        return self.models * (self.n_train + self.n_val)


def plan_preset(
    data: Dataset,
    n_models: int = 100,
    sizes: tuple[int, ...] = CIFAR_SIZES,
    epochs: int | None = None,
    batch_size: int | None = None,
    arch: str | None = None,
) -> Plan:
    """The checked plan: the dataset's default recipe with the overrides given; every forget
    set must leave at least one batch of train points to its oracles."""
    check_int("models", n_models, 2, 100_000)  # the noise floor needs two models a side
    train = default_train_config(data.name, arch)
    if epochs is not None:
        train = train.replace(epochs=epochs)
    if batch_size is not None:
        train = train.replace(batch_size=batch_size)
    train.total_steps(data.n_train)  # the batch fits the train split
    if not sizes or len(set(sizes)) != len(sizes):
        raise ConfigError("give one or more different forget-set sizes")
    for k in sizes:
        check_int("forget-set size", k, 1, data.n_train - train.batch_size)
    return Plan(train, n_models, tuple(sizes), data.n_train, data.n_val)


def probe(
    data: Dataset, train: TrainConfig, device: str | None = None, *, probe_models: int = 2,
    steps: int = 3, warmup: int = 1, clock: Callable[[], float] = time.perf_counter,
) -> dict:  # fmt: skip
    """Seconds per example-gradient of ``train`` here: ``probe_models`` models trained for
    ``warmup + steps`` steps (nothing stored), timed over the last ``steps``."""
    check_int("probe steps", steps, 1, 1000)
    check_int("probe models", probe_models, 1, 64)
    dev = resolve_device(device)
    batch = train.batch_size if dev.type != "cpu" else min(train.batch_size, CPU_PROBE_BATCH)
    cfg = train.replace(batch_size=batch, model_chunk=probe_models)
    marks: list[float] = []

    def stop() -> bool:  # called before every step: the last call ends the probe
        if dev.type == "cuda":
            torch.cuda.synchronize()  # the steps before this one have run
        marks.append(clock())
        return len(marks) > warmup + steps

    if cfg.total_steps(data.n_train) < warmup + steps + 1:  # too short a recipe: more epochs
        per_epoch = data.n_train // batch
        cfg = cfg.replace(epochs=-(-(warmup + steps + 1) // per_epoch))
    masks = np.ones((probe_models, data.n_train), dtype=bool)
    with contextlib.suppress(Cancelled):  # stopped on purpose after the last timed step
        train_ensemble(data, masks, list(range(probe_models)), cfg, device=dev, should_stop=stop)
    seconds = marks[-1] - marks[warmup]
    per_example = seconds / (steps * probe_models * batch)
    return {"device": str(dev), "models": probe_models, "batch": batch, "steps": steps,
            "seconds": seconds, "s_per_example": per_example}  # fmt: skip


def estimate(plan: Plan, s_per_example: float) -> dict:
    """The preset's cost from the probe's seconds per example-gradient (module docstring)."""
    work = plan.example_gradients + plan.eval_passes / 3
    seconds = work * s_per_example
    return {"models": plan.models, "example_gradients": plan.example_gradients,
            "eval_passes": plan.eval_passes, "seconds": seconds, "hours": seconds / 3600}  # fmt: skip


def describe(plan: Plan, probe_result: dict, est: dict) -> str:
    """The estimate in words, for the confirmation prompt."""
    t = plan.train
    return (
        f"cifar10 preset: {plan.n_models} originals + {2 * plan.n_models} oracles for each of "
        f"{len(plan.sizes)} random forget sets (sizes {', '.join(map(str, plan.sizes))}) = "
        f"{plan.models} models of {t.describe()}, {t.total_steps(plan.n_train)} steps each: "
        f"{est['example_gradients']:.3g} example-gradients.\n"
        f"probe on {probe_result['device']}: {probe_result['models']} models × "
        f"{probe_result['steps']} steps of batch {probe_result['batch']} took "
        f"{probe_result['seconds']:.2f} s = {1e3 * probe_result['s_per_example']:.3g} ms per "
        f"example-gradient.\nestimate: {_duration(est['seconds'])} on this machine "
        "(extrapolated; more models per step usually make a GPU faster than this)"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def run_preset(
    store: Store, plan: Plan, device: str | None = None, progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:  # fmt: skip
    """Train (or reuse, or resume) the plan's sets and evaluate do-nothing on each forget set;
    returns the set ids and ``{forget-set name: {forget_set_id, run_id}}``."""
    report = progress or (lambda f, m: None)
    parts = 1 + 2 * len(plan.sizes)
    dataset = plan.train.dataset
    original = ensure_model_set(
        store, "original", dataset, train=plan.train, n_models=plan.n_models, device=device,
        progress=lambda f, m: report(f / parts, f"originals: {m}"), should_stop=should_stop,
    )  # fmt: skip
    out: dict = {"original_set_id": original, "evaluations": {}}
    for k, size in enumerate(plan.sizes):
        name = f"random-{size}"
        fs_id = find_forget_set(store, dataset, name)
        if fs_id is None:
            fs_id = save_forget_set(store, random_forget_set(plan.n_train, size, 0, name), dataset)
        base = 1 + 2 * k
        build_oracles(
            store, fs_id, plan.n_models, device,
            progress=lambda f, m, b=base, n=name: report((b + 2 * f) / parts, f"{n}: {m}"),
            should_stop=should_stop, original_set_id=original,
        )  # fmt: skip
        run_id = evaluate(store, fs_id, "do_nothing", device, original_set_id=original)
        out["evaluations"][name] = {"forget_set_id": fs_id, "run_id": run_id}
    report(1.0, "cifar10 preset ready: open Compare or the KLoM explorer")
    return out
