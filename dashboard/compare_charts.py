"""The Compare page's charts: KLoM (or a membership audit's figure) against compute cost (spent,
or spent + consumed; linear or log), one colour per method, Pareto fronts, the do-nothing,
retrain and noise-floor references; per-point distributions and the over/under-unlearning view."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.evaluation.compare import noise_floor, oracle_access, pareto_front

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
# the membership audits' y axes: a short title (two lines at most, each within
# TITLE_LINE_CHARS, so that it fits beside the plot); the page's caption explains them
AUDIT_SCORES = {
    "ulira_bacc_mean": "U-LiRA balanced accuracy on forget points<br>(0.5 = indistinguishable)",
    "ulira_tpr1": "U-LiRA TPR at 1% FPR<br>(lower is better)",
    "mia_forget_share_excess": "MIA: |forget share called members<br>− the oracles' share|",
}
TITLE_LINE_CHARS = 45  # ~7 px a character: 45 fit the plot's 380 px height
X_MODES = {"spent": "spent", "total": "spent + consumed"}
X_TITLES = {
    "spent": "compute spent (share of retraining's example-gradients)",
    "total": "spent + consumed (retrainings per model)",
}

# the audit columns the Compare page's table shows (after the KLoM ones)
AUDIT_TABLE_COLUMNS = ["ulira_bacc_mean", "ulira_floor_bacc_mean", "ulira_tpr1",
                       "mia_forget_member_share", "mia_floor_forget_member_share"]  # fmt: skip
ACCESS_TAGS = {"oracle": "oracle access", "is the oracle": "the oracle", "datamodel": "datamodel"}
FLOOR_COLOR = "#059669"


def axis_title(score: str) -> str:
    """The y-axis title of a score: KLoM figures or a membership audit's."""
    if score in AUDIT_SCORES:
        return AUDIT_SCORES[score]
    return f"KLoM {SCORES[score]}<br>(lower is better)"


def legend_name(method: str) -> str:
    """The legend entry of a method: its name, tagged with what it reads beyond the originals
    (``core.evaluation.compare.oracle_access``): ``oracle_matching · oracle access``."""
    tag = ACCESS_TAGS.get(oracle_access(method))
    return f"{method} · {tag}" if tag else method


def zero_position(x: pd.Series) -> float:
    """Where a log axis draws cost 0: one decade below the smallest positive cost's decade,
    ``10^(⌊log10 min x⌋ − 1)`` (0.01 when no cost is positive)."""
    pos = x[x > 0]
    return 10.0 ** (math.floor(math.log10(float(pos.min()))) - 1) if len(pos) else 0.01


# one colour per method on every chart of the page (the registry's methods first, in a fixed
# order, so that a method keeps its colour whichever runs are shown)
_ORDER = ("do_nothing", "retrain", "gradient_descent", "gradient_ascent", "ga_gd",
          "random_labels", "l1_sparse", "salun", "scrub", "del", "oracle_matching", "dm_direct",
          "dm_matching", "noisy_descent")  # fmt: skip
_PALETTE = ("#6b7280", "#111827", "#2563eb", "#f97316", "#a16207", "#db2777", "#0891b2",
            "#9333ea", "#65a30d", "#b91c1c", "#16a34a", "#eab308", "#78350f", "#e879f9",
            "#be185d", "#1d4ed8")  # fmt: skip


def method_color(method: str) -> str:
    """The colour of ``method`` on the Compare page's charts."""
    if method in _ORDER:
        return _PALETTE[_ORDER.index(method)]
    return _PALETTE[len(_ORDER) + zlib.crc32(method.encode()) % (len(_PALETTE) - len(_ORDER))]


