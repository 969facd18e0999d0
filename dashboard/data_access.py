"""Read access for the pages: one cached Store per database path, cached query results.

Writes go through the engine (``core``); after a write, call ``refresh()`` so cached reads
see it.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import streamlit as st

from core import linear_runs
from core.errors import LabError
from core.store import Store, resolve_db_path


def db_path() -> str:
    """``--db`` given after ``--`` to streamlit, else ``$LAB_DB``, else the default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return str(resolve_db_path(known.db))


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


def store() -> Store | None:
    """The Store, or ``None`` after showing why it cannot be opened (locked, corrupt, …)."""
    try:
        return _store(db_path())
    except LabError as err:
        st.error(f"The lab database cannot be opened: {err}")
        return None


def refresh() -> None:
    """Forget cached query results (call after any write)."""
    st.cache_data.clear()


@st.cache_data(show_spinner=False)
def linear_runs_df(path: str) -> pd.DataFrame:
    return linear_runs.list_linear_runs(_store(path))


@st.cache_data(show_spinner=False)
def linear_curves_df(path: str, run_id: int) -> pd.DataFrame:
    return linear_runs.linear_curves(_store(path), run_id)


@st.cache_data(show_spinner=False)
def linear_outcomes_df(path: str, run_id: int) -> pd.DataFrame:
    return linear_runs.linear_outcomes(_store(path), run_id)
