"""Shared charts and widgets. Pure presentation: data comes in as DataFrames / arrays."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.linear import METHODS

METHOD_COLORS = {
    "GD": "#d97706",
    "OM": "#2563eb",
    "OM (retain only)": "#7c3aed",
    "GD+GA": "#dc2626",
}


def linear_chart(curves: pd.DataFrame, outcomes: pd.DataFrame) -> go.Figure:
    """rel_dist against step, one line per method, log-scale y; diverged methods marked ✕."""
    fig = go.Figure()
    status = outcomes.set_index("method")["status"].to_dict() if not outcomes.empty else {}
    for method in METHODS:
        c = curves[curves["method"] == method]
        if c.empty:
            continue
        label = f"{method} — {status.get(method, '')}"
        fig.add_trace(
            go.Scatter(
                x=c["step"],
                y=c["rel_dist"].clip(lower=1e-16),
                mode="lines",
                name=label,
                line={
                    "color": METHOD_COLORS.get(method),
                    "width": 2,
                    "dash": "dash" if method == "OM (retain only)" else "solid",
                },
                hovertemplate="step %{x}<br>rel. distance %{y:.3g}<extra>" + method + "</extra>",
            )
        )
        if status.get(method) == "diverged":
            last = c.iloc[-1]
            fig.add_trace(
                go.Scatter(
                    x=[last["step"]],
                    y=[last["rel_dist"]],
                    mode="markers+text",
                    marker={"symbol": "x", "size": 12, "color": METHOD_COLORS.get(method)},
                    text=["diverged"],
                    textposition="top left",
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    fig.add_hline(y=1e-6, line_dash="dot", line_color="#94a3b8")  # the 1e-6 mark of the table
    fig.update_layout(
        xaxis_title="step",
        yaxis_title="‖θₜ − θ_ret‖ / ‖θ_full − θ_ret‖",
        yaxis_type="log",
        yaxis_exponentformat="power",
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        height=460,
    )
    return fig


def class_histogram(labels, class_names: list[str], title: str = "") -> go.Figure:
    """Bar chart of how many chosen points fall in each class."""
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(class_names))
    fig = go.Figure(go.Bar(x=class_names, y=counts, marker_color="#2b6cb0"))
    fig.update_layout(
        title=title, xaxis_title="class", yaxis_title="points", height=260,
        margin={"l": 10, "r": 10, "t": 30 if title else 10, "b": 10}, xaxis_type="category",
    )  # fmt: skip
    return fig


def upscale(img, size: int = 64):
    """Nearest-neighbour upscaling so tiny images (8×8 digits) stay crisp: ``(H, W[, 3])`` uint8."""
    import numpy as np

    img = np.asarray(img)
    k = max(1, size // img.shape[0])
    return np.repeat(np.repeat(img, k, axis=0), k, axis=1)


def gallery(st, data, indices, max_images: int = 60, columns: int = 10) -> None:
    """A grid of train images with their labels (the first ``max_images``)."""
    idx = list(indices)[:max_images]
    for start in range(0, len(idx), columns):
        cols = st.columns(columns)
        for col, i in zip(cols, idx[start : start + columns], strict=False):
            label = data.class_names[int(data.y_train[int(i)])]
            col.image(upscale(data.image("train", int(i))), caption=f"#{i} · {label}", width=64)
    if len(indices) > max_images:
        st.caption(f"… and {len(indices) - max_images} more")