def frontier_chart(
    runs: pd.DataFrame, score: str, x_mode: str = "spent", log_x: bool = False
) -> go.Figure:
    """Each run a marker at (x, score), x = ``cost`` (``x_mode`` "spent") or ``cost +
    consumed_cost`` ("total"; a dotted segment from the spent cost to it); each method's Pareto
    front (over the x shown) a line. Reference lines (layout shapes, no data): do-nothing,
    retrain and the score's noise floor (``core.evaluation.compare.noise_floor``; a band when the runs'
    floors differ). ``log_x``: a log x axis; zero-cost runs at ``zero_position``, ticked "0"."""
    fig = go.Figure()
    runs = runs[runs[score].notna()].copy()  # runs not audited (stored before audits): no figure
    runs["x"] = runs["cost"] if x_mode == "spent" else runs["total_cost"]
    zero = zero_position(runs["x"]) if log_x else 0.0
    if log_x:
        runs["x"] = runs["x"].mask(runs["x"] <= 0, zero)
        runs["from"] = runs["cost"].mask(runs["cost"] <= 0, zero)
    else:
        runs["from"] = runs["cost"]
    for method, g in runs.groupby("method", sort=True):
        front = g[pareto_front(g["x"].to_numpy(), g[score].to_numpy())].sort_values("x")
        color = method_color(str(method))
        text = [f"{r.method} ({r.oracle_access})<br>spent {r.cost:.3g} + consumed "
                f"{r.consumed_cost:.3g} = {r.total_cost:.3g}<br>{r.params}"
                for r in g.itertuples()]  # fmt: skip
        fig.add_trace(go.Scatter(
            x=g["x"], y=g[score], mode="markers", name=legend_name(str(method)),
            legendgroup=method, marker={"color": color},
            customdata=[[int(r)] for r in g["run_id"]], text=text,
            hovertemplate="run %{customdata[0]}<br>%{text}<br>score %{y:.3f}<extra></extra>",
        ))  # fmt: skip
        if len(front) > 1:
            fig.add_trace(go.Scatter(x=front["x"], y=front[score], mode="lines",
                                     line={"color": color}, legendgroup=method,
                                     showlegend=False, hoverinfo="skip"))  # fmt: skip
        spent = g[g["consumed_cost"] > 0]
        if x_mode == "total" and len(spent):  # spent ─ ─ ▸ spent + consumed
            xs = [v for a, b in zip(spent["from"], spent["x"], strict=True) for v in (a, b, None)]
            ys = [v for y in spent[score] for v in (y, y, None)]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", legendgroup=method,
                                     line={"color": color, "dash": "dot", "width": 1},
                                     marker={"symbol": "line-ns-open", "size": 10},
                                     showlegend=False, hoverinfo="skip"))  # fmt: skip
    for ref, dash in (("do_nothing", "dot"), ("retrain", "dash")):
        hit = runs[runs["method"] == ref]
        if len(hit):
            y = float(hit[score].min())
            fig.add_hline(y=y, line_dash=dash, line_color="#6b7280",
                          annotation_text=f"{ref} {y:.3f}", annotation_position="top left")  # fmt: skip
    floor = noise_floor(runs, score)
    if floor is not None:
        label = f"noise floor (oracle vs oracle) {floor[0]:.3f}"
        if floor[1] > floor[0]:
            fig.add_hrect(y0=floor[0], y1=floor[1], fillcolor=FLOOR_COLOR, opacity=0.15,
                          line_width=0, annotation_text=f"{label}–{floor[1]:.3f}",
                          annotation_position="bottom right")  # fmt: skip
        else:
            fig.add_hline(y=floor[0], line_dash="dashdot", line_color=FLOOR_COLOR,
                          annotation_text=label, annotation_position="bottom right")  # fmt: skip
    xaxis: dict = {"title": X_TITLES[x_mode], "automargin": True}
    if log_x:
        xmax = float(runs["x"].max()) if runs["x"].notna().any() else 1.0
        top = math.ceil(math.log10(max(xmax, 1.0)))
        ticks = [10.0**k for k in range(round(math.log10(zero)) + 1, top + 1)]
        xaxis.update(type="log", tickvals=[zero, *ticks],
                     ticktext=["0", *(f"{t:g}" for t in ticks)])  # fmt: skip
    fig.update_layout(
        xaxis=xaxis, yaxis={"title": axis_title(score), "automargin": True}, height=460,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )  # fmt: skip
    return fig


_SCORE_NOTES = {
    "ulira_bacc_mean": "U-LiRA balanced accuracy: per forget point, a likelihood-ratio test "
    "telling the method's models from oracles, averaged over the points; 0.5 = "
    "indistinguishable, lower is better.",
    "ulira_tpr1": "U-LiRA TPR: the share of the method's models caught at 1% false positives; "
    "lower is better.",
    "mia_forget_share_excess": "Population MIA: the distance between the share of forget points "
    "it calls members and the oracles' share; 0 for a perfect unlearner, so no floor line.",
}


def frontier_caption(score: str, x_mode: str, log_x: bool) -> str:
    """What the KLoM-vs-compute chart draws, in words: the reference lines, the x axis (spent,
    or spent + consumed), what each method reads (oracle or datamodel) and, on a log axis, where
    zero-cost runs sit."""
    parts = [
        "Dotted line: do-nothing; dashed: retrain (the oracles' own recipe, cost 1); green "
        "dash-dot: this score's noise floor, the same figure between two oracle groups — what a "
        "perfect unlearner scores with this many models (a band when runs were scored against "
        "different oracle groups).",
        _SCORE_NOTES.get(score, ""),
        "Legend tags: oracle access — Oracle Matching reads a held-out group of oracles (one "
        "retraining per model); the oracle — retrain; datamodel — Datamodel-Direct and DMM read "
        "a datamodel fitted on M subset models (M/N retrainings per model), no oracle.",
        "x: compute spent, the method's own example-gradients over retraining's; what it read "
        "is not counted (switch to spent + consumed)."
        if x_mode == "spent"
        else "x: spent + consumed, in retrainings per model; a dotted segment runs from what a "
        "method spent to its total.",
    ]
    if log_x:
        parts.append("Log x axis: runs at cost 0 (do-nothing, Datamodel-Direct when spent only) "
                     "are drawn at the tick 0, a decade left of the cheapest run's decade.")  # fmt: skip
    return " ".join(p for p in parts if p)


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
