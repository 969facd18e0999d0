"""Background jobs: long work (model builds, oracles, evaluations, the demo) off the UI.

A job is a row in ``jobs`` (queued → running → done | failed | cancelled; ``interrupted`` when
its worker died). ``start`` inserts the row and launches a worker *process*
(``python -m core worker --job ID``), so the dashboard stays responsive and a crashed worker
cannot take the UI down. The worker reports progress to its row (throttled), polls its
``cancel_requested`` flag between training steps, and ends the row with a status and message.

DuckDB allows one writing process at a time: every write here, the worker's included, is a
short transaction on a short-lived connection (see ``core.store.db``), so the dashboard, the
worker and a CLI take turns instead of blocking each other. All heavy work is chunked and each
chunk is committed once, so a cancelled or killed job leaves only complete chunks behind, and
``resume`` (or ``reconcile_and_resume`` at dashboard start) picks the build up where it stopped.

A worker is known by its pid *and* its process start time (both stored when it is launched
and again when it marks its job running): a pid reused by another process after the worker
died is never signalled, and its job counts as interrupted.

One worker at a time: jobs queue. ``start`` launches a job only when no worker is at work;
otherwise it waits, and each worker launches the oldest waiting job when it ends (``pump``).
Two trainings side by side on a laptop's few cores would each run at well under half speed
(their OpenMP threads stall each other), so a queue finishes both sooner.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import pandas as pd

from core.common.errors import ConfigError, LabError, NotFoundError, StoreError
from core.common.processes import _alive, is_worker, process_start  # noqa: F401  (re-exported for callers)
from core.store.db import Store

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository
FINAL = ("done", "failed", "cancelled")
from core.jobs import chain as job_chain  # noqa: E402
from core.jobs.registry import JOB_CHECKS, JOB_KINDS, JOB_READY, JobContext, job_kind  # noqa: F401, E402


def check_params(store: Store, kind: str, params: dict, ready: bool = True) -> None:
    """Raise ``ConfigError`` unless ``kind`` is a job kind and ``params`` suit it, and (with
    ``ready``) unless what the job needs is stored — or a job it waits for is building it."""
    if kind not in JOB_KINDS:
        raise ConfigError(f"unknown job kind {kind!r}: one of {', '.join(sorted(JOB_KINDS))}")
    if not isinstance(params, dict):
        raise ConfigError(f"the parameters of a {kind} job must be a mapping, got {params!r}")
    after = params.get("after")
    if after is not None:
        job_chain.check_after(store, after)
    own = {k: v for k, v in params.items() if k != "after"}
    if kind in JOB_CHECKS:
        JOB_CHECKS[kind](store, own)
    if ready and kind in JOB_READY and job_chain.blocker(store, params) is None:
        JOB_READY[kind](store, own)  # what it needs is built (or is being built by its chain)


def submit(store: Store, kind: str, params: dict) -> int:
    """Validate the parameters, then queue the job (not started); returns its id.

    A job with bad parameters is refused with a ``ConfigError`` and never becomes a row.
    """
    check_params(store, kind, params)
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO jobs (kind, params, status, message) VALUES (?, ?, 'queued', 'waiting to start') "
            "RETURNING id",
            [kind, json.dumps(params)],
        ).fetchone()
    return int(row[0])


def launch(store: Store, job_id: int) -> subprocess.Popen:
    """Start the worker process for a queued job, and record it as the job's worker at once
    (so that a second ``start`` sees a worker at work while this one is still starting)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # the worker runs in ROOT: every path it inherits is made absolute here, in our folder
    for name in ("LAB_DB", "LAB_DATA_ROOT", "LAB_LOG"):
        if env.get(name):
            env[name] = str(Path(env[name]).expanduser().absolute())
    log = store.file_path(f"jobs/{job_id}.log")
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "core", "worker", "--job", str(job_id),
                 "--db", str(Path(store.path).absolute())],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
    except OSError as err:  # e.g. a read-only files folder: say so, and do not leave it queued
        where = err.filename or log
        msg = f"cannot start its worker: cannot write {where}: {err.strerror or err}"
        _finish(store, job_id, "failed", msg)
        raise StoreError(f"job {job_id} {msg}; make the lab's folders writable") from err
    with store.transaction() as con:
        con.execute(
            """UPDATE jobs SET pid = ?, worker_start = ?, message = 'starting'
               WHERE id = ? AND status = 'queued'""",
            [proc.pid, process_start(proc.pid), job_id],
        )
    return proc


