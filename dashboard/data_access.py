"""Read access for the pages: one cached Store per database path, cached query results.

Writes go through the engine (``core``); after a write, call ``refresh()`` so cached reads
see it.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import streamlit as st

from core.common.errors import LabError
from core.linear import runs as linear_runs
from core.store.db import Store, resolve_db_path
from dashboard.components import plain


def db_path() -> str:
    """``--db`` given after ``--`` to streamlit, else ``$LAB_DB``, else the default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return str(resolve_db_path(known.db))


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    """Open (and migrate) the store once per server; jobs whose worker died are resumed."""
    from core.jobs.queue import reconcile_and_resume

    store = Store(path)
    store.check()  # header, blocks and schema now, so a damaged file is reported at once
    reconcile_and_resume(store)
    return store


def store() -> Store | None:
    """The Store, or ``None`` after showing why it cannot be opened (locked, corrupt, …)."""
    try:
        return _store(db_path())
    except LabError as err:
        st.error(f"The lab database cannot be opened: {plain(err)}")
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
    from core.zoo.data import load_dataset
    from dashboard import warmup

    if name == "digits":
        warmup.wait()  # the background load started by app.py, if any: do not load twice

    return load_dataset(name, "cpu")


@st.cache_data(show_spinner=False, ttl=2)
def model_sets_df(path: str) -> pd.DataFrame:
    from core.zoo.build import list_model_sets

    return list_model_sets(_store(path))


@st.cache_data(show_spinner=False)
def forget_sets_df(path: str) -> pd.DataFrame:
    from core.forget.store import list_forget_sets

    return list_forget_sets(_store(path))


@st.cache_data(show_spinner=False, ttl=2)
def evaluations_df(path: str) -> pd.DataFrame:
    from core.evaluation.run import list_evaluations

    return list_evaluations(_store(path))


@st.cache_data(show_spinner=False)
def evaluation(path: str, run_id: int) -> dict:
    """The evaluation row, summaries and per-point values (read once per run id)."""
    from core.evaluation.run import evaluation as get

    return get(_store(path), run_id)


@st.cache_data(show_spinner=False)
def run_info(path: str, run_id: int) -> dict:
    """What the run's method recorded (its config's ``info``; DEL: the shares reset)."""
    return _store(path).run(run_id)["config"].get("info") or {}


@st.cache_data(show_spinner=False, ttl=2)
def audits(path: str, run_id: int) -> dict | None:
    """The run's membership audits (``core.evaluation.audits.audit_results``); None if not audited."""
    from core.evaluation.audits import audit_results

    return audit_results(_store(path), run_id)


@st.cache_resource(show_spinner=False, max_entries=4)
def evaluation_margins(path: str, run_id: int):
    """Unlearned and oracle margins, ``(n_models, n_points)`` each: read once, shared, read-only
    (cache_resource hands out the same arrays instead of unpickling a copy on every rerun)."""
    from core.evaluation.run import evaluation_margins as get

    unlearned, oracle = get(_store(path), run_id)
    for a in (unlearned, oracle):
        a.setflags(write=False)
    return unlearned, oracle


@st.cache_data(show_spinner=False, max_entries=64)
def distribution_figure(path: str, run_id: int, split: str, mode: str, log_x: bool):
    """The KLoM distribution chart of one split, built once per (run, split, mode, scale)."""
    from dashboard.klom_charts import klom_distribution

    return klom_distribution(evaluation(path, run_id)["points"], split, mode, log_x)


def clicked_point(state) -> int | None:
    """The point index a click on the per-point chart selected, from its customdata
    ``[index, split]``; None when nothing is selected."""
    data = clicked_customdata(state)
    return int(data[0]) if data else None


def clicked_customdata(state) -> list | None:
    """The customdata of the last point a click on a chart (``on_select="rerun"``) selected,
    as a list; None when nothing is selected."""
    sel = (state or {}).get("selection") or {}
    pts = sel.get("points") or []
    if not pts:
        return None
    data = pts[-1].get("customdata")
    if data is None or isinstance(data, dict):  # a dict: a typed array, not a chart's ids
        return None
    return list(data) if isinstance(data, list | tuple) else [data]


def evaluation_label(row) -> str:
    """``random-50 · do_nothing · run 3 · 2026-11-26 12:50``: what was evaluated, then which
    run, so that the label never depends on the bare id (run ids are shared with linear runs)."""
    when = pd.Timestamp(row.created_at).strftime("%Y-%m-%d %H:%M")
    return f"{row.forget_set} · {row.method} · run {row.run_id} · {when}"


