"""Download buttons for a table: CSV and Parquet, side by side."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st


def to_parquet(df: pd.DataFrame) -> bytes:
    """``df`` as Parquet bytes (timestamps as text, so any reader takes them)."""
    buf = io.BytesIO()
    out = df.copy()
    for c in out.columns:
        if out[c].dtype.kind == "M" or c == "created_at":
            out[c] = out[c].astype(str)
    out.to_parquet(buf, index=False)
    return buf.getvalue()


def table_downloads(df: pd.DataFrame, stem: str, key: str) -> None:
    """Two buttons: ``stem.csv`` and ``stem.parquet``."""
    c1, c2, _ = st.columns([1, 1, 4])
    c1.download_button("CSV", df.to_csv(index=False), f"{stem}.csv", "text/csv",
                       key=f"{key}_csv")  # fmt: skip
    c2.download_button("Parquet", to_parquet(df), f"{stem}.parquet", "application/octet-stream",
                       key=f"{key}_parquet")  # fmt: skip


def card_downloads(store, run_id: int, key: str) -> None:
    """Two buttons: run ``run_id``'s reproducibility card (``core.evaluation.cards``) as JSON and as
    Markdown, built when clicked (``card-run-ID.json`` / ``.md``); ``python -m core reproduce``
    rebuilds it."""
    from core.evaluation.cards import card, dumps, markdown

    run_id = int(run_id)
    c0, c1, c2, _ = st.columns([2, 1, 1, 2], vertical_alignment="center")
    c0.caption(f"Reproducibility card of run {run_id}",
               help="dataset hash, recipe, seeds, forget set, masks, code, method, costs, device "
               "and figures; python -m core reproduce CARD.json --db NEW.duckdb rebuilds it")  # fmt: skip
    c1.download_button("card (JSON)", lambda: dumps(card(store, run_id)),
                       f"card-run-{run_id}.json", "application/json", key=f"{key}_json",
                       on_click="ignore")  # fmt: skip
    c2.download_button("card (Markdown)", lambda: markdown(card(store, run_id)),
                       f"card-run-{run_id}.md", "text/markdown", key=f"{key}_md",
                       on_click="ignore")  # fmt: skip
