"""The background-jobs panel: progress, time left, cancel and resume; refreshes itself."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core.common.errors import LabError
from core.jobs import queue as jobs
from core.jobs.chain import KIND_NAMES
from dashboard import components, data_access

ICONS = {  # Streamlit's bundled icon font: emoji may lack a font on the machine (and show as boxes)
    "queued": ":material/schedule:", "running": ":material/autorenew:",
    "done": ":material/check_circle:", "failed": ":material/error:",
    "cancelled": ":material/cancel:", "interrupted": ":material/warning:",
}  # fmt: skip
LABELS = KIND_NAMES


def start_job(kind: str, params: dict) -> int | None:
    """Start a background job from a page; shows the error instead when it cannot start."""
    store = data_access.store()
    if store is None:
        return None
    try:
        job_id = jobs.start(store, kind, params)
    except LabError as err:
        st.error(f"The job could not start: {components.plain(err)}")
        return None
    st.session_state.setdefault("watched_jobs", set()).add(job_id)
    job = jobs.get_job(store, job_id)
    if job["status"] == "queued" and pd.isna(job["pid"]):  # one worker at a time: it waits
        waits = components.plain(job["message"])
        st.toast(f"{LABELS.get(kind, kind)} queued (job {job_id}): {waits}.")
    else:
        st.toast(f"{LABELS.get(kind, kind)} started in the background (job {job_id}).")
    return job_id


def start_chain(steps: list[tuple[str, dict]]) -> list[int]:
    """Queue jobs that build what a run needs, then the run, each waiting for the one before
    (``core.jobs.queue.start_chain``); shows the error instead when the chain cannot start."""
    store = data_access.store()
    if store is None:
        return []
    try:
        ids = jobs.start_chain(store, steps)
    except LabError as err:
        st.error(f"The jobs could not start: {components.plain(err)}")
        return []
    st.session_state.setdefault("watched_jobs", set()).update(ids)
    names = ", then ".join(f"{LABELS.get(k, k)} (job {j})" for (k, _), j in zip(steps, ids,
                                                                                strict=True))  # fmt: skip
    st.toast(f"Queued: {names}.")
    return ids


def describe(kind: str, params: dict, forget_sets: dict[int, str]) -> str:
    """What a job works on, in a few words: its method, forget set, size or target."""
    p = params or {}
    fs = p.get("forget_set_id")
    where = f"forget set #{fs} {forget_sets.get(int(fs), '')}".strip() if fs is not None else ""
    if kind == "unlearn":
        n = len(p.get("grid") or [])
        return f"{p.get('method', '?')} on {where} · {n} run{'s' if n != 1 else ''}"
    if kind == "evaluate":
        return f"{p.get('method', '?')} on {where}"
    if kind == "oracles":
        return f"for {where}"
    if kind == "datamodel":
        return f"{p.get('target', 'margin')} · {p.get('models', '?')} subset models"
    if kind == "build_models":
        return f"model set #{p.get('set_id', '?')}"
    if kind == "demo":
        return f"{p.get('models', '?')} models a side"
    if kind == "import_easydub":
        return f"{p.get('dir', '?')}" + (" · with weights" if p.get("weights") else "")
    return ""


def _eta(seconds: float) -> str:
    if pd.isna(seconds):
        return "estimating…"
    return f"about {_duration(seconds)} left"


def _duration(seconds: float) -> str:
    if pd.isna(seconds):
        return "—"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def job_links(kind: str, result: dict | None) -> list[tuple[str, str, dict]]:
    """Where to look at what a finished job made: ``(page, label, query params)``."""
    r = result or {}
    if kind == "evaluate" and "run_id" in r:
        return [("views/klom.py", f"Open run {r['run_id']} in the KLoM explorer",
                 {"run": str(r["run_id"])})]  # fmt: skip
    if kind == "demo" and r.get("evaluations"):
        evs = r["evaluations"]
        first = evs.get("random-50") or next(iter(evs.values()))
        return [("views/klom.py", "Open the demo in the KLoM explorer",
                 {"run": str(first["run_id"])}), ("views/models.py", "See its models", {})]  # fmt: skip
    if kind == "unlearn" and r.get("run_ids"):
        return [("views/compare.py", "Compare the runs", {}),
                ("views/klom.py", f"Open run {r['run_ids'][-1]} in the KLoM explorer",
                 {"run": str(r["run_ids"][-1])})]  # fmt: skip
    if kind == "datamodel" and "datamodel_id" in r:
        return [("views/attribution.py", f"Open datamodel {r['datamodel_id']} on Attribution",
                 {"datamodel": str(r["datamodel_id"])})]  # fmt: skip
    if kind in ("build_models", "oracles") and r:
        return [("views/models.py", "See the models", {})]
    return []


# Seconds between the panel's refreshes: while a job is queued or running, or one this session
# watches has just ended; otherwise slowly, so that a job started elsewhere (the CLI, another
# session) still appears. Each refresh is a script run: every 2 s on an idle page kept Streamlit
# "running" ~10% of the time on a quiet machine, and always with ten sessions on a busy one.
FAST_S, SLOW_S = 2.0, 15.0


def _active(df: pd.DataFrame) -> set[int]:
    return set(df.loc[df["status"].isin(["queued", "running"]), "id"].astype(int))


def jobs_panel(limit: int = 5) -> None:
    """The newest jobs with live progress, refreshed every ``FAST_S`` seconds while a job is
    active (else every ``SLOW_S``). Reruns the page when a watched job ends."""
    store = data_access.store()
    if store is None:
        return
    watched = st.session_state.setdefault("watched_jobs", set())
    fast = bool(watched or _active(data_access.jobs_df(str(store.path))))
    st.fragment(_panel, run_every=FAST_S if fast else SLOW_S)(store, limit, fast)


def _panel(store, limit: int, fast: bool) -> None:
    df = data_access.jobs_df(str(store.path))
    active = _active(df)
    watched = st.session_state.setdefault("watched_jobs", set())
    if bool(watched or active) != fast:  # a job began or ended elsewhere: change the pace
        st.rerun(scope="app")
    ended = {j for j in watched if j not in active}
    df = df.head(limit)
    if df.empty and not ended:
        return
    st.markdown("**Background jobs**")
    if st.session_state.get("jobs_error"):
        st.error(st.session_state.pop("jobs_error"))
    fsets = data_access.forget_sets_df(str(store.path))
    fs_names = dict(zip(fsets["id"].astype(int), fsets["name"].astype(str), strict=True))
    for job in df.itertuples():
        c1, c2 = st.columns([5, 1])
        name = LABELS.get(job.kind, job.kind)
        what = describe(job.kind, json.loads(job.params) if job.params else {}, fs_names)
        what = f" · {components.plain(what)}" if what else ""
        title = f"{ICONS.get(job.status, '')} job {job.id} · {name}{what} · {job.status}"
        detail = components.plain(job.message) if job.message and job.message != job.status else ""
        if job.status == "running":
            text = f"{title} — {detail} ({_duration(job.elapsed_s)} so far, {_eta(job.eta_s)})"
            c1.progress(float(job.progress), text=text)
        else:
            took = f"took {_duration(job.elapsed_s)}" if job.status != "queued" else "waiting"
            c1.caption(" — ".join(x for x in (title, detail, took) if x))
        if job.status == "done":
            result = data_access.job_result(str(store.path), int(job.id))
            for page, label, query in job_links(job.kind, result):
                c1.page_link(
                    page, label=label, query_params=query or None, icon=":material/arrow_forward:"
                )
        if job.status in ("queued", "running"):
            if c2.button("Cancel", key=f"cancel_{job.id}"):
                with st.spinner(f"Cancelling job {job.id}…"):
                    jobs.cancel(store, int(job.id))
                st.rerun(scope="fragment")
        elif job.status in ("failed", "cancelled", "interrupted") and c2.button(
            "Resume", key=f"resume_{job.id}"
        ):
            try:
                with st.spinner(f"Resuming job {job.id}…"):
                    jobs.resume(store, int(job.id))
                watched.add(int(job.id))
            except LabError as err:  # e.g. what it needs is still missing: say so, stay here
                st.session_state["jobs_error"] = components.plain(err)
            st.rerun(scope="app")  # the pace and every row change with it
    if ended:
        watched.difference_update(ended)
        data_access.refresh()
        st.rerun(scope="app")
