"""Charts of the Attribution page. Pure presentation: DataFrames / arrays in, plotly out.

Every mark that stands for a point carries ``[global point index]`` as customdata, so a click
on any chart names the point to open (``data_access.clicked_point``). Heatmaps cannot be
selected in plotly, so each cell also gets a nearly invisible marker that can.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

POS, NEG, FORGET, CHOSEN = "#2563eb", "#dc2626", "#dc2626", "#111827"


def _ids(points) -> list[list[int]]:
    """Customdata ``[[index], …]`` as plain lists: a NumPy array would travel as a typed array,
    and a click's event then carries a dict instead of ``[index]``."""
    return [[int(p)] for p in np.asarray(points).ravel()]


def _title(text: str, note: str) -> dict:
    return {"text": f"{text} · {note}" if note else text, "font": {"size": 13}}


LAYOUT = {"margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "clickmode": "event+select",
          "hovermode": "closest"}  # fmt: skip


def lds_curve(curve: pd.DataFrame) -> go.Figure:
    """LDS against the number of subset models M the datamodel was fitted on, per split."""
    fig = go.Figure()
    for split, color in (("train", POS), ("val", "#059669")):
        c = curve[curve["split"] == split]
        fig.add_trace(go.Scatter(x=c["m"], y=c["lds"], mode="lines+markers", name=split,
                                 line={"color": color}))  # fmt: skip
    ms = sorted(set(curve["m"]))
    fig.update_layout(xaxis={"title": "subset models M", "type": "log", "tickvals": ms},
                      yaxis_title="LDS (Spearman)", height=260, legend={"orientation": "h", "y": -0.35},
                      margin=LAYOUT["margin"])  # fmt: skip
    return fig


def influencer_bars(
    table: pd.DataFrame, labels: list[str], point: int, note: str = ""
) -> go.Figure:
    """The signed weights ``W[point, j]`` of the point's top influencers, one bar each; the
    title ends with ``note`` (the datamodel's LDS)."""
    colors = [POS if w > 0 else NEG for w in table["weight"]]
    names = [f"#{s} · {lab}" for s, lab in zip(table["source"], labels, strict=True)]
    fig = go.Figure(go.Bar(
        x=table["weight"], y=names, orientation="h", marker_color=colors,
        customdata=_ids(table["source"]),
        hovertemplate="train point %{customdata[0]}<br>weight %{x:.4g}<extra></extra>",
    ))  # fmt: skip
    fig.update_layout(xaxis_title=f"W[{point}, j]: predicted change of point {point}'s margin "
                      "when j is in the training set", height=max(240, 22 * len(table) + 80),
                      title=_title(f"Top influencers of point {point}", note),
                      yaxis={"autorange": "reversed", "type": "category"}, **LAYOUT)  # fmt: skip
    return fig


def weight_heatmap(block: np.ndarray, rows: np.ndarray, cols: np.ndarray, title: str) -> go.Figure:
    """``W[rows][:, cols]`` (targets down, train sources across), diverging around 0. A click
    on a cell opens its source (the column's train point)."""
    block = np.asarray(block, dtype=float)
    lim = float(np.abs(block).max()) if block.size else 1.0
    nr, nc = len(rows), len(cols)
    fig = go.Figure(go.Heatmap(
        z=block, x=list(range(nc)), y=list(range(nr)), colorscale="RdBu", zmid=0,
        zmin=-lim, zmax=lim, colorbar={"title": "W"},
        customdata=[[int(r)] * nc for r in rows],
        hovertemplate="target %{customdata}<br>source col %{x}<br>W %{z:.4g}<extra></extra>",
    ))  # fmt: skip
    gx, gy = np.meshgrid(np.arange(nc), np.arange(nr))
    fig.add_trace(go.Scatter(
        x=gx.ravel(), y=gy.ravel(), mode="markers", showlegend=False,
        marker={"size": 10, "color": "rgba(0,0,0,0)"},
        customdata=[[int(c), int(r)] for r in rows for c in cols],
        hovertemplate="source %{customdata[0]} → target %{customdata[1]}<extra></extra>",
    ))  # fmt: skip
    fig.update_layout(
        title=title, height=max(300, 16 * nr + 120),
        xaxis={"title": "train source j", "tickvals": list(range(nc)),
               "ticktext": [str(c) for c in cols], "tickangle": -60},
        yaxis={"title": "target t", "tickvals": list(range(nr)),
               "ticktext": [str(r) for r in rows], "autorange": "reversed"}, **LAYOUT,
    )  # fmt: skip
    return fig


