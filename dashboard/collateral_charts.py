"""The Compare page's collateral-forgetting chart: per chosen run, KLoM P95 (a bar) and P50 (a
tick) of the retain or val points in each decile of proximity to the forget set, runs side by
side; the noise floor's P50–P95 as a band behind them (``core.evaluation.collateral``).

Pure presentation: DataFrames in, a plotly figure out.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.evaluation.collateral import N_BINS
from dashboard.compare_charts import FLOOR_COLOR, method_color

FLOOR_FILL = "rgba(5, 150, 105, 0.22)"  # the Compare page's noise-floor green (FLOOR_COLOR)

P50_COLOR = "#111827"  # the P50 tick on each bar
GROUP_WIDTH = 0.8  # of a decile's unit width, shared by its runs' bars


def long_table(tables: dict[int, pd.DataFrame], methods: dict[int, str]) -> pd.DataFrame:
    """The runs' decile tables (``core.evaluation.collateral.decile_table``, by run id) stacked, with
    ``run_id`` and ``method`` first."""
    parts = [t.assign(run_id=r, method=methods[r]) for r, t in tables.items()]
    if not parts:
        return pd.DataFrame()
    df = pd.concat(parts, ignore_index=True)
    return df[["run_id", "method", *[c for c in df.columns if c not in ("run_id", "method")]]]


def offsets(n_runs: int) -> list[float]:
    """Where each run's bar sits within its decile: centred, ``GROUP_WIDTH / n_runs`` apart."""
    w = GROUP_WIDTH / max(n_runs, 1)
    return [(i - (n_runs - 1) / 2) * w for i in range(n_runs)]


def collateral_chart(long: pd.DataFrame, split: str, labels: dict[int, str], by: str) -> go.Figure:
    """Bars: each run's KLoM P95 per decile of ``split`` (customdata ``[run_id, decile]``: a
    click opens the decile's points); a dark tick on each bar: its P50. Band: the noise floor
    per decile, from the least P50 to the greatest P95 over the runs (one band when the runs
    share their oracle groups)."""
    t = long[long["split"] == split]
    runs = list(dict.fromkeys(t["run_id"]))
    fig = go.Figure()
    floor = t.groupby("decile").agg(lo=("floor_p50", "min"), hi=("floor_p95", "max"))
    floor = floor.dropna()
    if len(floor):
        xs = [x for d in floor.index for x in (d - 0.48, d + 0.48)]
        lo = [v for v in floor["lo"] for _ in (0, 1)]
        hi = [v for v in floor["hi"] for _ in (0, 1)]
        fig.add_trace(go.Scatter(x=xs, y=lo, mode="lines", line={"width": 0}, showlegend=False,
                                 hoverinfo="skip"))  # fmt: skip
        fig.add_trace(go.Scatter(x=xs, y=hi, mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=FLOOR_FILL, hoverinfo="skip",
                                 name="noise floor P50–P95 (oracle vs oracle)"))  # fmt: skip
    width = GROUP_WIDTH / max(len(runs), 1)
    for run_id, off in zip(runs, offsets(len(runs)), strict=True):
        g = t[(t["run_id"] == run_id) & (t["n"] > 0)]
        color = method_color(str(g["method"].iloc[0])) if len(g) else "#6b7280"
        x = g["decile"] + off
        fig.add_trace(go.Bar(
            x=x, y=g["klom_p95"], width=width * 0.92, name=labels.get(int(run_id), str(run_id)),
            marker={"color": color}, legendgroup=str(run_id),
            customdata=[[int(run_id), int(d)] for d in g["decile"]],  # plain lists (not NumPy)
            text=[f"n {n} · P50 {a:.3f} · floor P95 {f:.3f} · gap {m:+.3f}"
                  for n, a, f, m in zip(g["n"], g["klom_p50"], g["floor_p95"], g["gap_mean"], strict=True)],
            textposition="none",
            hovertemplate="run %{customdata[0]} · decile %{customdata[1]}<br>KLoM P95 %{y:.3f}"
                          "<br>%{text}<extra></extra>",
        ))  # fmt: skip
        fig.add_trace(go.Scatter(
            x=x, y=g["klom_p50"], mode="markers", legendgroup=str(run_id), showlegend=False,
            marker={"symbol": "line-ew", "size": max(6, int(60 * width)), "color": P50_COLOR,
                    "line": {"width": 3, "color": P50_COLOR}},
            hoverinfo="skip",
        ))  # fmt: skip
    if len(floor):  # the band's top edge again over the bars, so that it shows through them
        fig.add_trace(go.Scatter(x=xs, y=hi, mode="lines", showlegend=False, hoverinfo="skip",
                                 line={"color": FLOOR_COLOR, "width": 1.5, "dash": "dash"}))  # fmt: skip
    near = "nearest" if by == "input" else "most weight"
    fig.update_layout(
        barmode="overlay", height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": f"decile of proximity to the forget set (1 = {near}) · {split} points",
               "tickmode": "array", "tickvals": list(range(1, N_BINS + 1)), "range": [0.4, N_BINS + 0.6]},
        yaxis={"title": "KLoM P95 (bar), P50 (tick)<br>(lower is better)", "automargin": True},
        legend={"orientation": "h", "y": -0.2}, clickmode="event+select",
    )  # fmt: skip
    return fig
