"""Reads and tables of the Attribution page: cached datamodel weights, and what is drawn from
them (signed influencers, weight blocks, self-influence, the points a forget set moves).

Weights come from ``core.attribution.datamodels`` once per datamodel (``st.cache_resource``:
one read-only array shared by every rerun); everything else is a few NumPy lines over it. For a
margin datamodel ``W`` is ``(n_targets, n_train)``: ``W[t, j]`` is the predicted change of
target t's margin when train point j joins the training set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data_access
from dashboard.components import query_int


@st.cache_data(show_spinner=False, ttl=2)
def datamodels_df(path: str) -> pd.DataFrame:
    """Every stored datamodel without its weights, newest first."""
    from core.attribution.datamodels import list_datamodels

    return list_datamodels(data_access._store(path))


@st.cache_data(show_spinner=False)
def datamodel(path: str, dm_id: int):
    """The datamodel's row (``core.attribution.datamodels.Datamodel``)."""
    from core.attribution.datamodels import get_datamodel

    return get_datamodel(data_access._store(path), dm_id)


@st.cache_resource(show_spinner="Reading the datamodel's weights…", max_entries=2)
def margin_weights(path: str, dm_id: int) -> np.ndarray:
    """``W`` ``(n_targets, n_train)`` of a margin datamodel, read once and shared read-only."""
    from core.attribution.datamodels import margin_weights as read

    w = read(data_access._store(path), dm_id)
    w.setflags(write=False)
    return w


@st.cache_data(show_spinner=False)
def target_lds(path: str, dm_id: int) -> np.ndarray | None:
    """Each target's LDS over the held-out subset models, ``(n_targets,)`` (NaN: constant);
    None when the datamodel stored none (its ``lds_file`` is empty, as for ℓ1 fits)."""
    from core.attribution.datamodels import load_lds

    if not datamodel(path, dm_id).lds_file:
        return None
    return load_lds(data_access._store(path), dm_id)


def dm_label(row) -> str:
    """``#5 · ridge · margin · M=2000 · LDS val 0.68``."""
    lds = "—" if pd.isna(row.lds_val) else f"{row.lds_val:.2f}"
    return f"#{row.id} · {row.kind} · {row.target} · M={row.n_models} · LDS val {lds}"


def lds_curve_df(curve: list) -> pd.DataFrame:
    """The stored LDS-vs-M curve as long rows ``m, split, lds`` (splits: train, val)."""
    rows = [{"m": int(c["m"]), "split": s, "lds": c.get(f"lds_{s}")}
            for c in curve or [] for s in ("train", "val")]  # fmt: skip
    return pd.DataFrame(rows, columns=["m", "split", "lds"])


def where(point: int, n_train: int) -> tuple[str, int]:
    """A global point index (train first, then val) as ``(split, index within it)``."""
    return ("train", point) if point < n_train else ("val", point - n_train)


def label_of(data, point: int) -> str:
    split, local = where(point, data.n_train)
    y = data.y_train if split == "train" else data.y_val
    return data.class_names[int(y[local])]


def check_point(point: int, n_points: int, n_targets: int, dm_id: int) -> str | None:
    """Why ``point`` cannot be opened (out of range, or no datamodel target), else None."""
    if not 0 <= point < n_points:
        return f"Point {point} does not exist: indices run from 0 to {n_points - 1}."
    if point >= n_targets:
        return (f"Point {point} has no target in datamodel {dm_id}: it predicts points "
                f"0–{n_targets - 1} only.")  # fmt: skip
    return None


def influencers(w: np.ndarray, point: int, k: int) -> pd.DataFrame:
    """The ``k`` most positive and ``k`` most negative train points of ``W[point]``: columns
    ``source`` (train index), ``weight`` (signed: > 0 raises the point's margin), ``side``
    (``positive`` | ``negative``); positives first, each side by |weight| descending. A side
    holds only weights of its sign (a row with fewer than k of one sign gives fewer rows)."""
    row = np.asarray(w[point], dtype=np.float64)
    order = np.argsort(-row, kind="stable")
    pos = [j for j in order[:k] if row[j] > 0]
    neg = [j for j in order[::-1][:k] if row[j] < 0]
    src = np.array(pos + neg, dtype=np.int64)
    return pd.DataFrame({"source": src, "weight": row[src],
                         "side": ["positive"] * len(pos) + ["negative"] * len(neg)})  # fmt: skip


