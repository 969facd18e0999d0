"""Forget sets in the store: save, find, list and read back. Making one of any kind is
``core.forget.make``; deleting one with everything made for it, ``core.evaluation.cleanup``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from core.common.errors import ConfigError, NotFoundError
from core.forget.sets import ForgetSet, check_name
from core.store.db import Store


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
