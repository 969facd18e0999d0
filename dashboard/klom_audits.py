"""The KLoM explorer's membership audits (``core.evaluation.audits``): the run's summary table and the
drill-down's sentence for one forget point. Pure presentation over stored results."""

from __future__ import annotations

import pandas as pd
import streamlit as st

NOT_AUDITED = (
    "No membership audits for this evaluation (it was stored before the lab had them): "
    "`python -m core audit {run}` computes them from its stored margins."
)
HELP = {
    "audit": "U-LiRA: a likelihood-ratio test per forget point, method's models vs oracles. "
    "MIA: a population attack trained per model on retain (members) vs val (non-members).",
    "figure": "What the number measures.",
    "method": "The figure for the method's models.",
    "floor": "The same figure between two independent oracle groups: what a perfect unlearner "
    "scores with this many models.",
}


# the audit's name leads each stored meaning; the audit column shows it already
_AUDIT_PREFIX = r"^(U-LiRA |population MIA: )"
# rows this tall (> 64 px) let Streamlit wrap a long figure onto a second line instead of
# cutting it off
ROW_HEIGHT = 66


def summary_table(audit: dict) -> pd.DataFrame:
    """One row per audit figure: audit, figure, method, floor (from ``audit_results``)."""
    s = audit["summaries"]
    return pd.DataFrame({
        "audit": s["audit"].map({"ulira": "U-LiRA", "mia": "MIA"}).fillna(s["audit"]),
        "figure": s["meaning"].str.replace(_AUDIT_PREFIX, "", regex=True),
        "method": s["value"], "floor": s["floor"],
    })  # fmt: skip


def column_config() -> dict:
    """Narrow name and number columns, so that the figure column has the room."""
    cfg = {k: st.column_config.TextColumn(k, help=v, width="small") for k, v in HELP.items()}
    cfg["figure"] = st.column_config.TextColumn("figure", help=HELP["figure"], width="large")
    for k in ("method", "floor"):
        cfg[k] = st.column_config.NumberColumn(k, help=HELP[k], format="%.3f", width="small")
    return cfg


def point_lines(audit: dict | None, point: int) -> list[str]:
    """Markdown lines on one point's audits; none for a point outside the forget set (only
    forget points are audited) or a run without audits."""
    if audit is None:
        return []
    pts = audit["points"].set_index("point")
    if point not in pts.index:
        return []
    r = pts.loc[point]
    return [
        f"U-LiRA balanced accuracy **{r['ulira_bacc']:.2f}** (floor {r['ulira_floor_bacc']:.2f}; "
        "0.5 = indistinguishable from the oracles)",
        f"MIA: a member for **{100 * r['mia_member_share']:.0f}%** of the method's models "
        f"(oracles {100 * r['mia_floor_member_share']:.0f}%)",
    ]
