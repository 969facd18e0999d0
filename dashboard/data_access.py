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
    """Open (and migrate) the store once per server; jobs whose worker died are resumed."""
    from core.jobs import reconcile_and_resume

    store = Store(path)
    store.check()  # header, blocks and schema now, so a damaged file is reported at once
    reconcile_and_resume(store)
    return store


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


# -- model zoo, forget sets, evaluations, jobs ---------------------------------------------
@st.cache_resource(show_spinner="Loading the dataset…")
def dataset(name: str):
    from core.data import load_dataset

    return load_dataset(name, "cpu")


@st.cache_data(show_spinner=False, ttl=2)
def model_sets_df(path: str) -> pd.DataFrame:
    from core.zoo import list_model_sets

    return list_model_sets(_store(path))


@st.cache_data(show_spinner=False)
def forget_sets_df(path: str) -> pd.DataFrame:
    from core.forget_store import list_forget_sets

    return list_forget_sets(_store(path))


@st.cache_data(show_spinner=False, ttl=2)
def evaluations_df(path: str) -> pd.DataFrame:
    from core.evaluation import list_evaluations

    return list_evaluations(_store(path))


@st.cache_data(show_spinner=False)
def evaluation(path: str, run_id: int) -> dict:
    from core.evaluation import evaluation as get

    return get(_store(path), run_id)


@st.cache_data(show_spinner=False, max_entries=4)
def evaluation_margins(path: str, run_id: int):
    from core.evaluation import evaluation_margins as get

    return get(_store(path), run_id)


def jobs_df(path: str) -> pd.DataFrame:
    """Not cached: the jobs panel polls it."""
    from core.jobs import list_jobs

    return list_jobs(_store(path))
