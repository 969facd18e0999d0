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
