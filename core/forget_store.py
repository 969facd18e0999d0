"""Forget sets in the store: save, list, read back and delete (with what depends on them)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .attribution.forget import PC_PRESETS
from .divergence import delete_diverged
from .errors import ConfigError, NotFoundError
from .forget_sets import ForgetSet, check_name
from .model_sets import delete_runs_in, originals_for
from .store import Store


def save_forget_set(store: Store, fs: ForgetSet, dataset: str) -> int:
    """Insert a validated forget set; a name already used for this dataset is refused.

    The name is stored stripped; names over ``MAX_NAME_LENGTH`` characters or with control
    characters are refused (``check_name``) before anything is written.
    """
    name = check_name(fs.name)
    with store.transaction() as con:
        taken = con.execute(
            "SELECT id FROM forget_sets WHERE dataset = ? AND name = ?", [dataset, name]
        ).fetchone()
        if taken:
            raise ConfigError(
                f"a forget set named {name!r} already exists for {dataset} (id {taken[0]}); "
                "choose another name"
            )
        row = con.execute(
            """INSERT INTO forget_sets (name, dataset, kind, params, indices, size, warnings)
               VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            [
                name,
                dataset,
                fs.kind,
                json.dumps(fs.params),
                [int(i) for i in fs.indices],
                fs.size,
                json.dumps(list(fs.warnings)),
            ],
        ).fetchone()
    return int(row[0])


def get_forget_set(store: Store, fs_id: int) -> tuple[ForgetSet, str]:
    """The forget set with this id and its dataset name."""
    with store.connect(read_only=True) as con:
        row = con.execute(
            "SELECT name, kind, params, indices, warnings, dataset FROM forget_sets WHERE id = ?",
            [int(fs_id)],
        ).fetchone()
    if row is None:
        raise NotFoundError(f"there is no forget set with id {fs_id}")
    name, kind, params, indices, warnings, dataset = row
    fs = ForgetSet(
        name,
        kind,
        json.loads(params),
        np.asarray(indices, dtype=np.int64),
        tuple(json.loads(warnings)),
    )
    return fs, dataset


def find_forget_set(store: Store, dataset: str, name: str) -> int | None:
    df = store.query_df(
        "SELECT id FROM forget_sets WHERE dataset = ? AND name = ?", [dataset, name]
    )
    return None if df.empty else int(df["id"][0])


def list_forget_sets(store: Store, dataset: str | None = None) -> pd.DataFrame:
    """id, name, dataset, kind, size, params, created_at — newest first."""
    where, args = ("WHERE dataset = ?", [dataset]) if dataset else ("", [])
    return store.query_df(
        f"SELECT id, name, dataset, kind, size, params, created_at FROM forget_sets {where} "
        "ORDER BY id DESC",
        args,
    )


def delete_forget_set(store: Store, fs_id: int) -> None:
    """Delete a forget set with its oracle sets and evaluations, in one transaction."""
    get_forget_set(store, fs_id)
    sets = store.query_df("SELECT id FROM model_sets WHERE forget_set_id = ?", [fs_id])[
        "id"
    ].tolist()
    with store.transaction() as con:
        runs = [
            r[0]
            for r in con.execute(
                "SELECT run_id FROM evaluations WHERE forget_set_id = ?", [fs_id]
            ).fetchall()
        ]
        delete_runs_in(con, runs)
        delete_diverged(con, fs_id)
        con.execute("DELETE FROM model_chunks WHERE set_id IN (SELECT unnest(?::BIGINT[]))", [sets])
        con.execute("DELETE FROM model_sets WHERE forget_set_id = ?", [fs_id])
        con.execute("DELETE FROM forget_sets WHERE id = ?", [fs_id])
    for s in sets:
        store.remove_files(f"model_sets/{s}")
    for r in runs:
        store.file_path(f"evaluations/{r}.margins.npy").unlink(missing_ok=True)


def feature_points(store: Store, dataset: str, max_models: int = 10) -> np.ndarray:
    """Train points in the original models' feature space, ``(n_train, k·d)``.

    Penultimate features of up to ``max_models`` original models, concatenated: the squared
    distance there is the sum of the per-model squared distances (feature spaces of different
    models are not aligned, so they are not averaged).
    """
    import torch

    from .zoo import load_ensemble

    ens = load_ensemble(store, originals_for(store, dataset), "cpu")
    ens = ens.select(list(range(min(max_models, ens.n_models))))
    from .data import load_dataset

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
    from . import forget_sets as F
    from .data import load_dataset

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
        from .forget_uploads import upload_forget_set

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
    from .attribution.datamodels import datamodel_for, train_matrix
    from .attribution.forget import knn_datamodel_forget_set, pc_forget_set

    dm = datamodel_for(store, originals_for(store, dataset), "margin")
    d = train_matrix(store, dm.id)
    if kind == "datamodel_pc":
        comp = p.get("component") or 1
        top, bottom = p.get("top"), p.get("bottom") or 0
        if top is None:
            top = p.get("k") or 10
        return pc_forget_set(d, comp, top, bottom, name, dm.id)
    return knn_datamodel_forget_set(d, p.get("anchor"), p.get("k"), name, dm.id)
