"""Small, fast labs for the integration tests: tiny recipes, few models."""

from __future__ import annotations

import numpy as np

from core.evaluation.run import build_oracles
from core.forget.sets import random_forget_set
from core.forget.store import save_forget_set
from core.store.db import Store
from core.zoo.build import build_model_set, create_model_set
from core.zoo.recipe import default_train_config

TINY = default_train_config("digits").replace(epochs=2)


def tiny_lab(path, n_models: int = 6, forget_k: int = 20) -> dict:
    """Originals, one random forget set and its two oracle groups, all tiny."""
    store = Store(path)
    orig = create_model_set(store, "original", TINY, n_models, seed=0, chunk_size=3)
    build_model_set(store, orig)
    fs = random_forget_set(1347, forget_k, seed=0, name="r20")
    fs_id = save_forget_set(store, fs, "digits")
    main, floor = build_oracles(store, fs_id, n_models)
    return {"store": store, "original": orig, "forget_set": fs_id, "forget": np.asarray(fs.indices),
            "oracle": main, "floor": floor}  # fmt: skip


def tiny_datamodel(store, original_set_id: int, target: str = "logits", n_models: int = 40) -> int:
    """A ridge datamodel of the originals' (tiny) recipe from ``n_models`` subset models."""
    from core.attribution.fit import fit_datamodel

    return fit_datamodel(store, "digits", original_set_id=original_set_id, n_models=n_models,
                         target=target)  # fmt: skip
