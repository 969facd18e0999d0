"""Job chains: a job that needs what other jobs build waits for them.

A job's ``params["after"]`` lists the ids of the jobs it needs (each queued before it, so each
has a smaller id). The queue (``core.jobs.queue.pump``) launches the oldest waiting job whose every
prerequisite is ``done``; a job whose prerequisite failed, was cancelled or was interrupted
stays queued with a message that says which job to resume (and runs once that one is done), and
``cancel`` of a prerequisite cancels the jobs that wait on it. ``message`` is what a waiting job
says, computed from the queue as it is now, so it never names a job that has ended.
"""

from __future__ import annotations

import json

import pandas as pd

from core.common.config import check_int
from core.common.errors import ConfigError
from core.store.db import Store

KIND_NAMES = {
    "build_models": "Build models", "oracles": "Build oracles", "evaluate": "Evaluate",
    "demo": "Quick demo", "unlearn": "Unlearn", "datamodel": "Fit datamodel",
    "import_easydub": "Import EasyDUB",
}  # fmt: skip


def after_of(params: dict) -> list[int]:
    """The ids a job waits for (``params["after"]``, default none)."""
    return [int(j) for j in params.get("after") or []]


def check_after(store: Store, value: object) -> None:
    """``after`` must be a list of ids of existing jobs."""
    if not isinstance(value, list):
        raise ConfigError(f"after must be a list of job ids, got {value!r}")
    for j in value:
        check_int("after", j, 1)
    if value:
        found = store.query_df(
            "SELECT id FROM jobs WHERE list_contains(?::BIGINT[], id)", [list(value)]
        )
        missing = sorted(set(value) - set(found["id"].astype(int)))
        if missing:
            raise ConfigError(f"after names job {missing[0]}, which does not exist")


def statuses(store: Store, ids: list[int]) -> dict[int, tuple[str, str]]:
    """``{id: (status, kind)}`` of these jobs."""
    if not ids:
        return {}
    df = store.query_df(
        "SELECT id, status, kind FROM jobs WHERE list_contains(?::BIGINT[], id)", [list(ids)]
    )
    return {int(r.id): (str(r.status), str(r.kind)) for r in df.itertuples()}


def blocker(store: Store, params: dict) -> tuple[int, str, str] | None:
    """The first prerequisite that is not done: ``(id, status, kind)``, or None when the job
    may run (every job it waits for is done, or it waits for none)."""
    ids = after_of(params)
    st = statuses(store, ids)
    for j in ids:
        status, kind = st.get(j, ("deleted", "?"))
        if status != "done":
            return j, status, kind
    return None


def message(store: Store, params: dict, busy: int | None) -> str:
    """What a queued, unlaunched job says now: the prerequisite it waits for, or the job whose
    worker is at work, or that it is about to start."""
    b = blocker(store, params)
    if b is not None:
        j, status, kind = b
        name = KIND_NAMES.get(kind, kind)
        if status in ("queued", "running"):
            return f"waiting for job {j} ({name}), which it needs"
        return (
            f"needs job {j} ({name}), which ended {status}: resume job {j}, and this one runs "
            "after it (or cancel this one)"
        )
    if busy is not None:
        return f"waiting for job {busy} to finish"
    return "waiting to start"


def dependants(store: Store, job_id: int) -> list[int]:
    """Queued jobs that wait (directly) for ``job_id``."""
    df = store.query_df("SELECT id, params FROM jobs WHERE status = 'queued' ORDER BY id")
    out = []
    for r in df.itertuples():
        if job_id in after_of(json.loads(r.params)):
            out.append(int(r.id))
    return out


def queued(store: Store) -> pd.DataFrame:
    """Queued jobs, oldest first, with their parsed params (column ``p``)."""
    df = store.query_df(
        "SELECT id, kind, pid, worker_start, params, message FROM jobs WHERE status = 'queued' "
        "ORDER BY id"
    )
    df["p"] = [json.loads(p) for p in df["params"]]
    return df