@st.cache_data(show_spinner=False, ttl=2)
def original_choices(path: str, forget_set_id: int) -> tuple[list[tuple[int, str]], int | None]:
    """Complete original sets of the forget set's dataset ``(id, label)`` and the default
    (the originals its newest oracles were built against)."""
    from core.evaluation.run import original_choices as get

    return get(_store(path), forget_set_id)


@st.cache_data(show_spinner=False, ttl=2)
def pairing(path: str, forget_set_id: int, original_set_id: int) -> dict:
    """For these originals: ``sets`` (originals, oracles, floor) when oracles of their recipe
    and size exist (else None, with ``why``), and the newest stored do-nothing run of them."""
    from core.evaluation.run import find_evaluation, pair_sets

    store = _store(path)
    try:
        sets = pair_sets(store, forget_set_id, original_set_id)
    except LabError as err:
        return {"sets": None, "why": str(err), "do_nothing_run": None}
    run = find_evaluation(store, forget_set_id, "do_nothing", sets, {})
    return {"sets": sets, "why": "", "do_nothing_run": run}


@st.cache_data(show_spinner=False, ttl=2)
def forget_set_status(path: str) -> pd.DataFrame:
    """Per forget set: its oracle groups' state and its evaluations, for the Forget sets page.

    Columns: id, oracles ('built' | 'building' | 'none'), oracle_set_ids, evaluations (count),
    do_nothing_run (newest do-nothing evaluation's run id or NA).
    """
    fs = forget_sets_df(path)
    sets = model_sets_df(path)
    evals = evaluations_df(path)
    rows = []
    for fs_id in fs["id"].astype(int):
        o = sets[(sets["kind"] == "oracle") & (sets["forget_set_id"] == fs_id)]
        done = o[o["status"] == "complete"]
        state = (
            "built" if set(done["role"]) >= {"main", "floor"}
            else "building" if len(o) else "none"
        )  # fmt: skip
        e = evals[evals["forget_set_id"] == fs_id]
        dn = e.loc[e["method"] == "do_nothing", "run_id"]
        rows.append({"id": fs_id, "oracles": state,
                     "oracle_set_ids": ", ".join(str(i) for i in sorted(done["id"].astype(int))),
                     "evaluations": len(e), "do_nothing_run": int(dn.max()) if len(dn) else None})  # fmt: skip
    return pd.DataFrame(
        rows, columns=["id", "oracles", "oracle_set_ids", "evaluations", "do_nothing_run"]
    )


def jobs_df(path: str) -> pd.DataFrame:
    """Not cached: the jobs panel polls it. A job whose worker died meanwhile (killed, out of
    memory, or before it began) is marked interrupted here, so the panel offers Resume at once instead of
    showing it running until the dashboard restarts."""
    from core.jobs.queue import list_jobs, reconcile

    store = _store(path)
    df = list_jobs(store)
    if df["status"].isin(["running", "queued"]).any():
        try:
            if reconcile(store):
                df = list_jobs(store)
        except LabError:  # a busy store: the next poll marks it
            pass
    return df


@st.cache_data(show_spinner=False)
def job_result(path: str, job_id: int) -> dict | None:
    """A finished job's result (set ids, run ids …); cached, as a done job no longer changes."""
    from core.jobs.queue import get_job

    return get_job(_store(path), job_id).get("result")


@st.cache_data(show_spinner=False, ttl=2)
def models_a_side(path: str, forget_set_id: int) -> int | None:
    """Models per side of the forget set's newest complete oracles (KLoM's sample size)."""
    df = _store(path).query_df(
        """SELECT n_models FROM model_sets WHERE kind = 'oracle' AND forget_set_id = ?
           AND status = 'complete' ORDER BY id DESC LIMIT 1""",
        [forget_set_id],
    )
    return None if df.empty else int(df["n_models"][0])


@st.cache_data(show_spinner=False, ttl=2)
def compare_runs(path: str, forget_set_id: int) -> pd.DataFrame:
    """Every evaluation of a forget set with its scores (``core.evaluation.compare.runs_table``)."""
    from core.evaluation.compare import runs_table

    return runs_table(_store(path), forget_set_id)


@st.cache_data(show_spinner=False)
def compare_points(path: str, run_ids: tuple[int, ...]) -> pd.DataFrame:
    """Per-point KLoM, floor and gap of the chosen runs (``core.evaluation.compare.point_values``)."""
    from core.evaluation.compare import point_values

    return point_values(_store(path), list(run_ids))


@st.cache_data(show_spinner=False)
def diverged_df(path: str, forget_set_id: int) -> pd.DataFrame:
    """The forget set's diverged grid points (``core.evaluation.divergence``)."""
    from core.evaluation.divergence import diverged_runs

    return diverged_runs(_store(path), forget_set_id)
