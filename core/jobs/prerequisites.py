"""What an evaluation of a method needs before it can run, and the jobs that build it.

Every evaluation scores a method against the forget set's oracles, so it needs the oracle and
noise-floor groups of the originals' recipe and size. A datamodel method needs, besides, a
datamodel of the originals' recipe: Datamodel-Direct any (ridge on margins, ridge on logits or
ℓ1 on margins), DMM one of the *logits* (``method.datamodel_target``). ``needs`` lists what is
missing, each with the job (kind and parameters) that builds it; a page queues those jobs and
the evaluation after them as one chain (``core.jobs.queue.start_chain``), and never queues a job known
to fail. ``check_ready`` is the same test as one error that names every missing part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.common.errors import ConfigError, LabError
from core.store.db import Store


@dataclass(frozen=True)
class Need:
    """One missing prerequisite: ``what`` ("oracles" | "datamodel"), a sentence that says what
    is missing, and the background job (``kind``, ``params``) that builds it."""

    what: str
    message: str
    kind: str
    params: dict = field(default_factory=dict)
    command: str = ""  # the same from the command line


def _originals(store: Store, forget_set_id: int, original_set_id: int | None) -> int | None:
    """The originals an evaluation would use: the given set, those the forget set's oracles
    were built against, or the newest complete originals of its dataset (None when none)."""
    from core.forget.oracles import pair_sets
    from core.forget.store import get_forget_set
    from core.zoo.model_sets import originals_for

    if original_set_id is not None:
        return int(original_set_id)
    try:
        return pair_sets(store, forget_set_id, None)[0]
    except LabError:
        pass
    try:
        return originals_for(store, get_forget_set(store, forget_set_id)[1], None)
    except LabError:
        return None


def needs(
    store: Store,
    forget_set_id: int,
    method: str,
    original_set_id: int | None = None,
    datamodel_models: int | None = None,
) -> list[Need]:
    """What evaluating ``method`` on the forget set against these originals still lacks, in the
    order it must be built. No originals at all is a ``ConfigError`` (they are trained on the
    Models page, not as part of a chain). ``datamodel_models``: M for a datamodel to fit
    (default: the fitting's default)."""
    from core.attribution.datamodels import find_datamodel
    from core.attribution.fit import DEFAULT_MODELS
    from core.forget.oracles import pair_sets
    from core.forget.store import get_forget_set
    from core.unlearning import METHODS
    from core.zoo.model_sets import get_model_set

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: choose one of {', '.join(sorted(METHODS))}")
    fs, dataset = get_forget_set(store, forget_set_id)
    orig_id = _originals(store, forget_set_id, original_set_id)
    if orig_id is None:
        raise ConfigError(
            f"there are no complete original models of {dataset} yet: build them on the Models "
            f"page (python -m core train --dataset {dataset})"
        )
    orig = get_model_set(store, orig_id)
    out: list[Need] = []
    try:
        pair_sets(store, forget_set_id, orig_id)
    except LabError:
        out.append(Need(
            "oracles",
            f"forget set {forget_set_id} ({fs.name}) has no oracles of original set {orig_id} "
            f"yet ({orig.n_models} oracles and {orig.n_models} for the noise floor, each "
            "retrained without the forget set)",
            "oracles", {"forget_set_id": int(forget_set_id), "original_set_id": orig_id},
            f"python -m core oracles --forget-set {forget_set_id} --originals {orig_id}",
        ))  # fmt: skip
    fn = METHODS[method]
    if hasattr(fn, "datamodel_target"):
        target = fn.datamodel_target  # None: any datamodel; "logits": DMM's
        found = (
            find_datamodel(store, orig.recipe_id, target)
            if target
            else find_datamodel(store, orig.recipe_id)
        )
        if found is None:
            t = target or "margin"
            m = int(datamodel_models or DEFAULT_MODELS)
            out.append(Need(
                "datamodel",
                f"{method} needs a {'logits ' if target else ''}datamodel of the recipe of "
                f"original set {orig_id}, and none is stored (fitted on {m} subset models, "
                "each trained on a random half of the training set)",
                "datamodel", {"dataset": dataset, "models": m, "target": t,
                              "original_set_id": orig_id},
                f"python -m core datamodels fit --dataset {dataset} --originals {orig_id} "
                f"--models {m} --target {t}",
            ))  # fmt: skip
    return out


def check_ready(
    store: Store, forget_set_id: int, method: str, original_set_id: int | None = None
) -> None:
    """Raise ``ConfigError`` naming every missing prerequisite (and how to build each), so that
    a job that is known to fail is never queued or resumed."""
    missing = needs(store, forget_set_id, method, original_set_id)
    if missing:
        parts = "; ".join(f"{n.message} (build it: {n.command})" for n in missing)
        raise ConfigError(
            f"{method} cannot run on forget set {forget_set_id} yet: {parts}. On the Unlearn "
            "page, 'Build what is missing, then run' queues all of it"
        )


def chain(
    store: Store,
    forget_set_id: int,
    method: str,
    final: tuple[str, dict],
    original_set_id: int | None = None,
    datamodel_models: int | None = None,
) -> list[tuple[str, dict]]:
    """The jobs to queue, in order: each missing prerequisite's, then ``final`` (kind, params)."""
    missing = needs(store, forget_set_id, method, original_set_id, datamodel_models)
    return [(n.kind, dict(n.params)) for n in missing] + [final]
