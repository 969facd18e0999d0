"""Charts of the KLoM explorer: distributions with the noise floor, points, margin histograms.

Pure presentation: DataFrames / arrays in, plotly figures out. On log axes plotly expects axis
ranges and annotation positions in log10 units (shapes, though, in data units), so every range
and annotation position handed to a log axis here goes through ``_ax``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.components import log_ticks

SATURATION = math.log(1e5)  # KLoM where the two samples share no bin: q floored at 1e-5
LOG_FLOOR = 1e-3  # on a log axis, KLoM values below this are drawn at this value
SPLIT_COLORS = {"forget": "#dc2626", "retain": "#2563eb", "val": "#059669"}
FLOOR_COLOR = "#64748b"
MAX_DOT = 6  # px: the widest marker of the per-point chart that still wins a click on itself
MARGIN_TITLE = "margin  z<sub>y</sub> − log Σ<sub>j≠y</sub> e<sup>z<sub>j</sub></sup>"


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values)
    return x, np.arange(1, x.size + 1) / x.size


def _ax(x: float, log_x: bool) -> float:
    """A data value as a position on the x axis (log10 of it on a log axis)."""
    return math.log10(max(x, LOG_FLOOR)) if log_x else x


def _log_low(k: np.ndarray, f: np.ndarray) -> float:
    """The left end of a log axis: a little below the smallest value, never below LOG_FLOOR."""
    smallest = min(float(np.min(k, initial=np.inf)), float(np.min(f, initial=np.inf)))
    return max(LOG_FLOOR, smallest * 0.8) if np.isfinite(smallest) else LOG_FLOOR


def shared_edges(k: np.ndarray, f: np.ndarray, log_x: bool, bins: int = 40) -> np.ndarray:
    """One set of histogram edges for the method and the floor, covering both and saturation."""
    top = max(SATURATION, float(np.max(k, initial=0)), float(np.max(f, initial=0))) * 1.05
    if log_x:
        return np.geomspace(_log_low(k, f), top, bins + 1)
    return np.linspace(0.0, top, bins + 1)


def klom_distribution(
    points: pd.DataFrame, split: str, mode: str = "ecdf", log_x: bool = False
) -> go.Figure:
    """One split's KLoM (method vs oracle) beside its noise floor (oracle vs oracle).

    Vertical lines: P95 and P99 of the method's KLoM, P95 of the floor, and the saturation
    level ln(1e5) that a point reaches when the two margin samples do not overlap at all. Their
    labels (with the values) sit above the plot on staggered rows so that they never overlap.
    """
    sub = points[points["split"] == split]
    k = sub["klom"].to_numpy(dtype=float)
    f = sub["floor"].to_numpy(dtype=float)
    if log_x:
        k, f = np.maximum(k, LOG_FLOOR), np.maximum(f, LOG_FLOOR)
    fig = go.Figure()
    color = SPLIT_COLORS.get(split, "#2563eb")
    series = (("method vs oracle", k, color, "solid"), ("noise floor", f, FLOOR_COLOR, "dash"))
    if mode == "ecdf":
        for name, vals, c, dash in series:
            x, y = _ecdf(vals)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name,
                                     line={"color": c, "dash": dash, "shape": "hv"}))  # fmt: skip
        fig.update_yaxes(title="share of points with KLoM ≤ x", range=[0, 1.02])
    else:
        edges = shared_edges(k, f, log_x)  # the same bins for both, so they compare bar by bar
        centers = np.sqrt(edges[:-1] * edges[1:]) if log_x else (edges[:-1] + edges[1:]) / 2
        for name, vals, c, _ in series:
            counts, _ = np.histogram(vals, bins=edges)
            fig.add_trace(go.Bar(x=centers, y=counts, name=name, marker_color=c, opacity=0.55,
                                 width=np.diff(edges), hovertemplate="%{y} points<extra>"
                                 + name + "</extra>"))  # fmt: skip
        fig.update_layout(barmode="overlay", bargap=0)
        fig.update_yaxes(title="points")
    marks = []
    if len(sub):
        p95, p99 = np.percentile(sub["klom"], [95, 99])
        fp95 = np.percentile(sub["floor"], 95)
        marks = [(p95, f"P95 {p95:.2f}", color, "dash"), (p99, f"P99 {p99:.2f}", color, "dot"),
                 (fp95, f"floor P95 {fp95:.2f}", FLOOR_COLOR, "dash")]  # fmt: skip
    marks.append((SATURATION, f"saturation ln 10⁵ ≈ {SATURATION:.1f}", "#111827", "dot"))
    top = max(SATURATION, float(np.max(k, initial=0)), float(np.max(f, initial=0))) * 1.08
    x_range = [math.log10(_log_low(k, f)), math.log10(top)] if log_x else [0, top]
    for row, (x, text, c, dash) in enumerate(sorted(marks, key=lambda m: m[0])):
        pos = _ax(x, log_x)
        right_half = pos > (x_range[0] + x_range[1]) / 2  # label towards the middle: never cut
        at = max(x, LOG_FLOOR) if log_x else x  # shapes take data values even on log axes
        fig.add_shape(type="line", x0=at, x1=at, y0=0, y1=1, yref="paper",
                      line={"color": c, "dash": dash, "width": 1.5})  # fmt: skip
        fig.add_annotation(x=pos, y=1.0 + 0.075 * row, yref="paper", text=text, showarrow=False,
                           xanchor="right" if right_half else "left", yanchor="bottom",
                           font={"color": c, "size": 11})  # fmt: skip
    ticks = log_ticks(_log_low(k, f), top) if log_x else {}  # labels 0.2, not plotly's "2"
    fig.update_xaxes(title="KLoM (nats)", type="log" if log_x else "linear", range=x_range,
                     **ticks)  # fmt: skip
    fig.update_layout(
        height=400,
        margin={"l": 10, "r": 10, "t": 20 + 24 * len(marks), "b": 10},
        legend={"orientation": "h", "y": -0.22},
    )
    return fig


def klom_points(points: pd.DataFrame, chosen: int | None = None) -> go.Figure:
    """Every point: KLoM against the signed margin gap, coloured by split; click to drill down.

    Each marker carries ``[point index, split]`` as customdata, so a click names the very point
    clicked. ``chosen`` is ringed in black (that ring ignores the mouse).

    Which dot a click picks: plotly scores each trace's nearest marker by
    ``max(d − r, 1 − 3/r)`` pixels (``d`` from the cursor to its centre, ``r`` = max(3, size/2)),
    and a later trace wins a tie. Every marker here is at most ``MAX_DOT`` px wide, so a click
    anywhere on a dot scores 0, the best score: the dot under the cursor wins, and among
    overlapping dots the forget point, whose trace comes last and is drawn on top. (Forget dots
    of 8 px scored 1 − 3/4 = 0.25 at best, so a retain dot within 3.25 px of the cursor took
    the click.) Forget dots stand out by an outline instead of by size.
    """
    fig = go.Figure()
    for split in ("val", "retain", "forget"):  # forget points drawn last, on top
        sub, c = points[points["split"] == split], SPLIT_COLORS[split]
        forget = split == "forget"
        fig.add_trace(
            go.Scatter(
                x=sub["gap"], y=sub["klom"], mode="markers", name=split,
                customdata=np.column_stack([sub["point"].to_numpy(), sub["split"].to_numpy()]),
                marker={"color": c, "size": MAX_DOT if forget else 5,
                        "opacity": 0.9 if forget else 0.75,
                        "line": {"color": "#7f1d1d" if forget else c, "width": 1 if forget else 0}},
                hovertemplate="point %{customdata[0]} (%{customdata[1]})<br>gap %{x:.3f}"
                "<br>KLoM %{y:.3f}<extra></extra>",
            )
        )  # fmt: skip
    if chosen is not None and chosen in set(points["point"]):
        row = points.loc[points["point"] == chosen].iloc[0]
        fig.add_trace(go.Scatter(x=[row["gap"]], y=[row["klom"]], mode="markers",
                                 name=f"point {chosen}", hoverinfo="skip",
                                 marker={"size": 18, "color": "rgba(0,0,0,0)",
                                         "line": {"color": "#111827", "width": 2.5}}))  # fmt: skip
    fig.update_layout(
        xaxis_title="gap: mean margin of the method's models − of the oracles' "
        "(> 0 under-unlearned, < 0 over-unlearned)",
        yaxis_title="KLoM (nats)", height=400, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": -0.25}, clickmode="event+select", hovermode="closest",
    )  # fmt: skip
    return fig


def margin_histograms(unlearned: np.ndarray, oracle: np.ndarray, title: str = "") -> go.Figure:
    """The point's margins over the method's models and over the oracle models, on the very
    bins KLoM uses: 20 equal-width bins over the joint range, clipped to [−100, 100]."""
    both = np.clip(np.concatenate([unlearned, oracle]), -100, 100)
    edges = np.linspace(both.min(), both.max() if both.max() > both.min() else both.min() + 1, 21)
    fig = go.Figure()
    for vals, name, c in (
        (unlearned, "method's models", "#dc2626"),
        (oracle, "oracle models", FLOOR_COLOR),
    ):
        counts, _ = np.histogram(np.clip(vals, -100, 100), bins=edges)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, name=name, marker_color=c,
                             opacity=0.55, width=np.diff(edges)))  # fmt: skip
    fig.update_layout(
        barmode="overlay", bargap=0, title=title, xaxis_title=MARGIN_TITLE,
        yaxis_title="models", height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.3},
    )  # fmt: skip
    return fig