def active_job(store: Store) -> int | None:
    """The id of a job whose worker is alive (running, or launched and starting), or None."""
    df = store.query_df(
        """SELECT id, pid, worker_start FROM jobs WHERE status IN ('queued', 'running')
           AND pid IS NOT NULL ORDER BY id"""
    )
    for r in df.itertuples():
        if is_worker(r.pid, r.worker_start):
            return int(r.id)
    return None


def pump(store: Store) -> int | None:
    """Launch the oldest waiting job that may run (every job it waits for done) if no worker
    is at work; returns its id, or None. Every waiting job's message is said anew."""
    busy = active_job(store)
    if busy is not None:
        _wait_messages(store)
        return None
    for r in job_chain.queued(store).itertuples():  # launched but dead before it began: waiting
        if not is_worker(r.pid, r.worker_start) and job_chain.blocker(store, r.p) is None:
            launch(store, int(r.id))
            _wait_messages(store)
            return int(r.id)
    _wait_messages(store)
    return None


def start(store: Store, kind: str, params: dict) -> int:
    """Queue a job; it runs now if no other job's worker is at work, else when they end."""
    job_id = submit(store, kind, params)
    pump(store)
    return job_id


def start_chain(store: Store, steps: list[tuple[str, dict]]) -> list[int]:
    """Queue ``steps`` (kind, params) as a chain: each job waits for the one before it (its
    ``after``). A step that a queued or running job already does (same kind, same parameters)
    is not queued twice: the chain waits for that job instead. Every step is checked before any
    row is written; returns the chain's job ids (the last one is the final step)."""
    for k, (kind, params) in enumerate(steps):  # refuse a bad chain before writing anything
        check_params(store, kind, params, ready=k == 0)  # later steps: built by the chain
    ids: list[int] = []
    for kind, params in steps:
        same = _same_active(store, kind, params)
        if same is not None:
            ids.append(same)
            continue
        p = {**params, "after": [ids[-1]]} if ids else dict(params)
        ids.append(submit(store, kind, p))
    pump(store)
    return ids


def _same_active(store: Store, kind: str, params: dict) -> int | None:
    df = store.query_df(
        "SELECT id, params FROM jobs WHERE kind = ? AND status IN ('queued', 'running') "
        "ORDER BY id",
        [kind],
    )
    for r in df.itertuples():
        p = json.loads(r.params)
        p.pop("after", None)
        if p == params:
            return int(r.id)
    return None


def _wait_messages(store: Store) -> None:
    """Each waiting job's message, said anew from the queue as it is now (never stale)."""
    busy = active_job(store)
    waiting = job_chain.queued(store)
    texts = {  # launched ones are left out: their workers write their own messages
        int(r.id): job_chain.message(store, r.p, busy)
        for r in waiting.itertuples()
        if r.pid is None or pd.isna(r.pid)
    }
    changed = [(t, j) for j, t in texts.items() if t != waiting.set_index("id").loc[j, "message"]]
    if changed:
        with store.transaction() as con:
            for text, job_id in changed:
                con.execute(
                    "UPDATE jobs SET message = ? WHERE id = ? AND status = 'queued' "
                    "AND pid IS NULL",
                    [text, job_id],
                )


def get_job(store: Store, job_id: int) -> dict:
    df = store.query_df("SELECT * FROM jobs WHERE id = ?", [int(job_id)])
    if df.empty:
        raise NotFoundError(f"there is no job with id {job_id}")
    row = df.iloc[0].to_dict()
    row["params"] = json.loads(row["params"])
    row["result"] = json.loads(row["result"]) if isinstance(row["result"], str) else None
    return row


