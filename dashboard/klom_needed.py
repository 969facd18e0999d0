"""The KLoM explorer's "How many models a verdict needs": P95 against models per side.

``needed_figure`` is pure presentation (the table of ``core.evaluation.models_needed`` in, a plotly figure
out); ``section`` is the page's part: a button that computes the curve on demand (it re-scores
every draw of every size, a few seconds), then the chart and which sizes resolve the gap.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.evaluation.klom import SPLITS
from dashboard.klom_charts import FLOOR_COLOR

DRAWS, SEED = 5, 0
RUN_COLOR = "#7c3aed"  # one colour for the run in every panel, as its legend entry shows
BAND = 2  # the band is mean ± BAND sd over the draws: the resolution rule's own margin


def _band(fig: go.Figure, t: pd.DataFrame, side: str, color: str, name: str, col: int) -> None:
    """Mean line with a mean ± 2 sd band (min and max in the hover) of one side."""
    mean, sd = t[f"{side}_mean"], t[f"{side}_sd"]
    lo, hi = (mean - BAND * sd).clip(lower=0), mean + BAND * sd
    first = col == 1  # one legend entry per side
    fig.add_trace(go.Scatter(x=list(t["n"]) + list(t["n"])[::-1], y=list(hi) + list(lo)[::-1],
                             mode="lines", fill="toself", fillcolor=color, opacity=0.18,
                             line={"width": 0},
                             hoverinfo="skip", name=f"{name} ± {BAND} sd", legendgroup=side,
                             showlegend=first), row=1, col=col)  # fmt: skip
    fig.add_trace(go.Scatter(
        x=t["n"], y=mean, mode="lines+markers", name=name, legendgroup=side, showlegend=first,
        line={"color": color, "dash": "dash" if side == "floor" else "solid"},
        customdata=t[[f"{side}_sd", f"{side}_min", f"{side}_max"]].to_numpy(),
        hovertemplate="n = %{x}<br>P95 %{y:.3f} ± %{customdata[0]:.3f} sd<br>"
        "min %{customdata[1]:.3f}, max %{customdata[2]:.3f}<extra>" + name + "</extra>",
    ), row=1, col=col)  # fmt: skip


def needed_figure(table: pd.DataFrame, run_label: str | None = None) -> go.Figure:
    """One panel per split: the floor's P95 (and the run's) against models per side (log x)."""
    fig = make_subplots(rows=1, cols=len(SPLITS), subplot_titles=[s.capitalize() for s in SPLITS],
                        shared_yaxes=False, horizontal_spacing=0.06)  # fmt: skip
    has_run = "run_mean" in table
    for col, split in enumerate(SPLITS, start=1):
        t = table[table["split"] == split].sort_values("n")
        _band(fig, t, "floor", FLOOR_COLOR, "noise floor P95", col)
        if has_run:
            _band(fig, t, "run", RUN_COLOR, run_label or "run P95", col)
        fig.update_xaxes(type="log", tickvals=list(t["n"]), title="models per side", row=1,
                         col=col)  # fmt: skip
    fig.update_yaxes(title="P95 of KLoM (nats)", row=1, col=1)
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.3})  # fmt: skip
    return fig


def resolved_sentence(resolved_at: dict) -> str:
    """Which sizes resolve the gap, split by split, in one sentence."""
    parts = [f"{s} from {n} models per side on" if n is not None else f"{s} at no size tried"
             for s, n in resolved_at.items()]  # fmt: skip
    return "Where the gap to the floor is resolved: " + "; ".join(parts) + "."


def section(path: str, forget_set_id: int, run_id: int, label: str) -> None:
    """The page's part: heading, button, then (once asked, for this run) chart and verdict."""
    from core.common.errors import LabError
    from dashboard.components import plain

    st.subheader("How many models a verdict needs")
    st.caption(
        f"The noise floor's P95 and this run's P95 re-scored with n models per side, drawn "
        f"without replacement from the stored groups ({DRAWS} seeded draws per size; the band "
        f"is mean ± {BAND} sd). The gap is *resolved* at n when the run's mean P95 minus "
        f"{BAND} sd exceeds the floor's plus {BAND} sd; at the stored number every draw is the "
        "whole group, so it is not judged there."
    )
    if st.button("Compute the curve (a few seconds)", key="needed_go"):
        st.session_state["needed_run"] = run_id
    if st.session_state.get("needed_run") != run_id:
        return
    try:
        with st.spinner("Re-scoring KLoM at each number of models…"):
            out = _curve(path, forget_set_id, run_id)
    except LabError as err:
        st.error(plain(err))
        return
    st.plotly_chart(needed_figure(out["table"], label), width="stretch", key="needed_chart")
    stored = ", ".join(f"{k} {v}" for k, v in out["stored"].items())
    st.caption(
        f"{resolved_sentence(out['resolved_at'])} Stored models per side: {stored}; computed "
        f"in {out['wall_s']:.1f} s. The same from the command line: python -m core "
        f"models-needed --forget-set {forget_set_id} --run {run_id}"
    )


@st.cache_data(show_spinner=False, max_entries=16)
def _curve(path: str, forget_set_id: int, run_id: int) -> dict:
    """``core.evaluation.models_needed.models_needed`` with the page's defaults, once per run."""
    from core.evaluation.models_needed import models_needed
    from dashboard import data_access

    return models_needed(data_access._store(path), forget_set_id, run_id, None, DRAWS, SEED)