def self_influence(w: np.ndarray) -> np.ndarray:
    """``W[j, j]`` for every train point j, ``(n_train,)``: how much j's own presence raises
    its margin (large: memorized)."""
    n = w.shape[1]
    return np.asarray(w[np.arange(n), np.arange(n)], dtype=np.float64)


def moved(w: np.ndarray, forget: np.ndarray, k: int) -> pd.DataFrame:
    """The ``k`` points whose margin leaving out ``forget`` moves most, by Datamodel-Direct's
    ``Δ[t] = −Σ_{j∈F} W[t, j]``: columns ``point``, ``shift``, ``in_forget``."""
    from core.attribution.datamodels import forget_shift

    shift = forget_shift(w, forget)
    order = np.argsort(-np.abs(shift), kind="stable")[:k]
    return pd.DataFrame({"point": order, "shift": shift[order],
                         "in_forget": np.isin(order, forget)})  # fmt: skip


def class_rows(w: np.ndarray, data, cls: int, sources: np.ndarray, n: int = 30) -> np.ndarray:
    """Up to ``n`` train points of class ``cls`` whose margins the ``sources`` move most
    (largest Σ_j |W[t, j]| over the sources), in that order."""
    members = np.flatnonzero(np.asarray(data.y_train) == cls)
    if members.size == 0 or sources.size == 0:
        return members[:0]
    strength = np.abs(np.asarray(w[members][:, sources], dtype=np.float64)).sum(1)
    return members[np.argsort(-strength, kind="stable")[:n]]


def klom_vs_self(points: pd.DataFrame, si: np.ndarray) -> pd.DataFrame:
    """An evaluation's forget points with their KLoM and self-influence: columns ``point``,
    ``klom``, ``floor``, ``gap``, ``self_influence`` (forget points are train indices)."""
    f = points[points["split"] == "forget"].copy()
    f = f[f["point"] < si.size]
    f["self_influence"] = si[f["point"].to_numpy(dtype=int)]
    return f[["point", "klom", "floor", "gap", "self_influence"]].reset_index(drop=True)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (NaN with fewer than 3 points or a constant side)."""
    if len(x) < 3:
        return float("nan")
    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def image_grid(data, points, captions: list[str], links: list[str] | None = None,
               size: int = 64) -> str:  # fmt: skip
    """Images of global points with captions, inline (data URIs); each a link when given."""
    from dashboard.components import image_html

    cells = []
    for i, (p, cap) in enumerate(zip(points, captions, strict=True)):
        split, local = where(int(p), data.n_train)
        cell = image_html(data.image(split, local), cap, size)
        if links:
            cell = f'<a href="{links[i]}" target="_self" style="text-decoration:none">{cell}</a>'
        cells.append(cell)
    return "<div>" + "".join(cells) + "</div>"


def link(point: int, dm_id: int, run_id: int | None) -> str:
    """A same-page link that opens ``point`` (keeping the datamodel and the run)."""
    q = f"?point={int(point)}&datamodel={int(dm_id)}"
    return q + (f"&run={int(run_id)}" if run_id is not None else "")


@st.cache_data(show_spinner=False)
def forget_indices(path: str, forget_set_id: int) -> np.ndarray:
    """The train indices of a stored forget set."""
    from core.forget.store import get_forget_set

    return np.asarray(get_forget_set(data_access._store(path), forget_set_id)[0].indices)


def from_query(param: str, key: str, ok) -> bool:
    """A link's ``?param=V`` opens ``V`` in the widget ``key``: applied once per new value (so
    that the widget stays free afterwards), when V is a whole number that ``ok`` accepts.
    True when it was applied just now."""
    wanted = st.query_params.get(param)
    if wanted != st.session_state.get(f"{key}_q"):
        st.session_state[f"{key}_q"] = wanted
        value = query_int(wanted)
        if value is not None and ok(value):
            st.session_state[key] = value
            return True
    return False


def to_query(**values) -> None:
    """Mirror the page's choices in its URL (a shareable link), as applied already."""
    for param, (key, value) in values.items():
        if value is None:
            st.query_params.pop(param, None)
            st.session_state[f"{key}_q"] = None
        else:
            st.query_params[param] = st.session_state[f"{key}_q"] = str(value)


def take_clicks(keys: tuple[str, ...], target: str) -> None:
    """A new click on any of the charts ``keys`` opens its point in the widget ``target``."""
    for key in keys:
        picked = data_access.clicked_point(st.session_state.get(key))
        if picked is not None and picked != st.session_state.get(f"{key}_last"):
            st.session_state[target] = picked
        st.session_state[f"{key}_last"] = picked
