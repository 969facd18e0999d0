"""Subset models for datamodels: M models of the originals' recipe, each trained on its own
random α-share of the train split (a ``subset`` model set of ``core.zoo.build``: chunked, resumable),
and their outputs on every point.

Margins are stored with every chunk. Per-class logits are *recomputed* from the stored weights,
one chunk at a time, when a ``logits`` datamodel is fitted: they are a deterministic function of
the weights, one evaluation pass costs a fraction of a second per thousand digits MLPs (far
less than training them), and storing them would add K times the margins' size to every chunk
of every subset set. The recomputed logits are checked against the stored margins, so weights
and margins that disagree (a damaged or mismatched file) are refused rather than fitted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.attribution.defaults import TARGETS
from core.common.errors import ConfigError, StoreError
from core.store.db import Store
from core.zoo.model_sets import ModelSet, get_model_set
from core.zoo.recipe import TrainConfig

Progress = Callable[[float, str], None]


def check_recipe(subset: ModelSet, originals: ModelSet) -> None:
    """Refuse subset models of another recipe than the originals' (their outputs would be
    another function of the data: a datamodel of them says nothing about the originals)."""
    if subset.kind != "subset":
        raise ConfigError(f"model set {subset.id} holds {subset.kind} models, not subset models")
    if subset.recipe_id != originals.recipe_id or subset.dataset != originals.dataset:
        raise ConfigError(
            f"subset set {subset.id} was trained with recipe {subset.recipe_id} "
            f"({subset.train.describe()}), the originals (set {originals.id}) with "
            f"{originals.recipe_id} ({originals.train.describe()}); datamodels never mix "
            "recipes: train subset models of the originals' recipe (python -m core datamodels fit)"
        )


def find_subsets(store: Store, recipe: TrainConfig, fraction: float, n_models: int) -> int | None:
    """The newest complete subset set of this recipe and fraction with at least ``n_models``
    models (its first ``n_models`` are used), or None."""
    df = store.query_df(
        """SELECT id FROM model_sets WHERE kind = 'subset' AND status = 'complete'
           AND recipe_id = ? AND fraction = ? AND n_models >= ? ORDER BY id DESC LIMIT 1""",
        [recipe.recipe_id(), float(fraction), int(n_models)],
    )
    return None if df.empty else int(df["id"][0])


def ensure_subsets(
    store: Store,
    recipe: TrainConfig,
    n_models: int,
    fraction: float = 0.5,
    *,
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor=None,
) -> int:
    """A complete subset set of ``recipe`` with ≥ ``n_models`` models at ``fraction``: a stored
    one, else an unfinished one of exactly this size resumed, else a new one built (its chunks
    trained by ``executor``: here by default, or as Ray tasks, see ``core.zoo.executors``)."""
    from core.zoo.build import build_model_set, create_model_set
    from core.zoo.model_sets import find_model_set

    found = find_subsets(store, recipe, fraction, n_models)
    if found is not None:
        return found
    set_id = find_model_set(
        store, "subset", recipe.dataset, status="building", recipe_id=recipe.recipe_id(),
        n_models=n_models, fraction=float(fraction),
    )  # fmt: skip
    if set_id is None:
        set_id = create_model_set(
            store, "subset", recipe, n_models, fraction=float(fraction), device=device,
            executor=executor,
        )  # fmt: skip
    build_model_set(store, set_id, device=device, progress=progress, should_stop=should_stop,
                    executor=executor)  # fmt: skip
    return set_id


def subset_outputs(
    store: Store, set_id: int, n_models: int, target: str, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(M, n_train)`` bool and outputs of the set's first ``M = n_models`` models on
    every point (train then val): margins ``(M, n_points)`` or logits ``(M, n_points, K)``."""
    from core.common.device import resolve_device
    from core.zoo.data import load_dataset
    from core.zoo.ensemble import Ensemble
    from core.zoo.margins import margins_from_logits

    if target not in TARGETS:
        raise ConfigError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    ms = get_model_set(store, set_id)
    if n_models > ms.n_models:
        raise ConfigError(f"subset set {set_id} has {ms.n_models} models, {n_models} asked for")
    rows = store.query_df("SELECT * FROM model_chunks WHERE set_id = ? ORDER BY chunk", [set_id])
    if len(rows) < ms.n_chunks:
        raise ConfigError(f"subset set {set_id} is unfinished; build it first")
    masks, outs, got = [], [], 0
    data, dev = None, resolve_device(device)
    for r in rows.itertuples():
        if got >= n_models:
            break
        take = min(int(r.n_models), n_models - got)
        masks.append(store.load_array(r.masks_file)[:take])
        margins = store.load_array(r.margins_file)[:take]
        if target == "logits":
            data = data or load_dataset(ms.dataset, "cpu")
            meta = data.meta()
            state = {k: v[:take] for k, v in store.load_tensors(r.weights_file).items()}
            ens = Ensemble.from_state(ms.arch, state, meta["input_shape"], meta["num_classes"], dev)
            x, y = data.all_points()
            z = ens.logits(x, chunk=ms.train.eval_chunk)  # (take, n_points, K)
            again = margins_from_logits(z, y).cpu().numpy()
            if not np.allclose(again, margins, atol=1e-3, rtol=1e-3):
                raise StoreError(
                    f"chunk {r.chunk} of subset set {set_id}: the logits of its stored weights "
                    "do not give its stored margins; delete the set and build it again"
                )
            outs.append(z.cpu().numpy().astype(np.float32))
        else:
            outs.append(margins)
        got += take
    return np.concatenate(masks), np.concatenate(outs)
