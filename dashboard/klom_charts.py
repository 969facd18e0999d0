"""Charts of the KLoM explorer: distributions with the noise floor, points, margin histograms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

SATURATION = math.log(1e5)  # KLoM where the two samples share no bin: q floored at 1e-5
SPLIT_COLORS = {"forget": "#dc2626", "retain": "#2563eb", "val": "#059669"}
FLOOR_COLOR = "#64748b"


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values)
    return x, np.arange(1, x.size + 1) / x.size


def klom_distribution(
    points: pd.DataFrame, split: str, mode: str = "ecdf", log_x: bool = False
) -> go.Figure:
    """One split's KLoM (method vs oracle) beside its noise floor (oracle vs oracle).

    Vertical lines: P95 and P99 of the method's KLoM, P95 of the floor, and the saturation
    level ln(1e5) that a point reaches when the two margin samples do not overlap at all.
    """
    sub = points[points["split"] == split]
    lo = 1e-3 if log_x else None
    k = sub["klom"].to_numpy()
    f = sub["floor"].to_numpy()
    if log_x:
        k, f = np.maximum(k, lo), np.maximum(f, lo)
    fig = go.Figure()
    color = SPLIT_COLORS.get(split, "#2563eb")
    if mode == "ecdf":
        for vals, name, c, dash in (
            (k, "method vs oracle", color, "solid"),
            (f, "noise floor", FLOOR_COLOR, "dash"),
        ):
            x, y = _ecdf(vals)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    name=name,
                    line={"color": c, "dash": dash, "shape": "hv"},
                )
            )
        fig.update_yaxes(title="share of points with KLoM ≤ x", range=[0, 1.02])
    else:
        edges = np.geomspace(lo, max(SATURATION, k.max(), f.max()) * 1.05, 40) if log_x else None
        for vals, name, c in ((k, "method vs oracle", color), (f, "noise floor", FLOOR_COLOR)):
            if edges is not None:
                counts, _ = np.histogram(vals, bins=edges)
                fig.add_trace(go.Bar(x=np.sqrt(edges[:-1] * edges[1:]), y=counts, name=name,
                                     marker_color=c, opacity=0.6, width=np.diff(edges)))  # fmt: skip
            else:
                fig.add_trace(
                    go.Histogram(x=vals, name=name, marker_color=c, opacity=0.6, nbinsx=40)
                )
        fig.update_layout(barmode="overlay")
        fig.update_yaxes(title="points")
    p95, p99 = np.percentile(sub["klom"], [95, 99]) if len(sub) else (np.nan, np.nan)
    fp95 = np.percentile(sub["floor"], 95) if len(sub) else np.nan
    marks = ((p95, "P95", color, "dash", "top left"), (p99, "P99", color, "dot", "top right"),
             (fp95, "floor P95", FLOOR_COLOR, "dash", "bottom right"),
             (SATURATION, "saturation ≈ ln 1e5", "#111827", "dot", "bottom left"))  # fmt: skip
    for x, text, c, dash, where in marks:
        if np.isfinite(x):
            fig.add_vline(x=max(x, lo) if lo else x, line_color=c, line_dash=dash,
                          annotation_text=text, annotation_position=where)  # fmt: skip
    fig.update_xaxes(title="KLoM (nats)", type="log" if log_x else "linear")
    fig.update_layout(
        height=360,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def klom_points(points: pd.DataFrame) -> go.Figure:
    """Every point: KLoM against the signed margin gap, coloured by split; click to drill down."""
    fig = go.Figure()
    for split in ("val", "retain", "forget"):  # forget points drawn last, on top
        sub, c = points[points["split"] == split], SPLIT_COLORS[split]
        fig.add_trace(
            go.Scatter(
                x=sub["gap"], y=sub["klom"], mode="markers", name=split, customdata=sub["point"],
                marker={"color": c, "size": 7 if split == "forget" else 4, "opacity": 0.7},
                hovertemplate="point %{customdata}<br>gap %{x:.2f}<br>KLoM %{y:.3f}<extra>" + split + "</extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        xaxis_title="mean margin: method − oracle  (> 0: under-unlearned, < 0: over-unlearned)",
        yaxis_title="KLoM", height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": -0.25}, clickmode="event+select",
    )  # fmt: skip
    return fig


def margin_histograms(unlearned: np.ndarray, oracle: np.ndarray, title: str = "") -> go.Figure:
    """The point's margins over the method's models and over the oracle models, overlaid."""
    both = np.clip(np.concatenate([unlearned, oracle]), -100, 100)
    edges = np.linspace(both.min(), both.max() if both.max() > both.min() else both.min() + 1, 21)
    fig = go.Figure()
    for vals, name, c in (
        (unlearned, "method's models", "#dc2626"),
        (oracle, "oracle models", FLOOR_COLOR),
    ):
        counts, _ = np.histogram(np.clip(vals, -100, 100), bins=edges)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, name=name, marker_color=c,
                             opacity=0.6, width=np.diff(edges)))  # fmt: skip
    fig.update_layout(
        barmode="overlay", title=title, xaxis_title="margin  z_y − logsumexp_{j≠y} z_j",
        yaxis_title="models", height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.3},
    )  # fmt: skip
    return fig
