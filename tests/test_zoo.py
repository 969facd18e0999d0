"""Model sets in the store: building, reading back, resuming, refusing bad input."""

from __future__ import annotations

import numpy as np
import pytest

from core.ensemble import Cancelled
from core.errors import ConfigError, NotFoundError
from core.store import Store
from core.zoo import (
    build_model_set,
    create_model_set,
    delete_model_set,
    done_chunks,
    get_model_set,
    list_model_sets,
    load_ensemble,
    load_margins,
    load_masks,
)
from tests.lab_fixtures import TINY


def test_build_read_back_and_list(db_path):
    store = Store(db_path)
    set_id = create_model_set(store, "subset", TINY, 5, fraction=0.5, seed=7, chunk_size=2)
    ms = build_model_set(store, set_id)
    assert ms.status == "complete" and ms.n_chunks == 3
    margins, masks = load_margins(store, set_id), load_masks(store, set_id)
    assert margins.shape == (5, 1347 + 450) and masks.shape == (5, 1347)
    assert (masks.sum(1) == round(0.5 * 1347)).all() and len({m.tobytes() for m in masks}) == 5
    # the stored weights reproduce the stored margins
    from core.data import load_dataset
    from core.zoo import all_points

    x, y = all_points(load_dataset("digits"))
    np.testing.assert_allclose(
        load_ensemble(store, set_id, "cpu").margins(x, y), margins, atol=1e-5
    )
    row = list_model_sets(Store(db_path)).set_index("id").loc[set_id]
    assert row["models_done"] == 5 and row["status"] == "complete"
    assert row["mean_val_acc"] == pytest.approx((margins[:, 1347:] > 0).mean())


def test_resume_after_interrupted_chunk_equals_uninterrupted(db_path):
    store = Store(db_path)
    a = create_model_set(store, "original", TINY, 6, seed=3, chunk_size=2)
    b = create_model_set(store, "original", TINY, 6, seed=3, chunk_size=2)
    build_model_set(store, a)
    calls = {"n": 0}

    def stop_in_second_chunk() -> bool:  # interrupts chunk 1 a few steps into its training
        if done_chunks(store, b):
            calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(Cancelled):
        build_model_set(store, b, should_stop=stop_in_second_chunk)
    done = store.query_df("SELECT chunk FROM model_chunks WHERE set_id = ?", [b])["chunk"].tolist()
    assert done == [0] and get_model_set(store, b).status == "building"
    with pytest.raises(ConfigError, match="not complete"):
        load_margins(store, b)
    build_model_set(store, b)  # resumes: chunk 0 is skipped, 1 and 2 are trained
    np.testing.assert_array_equal(load_margins(store, a), load_margins(store, b))


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"kind": "weird"}, "unknown kind"),
        ({"n_models": 0}, "models must be at least 1"),
        ({"kind": "subset", "fraction": 1.5}, "fraction"),
        ({"kind": "subset", "fraction": 0.0}, "fraction"),
        ({"kind": "subset"}, "needs --fraction"),
        ({"kind": "oracle"}, "needs a forget set"),
    ],
)
def test_bad_requests_write_nothing(db_path, kwargs, needle):
    store = Store(db_path)
    args = {"kind": "original", "n_models": 4, **kwargs}
    with pytest.raises(ConfigError, match=needle):
        create_model_set(store, args.pop("kind"), TINY, args.pop("n_models"), **args)
    assert list_model_sets(store).empty


def test_delete(db_path):
    store = Store(db_path)
    set_id = create_model_set(store, "original", TINY.replace(epochs=1), 2)
    build_model_set(store, set_id)
    folder = store.file_path(f"model_sets/{set_id}")
    assert folder.exists()
    delete_model_set(store, set_id)
    assert not folder.exists() and list_model_sets(store).empty
    with pytest.raises(NotFoundError):
        get_model_set(store, set_id)
