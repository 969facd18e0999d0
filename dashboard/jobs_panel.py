"""The background-jobs panel: progress, time left, cancel and resume; refreshes itself."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import jobs
from core.errors import LabError
from dashboard import data_access

ICONS = {
    "queued": "⏳", "running": "⚙️", "done": "✅", "failed": "❌", "cancelled": "⏹️", "interrupted": "⚠️",
}  # fmt: skip
LABELS = {
    "build_models": "Build models", "oracles": "Build oracles", "evaluate": "Evaluate",
    "demo": "Quick demo",
}  # fmt: skip


def start_job(kind: str, params: dict) -> int | None:
    """Start a background job from a page; shows the error instead when it cannot start."""
    store = data_access.store()
    if store is None:
        return None
    try:
        job_id = jobs.start(store, kind, params)
    except LabError as err:
        st.error(f"The job could not start: {err}")
        return None
    st.session_state.setdefault("watched_jobs", set()).add(job_id)
    st.toast(f"{LABELS.get(kind, kind)} started in the background (job {job_id}).")
    return job_id


def _eta(seconds: float) -> str:
    if pd.isna(seconds):
        return "estimating…"
    m, s = divmod(int(seconds), 60)
    return f"about {m} min {s:02d} s left" if m else f"about {s} s left"


@st.fragment(run_every=2.0)
def jobs_panel(limit: int = 5) -> None:
    """The newest jobs with live progress. Reruns the page when a watched job ends."""
    store = data_access.store()
    if store is None:
        return
    df = data_access.jobs_df(str(store.path)).head(limit)
    if df.empty:
        return
    active = set(df.loc[df["status"].isin(["queued", "running"]), "id"].astype(int))
    watched = st.session_state.setdefault("watched_jobs", set())
    ended = {j for j in watched if j not in active}
    st.markdown("**Background jobs**")
    for job in df.itertuples():
        c1, c2 = st.columns([5, 1])
        title = f"{ICONS.get(job.status, '')} job {job.id} · {LABELS.get(job.kind, job.kind)} · {job.status}"
        if job.status == "running":
            c1.progress(float(job.progress), text=f"{title} — {job.message} ({_eta(job.eta_s)})")
        else:
            c1.caption(f"{title} — {job.message}")
        if job.status in ("queued", "running"):
            if c2.button("Cancel", key=f"cancel_{job.id}"):
                jobs.cancel(store, int(job.id))
                st.rerun(scope="fragment")
        elif job.status in ("failed", "cancelled", "interrupted") and c2.button(
            "Resume", key=f"resume_{job.id}"
        ):
            try:
                jobs.resume(store, int(job.id))
                watched.add(int(job.id))
            except LabError as err:
                st.error(str(err))
            st.rerun(scope="fragment")
    if ended:
        watched.difference_update(ended)
        data_access.refresh()
        st.rerun(scope="app")
