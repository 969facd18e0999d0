"""The Compare page's chart: KLoM (or a membership audit's figure) against compute cost, one
colour per method, Pareto fronts."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.compare import pareto_front

SCORES = {
    "klom_p99_avg": "P99 averaged over forget, retain, val",
    "klom_p95_avg": "P95 averaged",
    "forget_p95": "forget P95",
    "retain_p95": "retain P95",
    "val_p95": "val P95",
    "ulira_bacc_mean": "U-LiRA balanced accuracy",
    "ulira_tpr1": "U-LiRA TPR at 1% FPR",
    "mia_forget_share_excess": "MIA forget members, distance to the oracles'",
}
# the membership audits' y axes: axis title, and the runs_table column of their floor
AUDIT_SCORES = {
    "ulira_bacc_mean": ("U-LiRA balanced accuracy on the forget set, mean over points (0.5 = "
                        "indistinguishable; lower is better)", "ulira_floor_bacc_mean"),
    "ulira_tpr1": ("U-LiRA true-positive rate at 1% false positives (lower is better)",
                   "ulira_floor_tpr1"),
    "mia_forget_share_excess": ("population MIA: |share of forget points called members − the "
                                "oracles' share| (lower is better)", None),
}  # fmt: skip

# the audit columns the Compare page's table shows (after the KLoM ones)
AUDIT_TABLE_COLUMNS = ["ulira_bacc_mean", "ulira_floor_bacc_mean", "ulira_tpr1",
                       "mia_forget_member_share", "mia_floor_forget_member_share"]  # fmt: skip


def axis_title(score: str) -> str:
    """The y-axis title of a score: KLoM figures or a membership audit's."""
    if score in AUDIT_SCORES:
        return AUDIT_SCORES[score][0]
    return f"KLoM {SCORES[score]} (lower is better)"


# one colour per method on every chart of the page (the registry's methods first, in a fixed
# order, so that a method keeps its colour whichever runs are shown)
_ORDER = ("do_nothing", "retrain", "gradient_descent", "gradient_ascent", "ga_gd",
          "random_labels", "l1_sparse", "salun", "scrub", "del", "oracle_matching", "dm_direct",
          "dm_matching")  # fmt: skip
_PALETTE = ("#6b7280", "#111827", "#2563eb", "#f97316", "#a16207", "#db2777", "#0891b2",
            "#9333ea", "#65a30d", "#b91c1c", "#16a34a", "#eab308", "#4f46e5", "#0d9488",
            "#be185d", "#1d4ed8")  # fmt: skip


def method_color(method: str) -> str:
    """The colour of ``method`` on the Compare page's charts."""
    if method in _ORDER:
        return _PALETTE[_ORDER.index(method)]
    return _PALETTE[len(_ORDER) + zlib.crc32(method.encode()) % (len(_PALETTE) - len(_ORDER))]


def frontier_chart(runs: pd.DataFrame, score: str) -> go.Figure:
    """Each run a marker at (cost, score); each method's Pareto front a line; do-nothing and
    retrain (the noise floor) as dotted reference lines."""
    fig = go.Figure()
    runs = runs[runs[score].notna()]  # runs not audited (stored before audits) have no figure
    for method, g in runs.groupby("method", sort=True):
        front = g[pareto_front(g["cost"].to_numpy(), g[score].to_numpy())].sort_values("cost")
        color = method_color(str(method))
        fig.add_trace(go.Scatter(
            x=g["cost"], y=g[score], mode="markers", name=method, legendgroup=method,
            marker={"color": color},
            customdata=[[int(r)] for r in g["run_id"]], text=g["params"],
            hovertemplate="run %{customdata[0]}<br>cost %{x:.3f}<br>score %{y:.3f}<br>%{text}",
        ))  # fmt: skip
        if len(front) > 1:
            fig.add_trace(go.Scatter(x=front["cost"], y=front[score], mode="lines",
                                     line={"color": color}, legendgroup=method,
                                     showlegend=False, hoverinfo="skip"))  # fmt: skip
    for ref, dash in (("do_nothing", "dot"), ("retrain", "dash")):
        hit = runs[runs["method"] == ref]
        if len(hit):
            fig.add_hline(y=float(hit[score].min()), line_dash=dash, line_color="#6b7280",
                          annotation_text=ref, annotation_position="top left")  # fmt: skip
    if score in AUDIT_SCORES and AUDIT_SCORES[score][1] and len(runs):  # oracle vs oracle
        fig.add_hline(y=float(runs[AUDIT_SCORES[score][1]].mean()), line_dash="dash",
                      line_color="#64748b", annotation_text="floor (oracle vs oracle)",
                      annotation_position="bottom right")  # fmt: skip
    fig.update_layout(
        xaxis_title="compute cost (share of retraining's example-gradients)",
        yaxis_title=axis_title(score), height=460,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )  # fmt: skip
    return fig


