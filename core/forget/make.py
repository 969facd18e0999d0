"""Making a forget set of any kind from user parameters: presets, random, by class, nearest
neighbours in pixel, feature or datamodel space, manual, uploaded, or from a datamodel's
principal components (the datamodel kinds read the newest margin datamodel)."""

from __future__ import annotations

import numpy as np

from core.common.errors import ConfigError
from core.forget.datamodel_sets import PC_PRESETS
from core.forget.sets import ForgetSet, check_name
from core.store.db import Store
from core.zoo.model_sets import originals_for


def feature_points(store: Store, dataset: str, max_models: int = 10) -> np.ndarray:
    """Train points in the original models' feature space, ``(n_train, k·d)``.

    Penultimate features of up to ``max_models`` original models, concatenated: the squared
    distance there is the sum of the per-model squared distances (feature spaces of different
    models are not aligned, so they are not averaged).
    """
    import torch

    from core.zoo.build import load_ensemble

    ens = load_ensemble(store, originals_for(store, dataset), "cpu")
    ens = ens.select(list(range(min(max_models, ens.n_models))))
    from core.zoo.data import load_dataset

    data = load_dataset(dataset, "cpu")
    with torch.no_grad():
        feats = ens.features(data.x_train)  # (k, n_train, d)
    return feats.permute(1, 0, 2).reshape(data.n_train, -1).numpy()


def make_forget_set(
    store: Store, dataset: str, kind: str, name: str | None = None, **p
) -> ForgetSet:
    """Build a forget set of ``kind`` for ``dataset`` from user parameters (validated).

    kinds: ``preset`` (name), ``random`` (k, seed), ``class`` (cls, k | fraction, seed),
    ``knn`` (anchor, k, space = pixel | feature | datamodel), ``manual`` (indices), ``upload``
    (data, filename), ``datamodel_pc`` (component, top, bottom).
    """
    from core.forget import sets as F
    from core.zoo.data import load_dataset

    if name is not None:  # checked before any work: the preview shows a problem at once
        name = check_name(name) if name.strip() else None
    data = load_dataset(dataset, "cpu")
    n, labels = data.n_train, data.y_train.numpy()
    pixels = data.raw_train.reshape(n, -1)
    if kind == "preset" and p.get("preset") in PC_PRESETS:  # from the datamodel's components
        c, top, bottom = PC_PRESETS[p["preset"]]
        return datamodel_forget_set(store, dataset, "datamodel_pc", name or p["preset"],
                                    component=c, top=top, bottom=bottom)  # fmt: skip
    if kind == "datamodel_pc" or (kind == "knn" and p.get("space") == "datamodel"):
        return datamodel_forget_set(store, dataset, kind, name, **p)
    if kind == "preset":
        if dataset != "digits":
            raise ConfigError("presets exist for digits only; build a forget set by kind instead")
        return F.digits_preset(p["preset"], labels, pixels)
    if kind == "random":
        return F.random_forget_set(n, p.get("k"), p.get("seed", 0), name)
    if kind == "class":
        return F.class_forget_set(
            labels, p.get("cls"), p.get("k"), p.get("fraction"), p.get("seed", 0), name
        )
    if kind == "knn":
        space = p.get("space", "pixel")
        points = feature_points(store, dataset) if space == "feature" else pixels
        return F.knn_forget_set(points, p.get("anchor"), p.get("k"), space, name)
    if kind == "manual":
        return F.manual_forget_set(p.get("indices") or [], n, name)
    if kind == "upload":
        from core.forget.uploads import upload_forget_set

        return upload_forget_set(p["data"], p["filename"], n, name)
    raise ConfigError(
        f"unknown forget-set kind {kind!r}: preset, random, class, knn, manual, upload, "
        "datamodel_pc"
    )


def datamodel_forget_set(
    store: Store, dataset: str, kind: str, name: str | None = None, **p
) -> ForgetSet:
    """A forget set from the newest margin datamodel of the newest originals' recipe:
    ``datamodel_pc`` (component, top, bottom) or ``knn`` in datamodel space (anchor, k)."""
    from core.attribution.datamodels import datamodel_for, train_matrix
    from core.forget.datamodel_sets import knn_datamodel_forget_set, pc_forget_set

    dm = datamodel_for(store, originals_for(store, dataset), "margin")
    d = train_matrix(store, dm.id)
    if kind == "datamodel_pc":
        comp = p.get("component") or 1
        top, bottom = p.get("top"), p.get("bottom") or 0
        if top is None:
            top = p.get("k") or 10
        return pc_forget_set(d, comp, top, bottom, name, dm.id)
    return knn_datamodel_forget_set(d, p.get("anchor"), p.get("k"), name, dm.id)