def _finish(
    store: Store, job_id: int, status: str, message: str, result: dict | None = None
) -> None:
    with store.transaction() as con:
        con.execute(
            """UPDATE jobs SET status = ?, message = ?, result = ?, finished_at = current_timestamp,
               updated_at = current_timestamp, progress = CASE WHEN ? = 'done' THEN 1 ELSE progress END
               WHERE id = ?""",
            [
                status,
                message[:2000],
                json.dumps(result) if result is not None else None,
                status,
                job_id,
            ],
        )


def run_job(store: Store, job_id: int) -> str:
    """Run a job in this process (the worker's body); returns its final status."""
    job = get_job(store, job_id)
    if job["status"] in FINAL:
        return job["status"]
    from core.zoo.ensemble import Cancelled  # the engine (torch) only where a job really runs

    with store.transaction() as con:  # pid and start time together name this process
        con.execute(
            """UPDATE jobs SET status = 'running', pid = ?, worker_start = ?,
               started_at = coalesce(started_at, current_timestamp),
               updated_at = current_timestamp, message = 'starting' WHERE id = ?""",
            [os.getpid(), process_start(os.getpid()), job_id],
        )
    ctx = JobContext(store, job_id)
    signal.signal(signal.SIGTERM, ctx.request_stop)
    try:
        if ctx.should_stop():
            raise Cancelled("cancelled before it started")
        check_params(store, job["kind"], job["params"])  # rows queued by older versions too
        result = JOB_KINDS[job["kind"]](store, job["params"], ctx)
    except Cancelled:
        _finish(
            store, job_id, "cancelled", "cancelled; finished chunks are kept and a rerun resumes"
        )
        _cancel_waiting_on(store, job_id)
        return "cancelled"
    except LabError as err:
        _finish(store, job_id, "failed", str(err))
        return "failed"
    except Exception as err:  # a bug: keep the traceback for the log, a line for the UI
        traceback.print_exc()
        _finish(store, job_id, "failed", f"internal error: {type(err).__name__}: {err}")
        return "failed"
    _finish(store, job_id, "done", "done", result)
    return "done"


def work(store: Store, job_id: int) -> str:
    """The worker's entry: run the job, then launch the next waiting one."""
    try:
        return run_job(store, job_id)
    finally:
        with contextlib.suppress(LabError):  # a busy store: the next start or reconcile pumps
            pump(store)


def cancel(store: Store, job_id: int) -> None:
    """Ask a job to stop: flag it; a queued job ends at once, a running one at its next check.

    Only the job's own worker is signalled (same pid *and* same process start time); a running
    job whose worker is gone or cannot be identified ends as cancelled without any signal.
    """
    job = get_job(store, job_id)
    if job["status"] in FINAL:
        return
    with store.transaction() as con:
        con.execute("UPDATE jobs SET cancel_requested = true WHERE id = ?", [job_id])
    if job["status"] in ("queued", "interrupted"):
        _finish(store, job_id, "cancelled", "cancelled before it ran")
        _cancel_waiting_on(store, job_id)
    elif is_worker(job.get("pid"), job.get("worker_start")):
        with contextlib.suppress(OSError):  # the worker turns SIGTERM into a stop request
            os.kill(int(job["pid"]), signal.SIGTERM)
    else:
        _finish(
            store, job_id, "cancelled",
            "cancelled; its worker had already stopped (finished chunks are kept)",
        )  # fmt: skip


def _cancel_waiting_on(store: Store, job_id: int) -> None:
    """A cancelled job's chain stops with it: the queued jobs that wait for it (and theirs)."""
    for waiting in job_chain.dependants(store, job_id):
        with store.transaction() as con:
            con.execute("UPDATE jobs SET cancel_requested = true WHERE id = ?", [waiting])
        _finish(store, waiting, "cancelled", f"cancelled: it needed job {job_id}, which was "
                "cancelled")  # fmt: skip
        _cancel_waiting_on(store, waiting)


