"""Tables and sentences of the KLoM explorer: the per-split summary and what its numbers mean."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.evaluation.klom import SPLITS
from dashboard.components import plain

# With n points, np.percentile (linear) puts P_q at rank (n − 1)·q/100: between the two largest
# values as soon as that rank reaches n − 2, i.e. n ≤ 21 for P95 and n ≤ 101 for P99.
P95_TOP_TWO, P99_TOP_TWO = 21, 101

SUMMARY_HELP = {
    "points": "How many points the split has.",
    "KLoM P95": "95th percentile of the per-point KLoM of the method against the oracles (nats; "
    "lower is better).",
    "KLoM P99": "99th percentile of the per-point KLoM (nats).",
    "KLoM mean": "Mean per-point KLoM (nats).",
    "floor P95": "95th percentile of the noise floor: KLoM between two independent groups of "
    "oracles, what a perfect unlearner scores with this many models.",
    "floor P99": "99th percentile of the noise floor (nats).",
    "P95 ÷ floor P95": "How many times the noise floor the method's P95 is; about 1 means as "
    "good as can be told with this many models.",
    "argmax acc. method %": "Share of (model, point) pairs whose top-scoring class is the label, "
    "over the method's models.",
    "argmax acc. oracles %": "The same over the noise-floor oracle group (retrained without the "
    "forget set): what the method's accuracy should look like.",
}


def summary_table(summ: pd.DataFrame) -> pd.DataFrame:
    """One row per split (forget, retain, val) from an evaluation's klom_summaries rows."""
    s = summ.set_index(["split", "metric"])
    rows = []
    for split in SPLITS:
        if (split, "klom") not in s.index:
            continue
        k, f = s.loc[(split, "klom")], s.loc[(split, "floor")]
        ratio = k["p95"] / f["p95"] if f["p95"] > 0 else np.nan
        rows.append({
            "split": split, "points": int(k["count"]),
            "KLoM P95": k["p95"], "KLoM P99": k["p99"], "KLoM mean": k["mean"],
            "floor P95": f["p95"], "floor P99": f["p99"], "P95 ÷ floor P95": ratio,
            "argmax acc. method %": 100 * k["accuracy"],
            "argmax acc. oracles %": 100 * f["accuracy"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def column_config() -> dict:
    cfg = {
        name: st.column_config.NumberColumn(name, help=text, format="%.3f")
        for name, text in SUMMARY_HELP.items()
    }
    cfg["points"] = st.column_config.NumberColumn("points", help=SUMMARY_HELP["points"])
    cfg["P95 ÷ floor P95"] = st.column_config.NumberColumn(
        "P95 ÷ floor P95", help=SUMMARY_HELP["P95 ÷ floor P95"], format="%.1f×"
    )
    for name in ("argmax acc. method %", "argmax acc. oracles %"):
        cfg[name] = st.column_config.NumberColumn(name, help=SUMMARY_HELP[name], format="%.2f")
    return cfg


def small_split_notes(table: pd.DataFrame) -> list[str]:
    """Sentences for splits so small that a percentile is really one of the largest values."""
    notes = []
    for r in table.itertuples():
        n = int(r.points)
        if n <= P95_TOP_TWO:
            notes.append(
                f"**{r.split}** has only {n} points: with n ≤ {P95_TOP_TWO} points, P95 (and "
                "P99) lie between the two largest values — read them as “the worst points”."
            )
        elif n <= P99_TOP_TWO:
            notes.append(
                f"**{r.split}** has {n} points: with n ≤ {P99_TOP_TWO}, P99 lies between the two "
                "largest values (P95 is still a percentile)."
            )
    return notes


def compute_cost_sentence(cost: float, method: str) -> str:
    """What the compute-cost figure means, with this evaluation's value."""
    base = (
        f"**Compute cost {cost:.2f}** — the example-gradient evaluations *{plain(method)}* spent, "
        "divided by those of retraining a model from scratch without the forget set (1.00 = as "
        "expensive as retraining)."
    )
    if cost == 0:
        base += " Doing nothing computes no gradient at all, so it costs 0."
    return base


def reset_table(info: dict) -> tuple[pd.DataFrame, str] | None:
    """DEL's resets (``info`` of the run, ``core.unlearning.localized.reset_shares``): per
    parameter the share of its weights reset (mean over models), and a caption with the overall
    shares; None for a run that reset nothing it recorded."""
    shares = (info or {}).get("reset_share")
    if not shares:
        return None
    table = pd.DataFrame({"parameter": list(shares), "share reset": list(shares.values())})
    below = info.get("reset_below_head")
    text = (
        f"**Weights reset** (mean over models): {below:.1%} of those below the final layer, "
        if below is not None
        else "**Weights reset** (mean over models): "
    )
    text += f"{info.get('reset_total', float('nan')):.1%} of all (the final layer is retrained)."
    return table, text