def self_influence_hist(si: np.ndarray, forget: np.ndarray, chosen: int | None) -> go.Figure:
    """Distribution of self-influence ``W[j, j]`` over the train points; the forget set's points
    as red ticks under it (clickable), the chosen point as a black line."""
    fig = go.Figure(go.Histogram(x=si, nbinsx=60, marker_color="#94a3b8", name="train points",
                                 hovertemplate="%{y} points<extra></extra>"))  # fmt: skip
    f = np.asarray(forget, dtype=int)
    if f.size:
        fig.add_trace(go.Scatter(
            x=si[f], y=np.zeros(f.size), mode="markers", name="forget set", yaxis="y2",
            marker={"symbol": "line-ns-open", "size": 16, "color": FORGET,
                    "line": {"width": 2, "color": FORGET}},
            customdata=_ids(f), hovertemplate="point %{customdata[0]}<br>W[j,j] %{x:.4g}"
            "<extra>forget</extra>",
        ))  # fmt: skip
    if chosen is not None and 0 <= chosen < si.size:
        fig.add_vline(x=float(si[chosen]), line_color=CHOSEN, line_dash="dash",
                      annotation_text=f"point {chosen}")  # fmt: skip
    fig.update_layout(xaxis_title="self-influence W[j, j] (margin gained by training on j)",
                      yaxis_title="train points", height=320, bargap=0.02,
                      yaxis2={"overlaying": "y", "range": [-0.2, 4], "visible": False},
                      legend={"orientation": "h", "y": -0.3}, **LAYOUT)  # fmt: skip
    return fig


def moved_bars(table: pd.DataFrame, note: str = "") -> go.Figure:
    """Predicted margin shift ``Δ[t] = −Σ_{j∈F} W[t, j]`` of the points moved most; the title
    ends with ``note`` (the datamodel's LDS)."""
    colors = [FORGET if f else (POS if s > 0 else "#64748b")
              for s, f in zip(table["shift"], table["in_forget"], strict=True)]  # fmt: skip
    fig = go.Figure(go.Bar(
        x=[str(p) for p in table["point"]], y=table["shift"], marker_color=colors,
        customdata=_ids(table["point"]),
        hovertemplate="point %{customdata[0]}<br>Δ margin %{y:.4g}<extra></extra>",
    ))  # fmt: skip
    fig.update_layout(xaxis={"title": "point (red: in the forget set)", "type": "category"},
                      yaxis_title="predicted Δ margin", height=300,
                      title=_title("Points the forget set moves most", note), **LAYOUT)  # fmt: skip
    return fig


def klom_vs_self(df: pd.DataFrame, chosen: int | None) -> go.Figure:
    """Each forget point of an evaluation: its self-influence across, its KLoM up."""
    fig = go.Figure(go.Scatter(
        x=df["self_influence"], y=df["klom"], mode="markers", name="forget points",
        marker={"color": FORGET, "size": 9, "opacity": 0.8},
        customdata=_ids(df["point"]),
        hovertemplate="point %{customdata[0]}<br>W[j,j] %{x:.4g}<br>KLoM %{y:.3f}"
        "<extra></extra>",
    ))  # fmt: skip
    if chosen is not None and chosen in set(df["point"]):
        r = df.loc[df["point"] == chosen].iloc[0]
        fig.add_trace(go.Scatter(x=[r["self_influence"]], y=[r["klom"]], mode="markers",
                                 name=f"point {chosen}", hoverinfo="skip",
                                 marker={"size": 18, "color": "rgba(0,0,0,0)",
                                         "line": {"color": CHOSEN, "width": 2.5}}))  # fmt: skip
    if len(df):
        floor = float(np.percentile(df["floor"], 95))
        fig.add_hline(y=floor, line_dash="dot", line_color="#64748b",
                      annotation_text=f"noise floor P95 {floor:.2f}")  # fmt: skip
    fig.update_layout(xaxis_title="self-influence W[j, j]", yaxis_title="KLoM (nats)",
                      height=360, legend={"orientation": "h", "y": -0.3}, **LAYOUT)  # fmt: skip
    return fig
