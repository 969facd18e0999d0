"""Oracle groups and the pairing of model sets for an evaluation.

For a forget set F, the *oracles* are models trained on train − F with the originals' recipe and
number of models; a second, independent group (role ``floor``) gives the noise floor, and
Oracle Matching's held-out group (role ``heldout``) is a third. ``pair_sets`` finds the
(originals, oracles, floor) triple of one recipe that an evaluation compares.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.common.errors import ConfigError, NotFoundError
from core.forget.store import get_forget_set
from core.store.db import Store
from core.zoo.build import (
    ModelSet,
    Progress,
    build_model_set,
    create_model_set,
    find_model_set,
    get_model_set,
)
from core.zoo.executors import Executor, LocalExecutor
from core.zoo.model_sets import originals_for
from core.zoo.recipe import TrainConfig, default_train_config

DEFAULT_MODELS = 100


def ensure_model_set(
    store: Store,
    kind: str,
    dataset: str,
    *,
    train: TrainConfig | None = None,
    n_models: int = DEFAULT_MODELS,
    forget_set_id: int | None = None,
    forget: np.ndarray | None = None,
    role: str = "main",
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    base_set_id: int | None = None,
    executor: Executor | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
) -> int:
    """The newest complete set of this kind, recipe and size; else resume an unfinished one;
    else build a new one. Sets of another recipe or another number of models never match.
    ``executor``: where its chunks train (default: here; see ``core.zoo.executors``). ``seed``:
    the first model's seed (model i: ``seed + i``; only a set of that seed range matches;
    default: a free range); ``chunk_size``: models per chunk of a new set (default: the
    recipe's)."""
    train = train or default_train_config(dataset)
    key = dict(forget_set_id=forget_set_id, role=role, recipe_id=train.recipe_id(),
               n_models=n_models, seed=seed)  # fmt: skip
    done = find_model_set(store, kind, dataset, **key)
    if done is not None:
        return done
    set_id = find_model_set(store, kind, dataset, status="building", **key)
    if set_id is None:
        set_id = create_model_set(
            store, kind, train, n_models, forget_set_id=forget_set_id, forget_indices=forget,
            role=role, device=device, base_set_id=base_set_id, executor=executor, seed=seed,
            chunk_size=chunk_size,
        )  # fmt: skip
    build_model_set(
        store, set_id, forget=forget, device=device, progress=progress, should_stop=should_stop,
        executor=executor,
    )  # fmt: skip
    return set_id


def build_oracles(
    store: Store,
    forget_set_id: int,
    n_models: int | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    original_set_id: int | None = None,
    executor: Executor | None = None,
    seeds: tuple[int | None, int | None] = (None, None),
) -> tuple[int, int]:
    """Build (or reuse, or resume) the oracle group and the noise-floor group of a forget set
    for a set of originals (default: the newest); returns their set ids.

    Both copy the originals' recipe and number of models, so an oracle differs from an
    original only in its data and its seed. ``n_models``, if given, must equal the originals'.
    ``executor``: where their chunks train (default: here; see ``core.zoo.executors``).
    ``seeds``: the first seed of the oracle group and of the floor group (each group's model
    i: ``seed + i``; None: a free range, the default); a group of another range is not reused.
    """
    (executor or LocalExecutor()).device(device)  # refused even when every set exists
    fs, dataset = get_forget_set(store, forget_set_id)
    orig = get_model_set(store, originals_for(store, dataset, original_set_id))
    if orig.imported:  # no recipe to train by: their oracles come from the same source
        raise ConfigError(
            f"original set {orig.id} was imported as margins ({orig.recipe_text()}); oracles "
            "cannot be trained to match it: import its oracles too (python -m core "
            f"import-margins --kind oracle --forget-set {forget_set_id} --originals {orig.id} "
            "FILE.npy)"
        )
    if n_models is not None and n_models != orig.n_models:
        raise ConfigError(
            f"the originals (set {orig.id}) are {orig.n_models} models, and oracles must match "
            f"them to be compared; asked for {n_models} (leave --models out, or train "
            f"{n_models} originals first)"
        )
    if seeds[0] is not None and seeds[0] == seeds[1]:
        raise ConfigError("the oracle and noise-floor groups need different seeds")
    ids = []
    for k, role in enumerate(("main", "floor")):
        sub = None
        if progress is not None:
            sub = lambda f, m, k=k, r=role: progress((k + f) / 2, f"oracles ({r}): {m}")  # noqa: E731
        ids.append(
            ensure_model_set(
                store,
                "oracle",
                dataset,
                train=orig.train,
                n_models=orig.n_models,
                forget_set_id=forget_set_id,
                forget=fs.indices,
                role=role,
                device=device,
                progress=sub,
                should_stop=should_stop,
                base_set_id=orig.id,
                executor=executor,
                seed=seeds[k],
            )  # fmt: skip
        )
    return ids[0], ids[1]


def _recipe_text(ms: ModelSet) -> str:
    return ms.recipe_text()


def pair_sets(
    store: Store, forget_set_id: int, original_set_id: int | None = None
) -> tuple[int, int, int]:
    """The (originals, oracles, noise-floor) set ids of one recipe for an evaluation.

    Default originals: those the newest complete oracles were built against. Given
    originals: the newest complete oracle and floor groups of their recipe and size. A
    mismatch of recipe or size is refused with a message naming both recipes.
    """
    fs, dataset = get_forget_set(store, forget_set_id)
    how = f"python -m core oracles --forget-set {forget_set_id}"
    if original_set_id is None:
        main = find_model_set(store, "oracle", dataset, forget_set_id=forget_set_id)
        if main is None:
            raise ConfigError(
                f"forget set {forget_set_id} ({fs.name}) has no oracle models yet: build them "
                f"first ({how})"
            )
        oracle = get_model_set(store, main)
        base = None if oracle.base_set_id is None else _get_or_none(store, oracle.base_set_id)
        if base is not None and base.status == "complete":
            original_set_id = base.id
        else:  # deleted, or a set stored before oracles named their originals
            original_set_id = find_model_set(
                store, "original", dataset, recipe_id=oracle.recipe_id, n_models=oracle.n_models
            )
        if original_set_id is None:
            raise ConfigError(
                f"no complete originals of the oracles' recipe ({_recipe_text(oracle)}) are "
                "stored; train them, or name other originals with --originals"
            )
    orig = get_model_set(store, originals_for(store, dataset, original_set_id))
    key = dict(forget_set_id=forget_set_id, recipe_id=orig.recipe_id, n_models=orig.n_models)
    main = find_model_set(store, "oracle", dataset, **key)
    floor = find_model_set(store, "oracle", dataset, role="floor", **key)
    if main is None or floor is None:
        other = find_model_set(store, "oracle", dataset, forget_set_id=forget_set_id)
        theirs = (
            f"; its oracles are of recipe {_recipe_text(get_model_set(store, other))}"
            if other is not None
            else ""
        )
        raise ConfigError(
            f"forget set {forget_set_id} ({fs.name}) has no oracles of the recipe of original "
            f"set {orig.id} ({_recipe_text(orig)}){theirs}; build them first "
            f"({how} --originals {orig.id})"
        )
    return orig.id, main, floor


def original_choices(store: Store, forget_set_id: int) -> tuple[list[tuple[int, str]], int | None]:
    """The complete original sets of a forget set's dataset as ``(id, label)`` (newest first)
    for a picker, and the default: the originals the forget set's newest oracles were built
    against (else the newest originals), or None when there are none."""
    fs, dataset = get_forget_set(store, forget_set_id)
    df = store.query_df(
        """SELECT id FROM model_sets WHERE kind = 'original' AND dataset = ? AND
           status = 'complete' ORDER BY id DESC""",
        [dataset],
    )
    sets = [get_model_set(store, int(i)) for i in df["id"]]
    choices = [
        (ms.id, f"set {ms.id} · {ms.n_models} × "
         + (f"imported ({ms.source.get('file')})" if ms.imported else ms.train.describe()))
        for ms in sets
    ]  # fmt: skip
    try:
        default = pair_sets(store, forget_set_id)[0]
    except ConfigError:  # no oracles (of a stored recipe) yet
        default = choices[0][0] if choices else None
    return choices, default


def _get_or_none(store: Store, set_id: int) -> ModelSet | None:
    try:
        return get_model_set(store, set_id)
    except NotFoundError:
        return None
