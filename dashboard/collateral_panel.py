"""The Compare page's "Collateral forgetting" tab: the chosen runs' KLoM on retain or val points
by decile of proximity to the forget set (input space or datamodel), beside the noise floor; a
click on a bar (or the pickers below) lists that decile's points, each one link away from the
KLoM explorer. The numbers come from ``core.evaluation.collateral``; this module lays them out."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.common.errors import LabError
from core.evaluation.collateral import (
    BY,
    N_BINS,
    NEAREST_FIRST,
    PROXIMITY_LABELS,
    SPLITS,
    decile_table,
)
from dashboard import components, data_access
from dashboard.collateral_charts import collateral_chart, long_table

BY_LABELS = {"input": "input space (distance)", "datamodel": "datamodel (forget-set weight)"}
POINT_COLUMNS = ["point", "proximity", "klom", "floor", "gap"]


@st.cache_data(show_spinner="Measuring each point's proximity to the forget set…")
def run_points(path: str, run_id: int, by: str, k: int) -> tuple[pd.DataFrame, dict]:
    """``core.evaluation.collateral.collateral_points`` of one run, read once per (run, space, k)."""
    from core.evaluation.collateral import collateral_points

    return collateral_points(data_access._store(path), run_id, by, k)


def _tables(path: str, run_ids: list[int], by: str, k: int) -> tuple[dict, dict, dict]:
    """Per run: its points, decile table and method."""
    points, tables, methods = {}, {}, {}
    for r in run_ids:
        pts, meta = run_points(path, r, by, k)
        points[r], methods[r] = pts, meta["method"]
        tables[r] = decile_table(pts["klom"], pts["floor"], pts["gap"], pts["proximity"],
                                 pts["split"], NEAREST_FIRST[by])  # fmt: skip
    return points, tables, methods


def show(path: str, forget_set_id: int, run_ids: list[int], labels: dict[int, str]) -> None:
    """The tab: pickers, the chart, the clicked decile's points and the table of every run."""
    sets = data_access.forget_sets_df(path).set_index("id")
    forget_size = int(sets.loc[forget_set_id, "size"]) if forget_set_id in sets.index else 1
    st.caption("Do the chosen runs harm the points *near* the forget set? Retain and val points "
               "are cut into deciles by their proximity to it (1 = nearest); bars: each run's "
               "KLoM P95 in the decile, ticks: its P50, green band: the noise floor's P50–P95 "
               "(the noise-floor oracles against the oracles). Do-nothing's nearest decile sits "
               "high (the forget set's neighbours moved when it left); a good method brings it "
               "down to the band without lifting the far deciles.")  # fmt: skip
    c1, c2, c3 = st.columns([2, 1, 1])
    by = c1.radio("proximity", BY, horizontal=True, key="cmp_coll_by", format_func=BY_LABELS.get,
                  help="input: Euclidean distance on the flattened standardized inputs to the "
                  "nearest forget point (or the mean over the k nearest); datamodel: |Σ_{j∈F} "
                  "w_tj|, how far the margin datamodel says leaving the forget set moves the "
                  "point (either sign)")  # fmt: skip
    split = c2.radio("points", SPLITS, horizontal=True, key="cmp_coll_split")
    k = 1
    if by == "input":
        k = int(c3.number_input("k nearest", 1, max(1, forget_size), 1, key="cmp_coll_k"))
    try:
        points, tables, methods = _tables(path, run_ids, by, k)
    except LabError as err:
        st.info(components.plain(err), icon=":material/info:")
        return
    long = long_table(tables, methods)
    clicked = data_access.clicked_customdata(st.session_state.get("cmp_coll_chart"))
    fresh = clicked != st.session_state.get("cmp_coll_last")
    if fresh and clicked and len(clicked) == 2 and int(clicked[0]) in run_ids:
        st.session_state["cmp_coll_run"] = int(clicked[0])  # a click on a bar picks its run
        st.session_state["cmp_coll_dec"] = int(clicked[1])  # and decile below
    st.session_state["cmp_coll_last"] = clicked
    st.plotly_chart(collateral_chart(long, split, labels, by), width="stretch",
                    key="cmp_coll_chart", on_select="rerun", selection_mode="points")  # fmt: skip
    st.caption(f"Proximity: {PROXIMITY_LABELS[by]}" + (f", mean over the {k} nearest" if k > 1
               else "") + ". Each decile holds a tenth of the split's points. Click a bar to "
               "list its points.")  # fmt: skip
    if st.session_state.get("cmp_coll_run") not in run_ids:
        st.session_state.pop("cmp_coll_run", None)
    a, b = st.columns(2)
    run = a.selectbox("run", run_ids, key="cmp_coll_run", format_func=lambda r: labels[int(r)])
    decile = b.selectbox("decile", list(range(1, N_BINS + 1)), key="cmp_coll_dec")
    _decile_points(points[int(run)], int(run), int(decile), split)
    with st.expander("Every chosen run's table (both splits)"):
        st.dataframe(long, hide_index=True, width="stretch")  # its toolbar downloads a CSV


def _decile_points(pts: pd.DataFrame, run: int, decile: int, split: str) -> None:
    """The decile's points, worst KLoM first, and a link to open one in the KLoM explorer."""
    sel = pts[(pts["split"] == split) & (pts["decile"] == decile)]
    sel = sel.sort_values("klom", ascending=False)[POINT_COLUMNS]
    if sel.empty:
        st.caption(f"Decile {decile} of {split} holds no points.")
        return
    st.markdown(f"**Decile {decile} of {split} · run {run}**: {len(sel)} points, proximity "
                f"{sel['proximity'].min():.3g}–{sel['proximity'].max():.3g}")  # fmt: skip
    st.dataframe(sel, hide_index=True, width="stretch", height=220, key="cmp_coll_points",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                                for c in POINT_COLUMNS[1:]})  # fmt: skip
    point = st.selectbox("open a point of this decile (worst KLoM first)", sel["point"].tolist(),
                         key=f"cmp_coll_point_{run}_{decile}_{split}")  # fmt: skip
    st.page_link("views/klom.py", label=f"Point {int(point)} of run {run} in the KLoM explorer",
                 query_params={"run": str(run), "point": str(int(point))},
                 icon=":material/query_stats:")  # fmt: skip