def _mark_interrupted(store: Store, job_id: int, pid: object) -> bool:
    """Running (or launched) → interrupted, unless the row changed meanwhile; True when it
    did so."""
    with store.transaction() as con:
        row = con.execute(
            """UPDATE jobs SET status = 'interrupted', updated_at = current_timestamp,
               message = CASE WHEN status = 'running'
                 THEN 'its worker stopped (or is not the process it was); finished chunks are kept'
                 ELSE 'its worker stopped before the job began (see its log); resume to retry' END
               WHERE id = ? AND pid IS NOT DISTINCT FROM ?
               AND (status = 'running' OR (status = 'queued' AND pid IS NOT NULL)) RETURNING id""",
            [job_id, None if pid is None or pd.isna(pid) else int(pid)],
        ).fetchone()
    return row is not None


def reconcile(store: Store) -> list[int]:
    """Mark jobs whose worker is gone as ``interrupted``; returns their ids: running ones, and
    launched ones whose worker died before it began (they would wait as "starting" for ever).

    A worker is recognised by its pid and process start time together, so a stale pid now
    used by an unrelated process does not keep a job ``running`` for ever.
    """
    df = store.query_df(
        """SELECT id, pid, worker_start FROM jobs WHERE status = 'running'
           OR (status = 'queued' AND pid IS NOT NULL)"""
    )
    gone = [r for r in df.itertuples() if not is_worker(r.pid, r.worker_start)]
    return [int(r.id) for r in gone if _mark_interrupted(store, int(r.id), r.pid)]


def resume(store: Store, job_id: int) -> None:
    """Queue an interrupted, failed or cancelled job again (it runs when no other worker is
    at work); finished chunks are skipped.

    A job still marked running whose worker is gone (or is not identifiable) counts as
    interrupted and is resumed too.
    """
    job = get_job(store, job_id)
    stale = job["status"] == "running" and not is_worker(job.get("pid"), job.get("worker_start"))
    if stale and _mark_interrupted(store, job_id, job.get("pid")):
        job["status"] = "interrupted"
    if job["status"] in ("running", "queued", "done"):
        raise ConfigError(f"job {job_id} is {job['status']}; only a stopped job can be resumed")
    try:  # a job that is known to fail again is not queued again
        check_params(store, job["kind"], job["params"])
    except ConfigError as err:
        raise ConfigError(f"job {job_id} cannot be resumed yet: {err}") from err
    with store.transaction() as con:
        con.execute(
            """UPDATE jobs SET status = 'queued', cancel_requested = false, finished_at = NULL,
               pid = NULL, worker_start = NULL, message = 'resuming' WHERE id = ?""",
            [job_id],
        )
    pump(store)


def reconcile_and_resume(store: Store) -> list[int]:
    """At start-up: mark dead workers' jobs interrupted, queue them again, launch the first."""
    ids = reconcile(store)
    for job_id in ids:
        with contextlib.suppress(ConfigError):  # one that cannot run now stays interrupted
            resume(store, job_id)
    pump(store)
    return ids


def list_jobs(store: Store, limit: int = 50) -> pd.DataFrame:
    """Newest jobs first, with elapsed time and an estimate of the time left (seconds)."""
    df = store.query_df(
        """SELECT id, kind, status, progress, message, params, created_at, started_at, finished_at,
                  epoch(coalesce(finished_at, current_timestamp::TIMESTAMP) - started_at) AS elapsed_s
           FROM jobs ORDER BY id DESC LIMIT ?""",
        [limit],
    )
    running = (df["status"] == "running") & (df["progress"] > 0.01)
    df["eta_s"] = (df["elapsed_s"] * (1 - df["progress"]) / df["progress"]).where(running)
    return df


from core.jobs import kinds as job_kinds  # noqa: E402, F401  (registers the job kinds)
