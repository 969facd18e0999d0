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