def run_labels(runs: pd.DataFrame) -> dict[int, str]:
    """``{run_id: "method · cost 0.05 · run 12"}`` for legends and pickers."""
    return {int(r.run_id): f"{r.method} · cost {r.cost:.3g} · run {int(r.run_id)}"
            for r in runs.itertuples()}  # fmt: skip


def distribution_chart(points: pd.DataFrame, labels: dict[int, str]) -> go.Figure:
    """Per-point KLoM of each chosen run, one box per run in each split, with the noise floor's
    distribution (the same for every run of the forget set) as the grey first box."""
    fig = go.Figure()
    first = int(points["run_id"].iloc[0])
    floor = points[points["run_id"] == first]
    fig.add_trace(go.Box(x=floor["split"], y=floor["floor"], name="noise floor",
                         marker_color="#9ca3af", boxpoints=False))  # fmt: skip
    for run_id, g in points.groupby("run_id", sort=False):
        fig.add_trace(go.Box(x=g["split"], y=g["klom"], name=labels.get(int(run_id), str(run_id)),
                             marker_color=method_color(str(g["method"].iloc[0])),
                             boxpoints="outliers", customdata=[[int(p)] for p in g["point"]],
                             hovertemplate="point %{customdata[0]}<br>KLoM %{y:.3f}"))  # fmt: skip
    fig.update_layout(boxmode="group", yaxis_title="KLoM per point (lower is better)",
                      height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "y": -0.15})  # fmt: skip
    return fig


def gap_chart(points: pd.DataFrame, labels: dict[int, str]) -> go.Figure:
    """The signed over/under-unlearning view: for each chosen run, every forget point's mean-
    margin gap (unlearned − oracle) as a dot (customdata ``[run_id, point]``, clickable) over
    its box. Above 0 the point is still remembered (under-unlearned); below 0 it is pushed
    further than retraining would (over-unlearned)."""
    f = points[points["split"] == "forget"]
    fig = go.Figure()
    ticks = []
    for i, (run_id, g) in enumerate(f.groupby("run_id", sort=False)):
        ticks.append(f"{g['method'].iloc[0]} · run {int(run_id)}")  # short: 13 fit side by side
        jitter = np.random.default_rng(int(run_id)).uniform(-0.18, 0.18, len(g))
        fig.add_trace(go.Box(x=np.full(len(g), i), y=g["gap"], boxpoints=False, width=0.5,
                             marker_color="#9ca3af", hoverinfo="skip"))  # fmt: skip
        fig.add_trace(go.Scatter(
            x=i + jitter, y=g["gap"], mode="markers",
            marker={"size": 7, "opacity": 0.8, "color": method_color(str(g["method"].iloc[0]))},
            customdata=[[int(run_id), int(p)] for p in g["point"]],  # plain lists: a
            # NumPy array would reach the browser as a typed array, and a click as a dict
            hovertemplate="point %{customdata[1]}<br>gap %{y:.3f}<extra></extra>",
        ))  # fmt: skip
    fig.add_hline(y=0, line_dash="dash", line_color="#6b7280",
                  annotation_text="the oracles' mean margin", annotation_position="bottom right")  # fmt: skip
    fig.update_layout(yaxis_title="mean margin gap on forget points (unlearned − oracle)",
                      xaxis={"tickmode": "array", "tickvals": list(range(len(ticks))),
                             "ticktext": ticks, "tickangle": -35, "automargin": True},
                      showlegend=False, height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10})  # fmt: skip
    return fig
