"""Background jobs: long work (model builds, oracles, evaluations, the demo) off the UI.

A job is a row in ``jobs`` (queued → running → done | failed | cancelled; ``interrupted`` when
its worker died). ``start`` inserts the row and launches a worker *process*
(``python -m core worker --job ID``), so the dashboard stays responsive and a crashed worker
cannot take the UI down. The worker reports progress to its row (throttled), polls its
``cancel_requested`` flag between training steps, and ends the row with a status and message.

DuckDB allows one writing process at a time: every write here, the worker's included, is a
short transaction on a short-lived connection (see ``core.store``), so the dashboard, the
worker and a CLI take turns instead of blocking each other. All heavy work is chunked and each
chunk is committed once, so a cancelled or killed job leaves only complete chunks behind, and
``resume`` (or ``reconcile_and_resume`` at dashboard start) picks the build up where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .ensemble import Cancelled
from .errors import ConfigError, LabError, NotFoundError
from .store import Store

ROOT = Path(__file__).resolve().parent.parent
FINAL = ("done", "failed", "cancelled")
JobFn = Callable[[Store, dict, "JobContext"], dict]
JOB_KINDS: dict[str, JobFn] = {}


def job_kind(name: str) -> Callable[[JobFn], JobFn]:
    """Register a job function ``fn(store, params, ctx) -> result dict`` under ``name``."""

    def deco(fn: JobFn) -> JobFn:
        JOB_KINDS[name] = fn
        return fn

    return deco


class JobContext:
    """Handed to a running job: ``progress(fraction, message)`` and ``should_stop()``."""

    def __init__(self, store: Store, job_id: int, min_interval: float = 0.5):
        self.store, self.job_id, self.min_interval = store, job_id, min_interval
        self._last_write = 0.0
        self._last_poll = 0.0
        self._stop = False

    def progress(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last_write < self.min_interval and fraction < 1.0:
            return
        self._last_write = now
        with self.store.transaction() as con:
            con.execute(
                "UPDATE jobs SET progress = ?, message = ?, updated_at = current_timestamp "
                "WHERE id = ?",
                [max(0.0, min(1.0, float(fraction))), message[:500], self.job_id],
            )

    def request_stop(self, *_: object) -> None:
        self._stop = True

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._last_poll >= self.min_interval:
            self._last_poll = now
            row = self.store.query_df(
                "SELECT cancel_requested FROM jobs WHERE id = ?", [self.job_id]
            )
            self._stop = bool(row["cancel_requested"][0])
        return self._stop


def submit(store: Store, kind: str, params: dict) -> int:
    """Queue a job (not started); returns its id."""
    if kind not in JOB_KINDS:
        raise ConfigError(f"unknown job kind {kind!r}: one of {', '.join(sorted(JOB_KINDS))}")
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO jobs (kind, params, status, message) VALUES (?, ?, 'queued', 'waiting to start') "
            "RETURNING id",
            [kind, json.dumps(params)],
        ).fetchone()
    return int(row[0])


def launch(store: Store, job_id: int) -> subprocess.Popen:
    """Start the worker process for a queued job."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    log = store.file_path(f"jobs/{job_id}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "core", "worker", "--job", str(job_id), "--db", str(store.path)],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def start(store: Store, kind: str, params: dict) -> int:
    """Queue a job and launch its worker; returns the job id."""
    job_id = submit(store, kind, params)
    launch(store, job_id)
    return job_id


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
    with store.transaction() as con:
        con.execute(
            """UPDATE jobs SET status = 'running', pid = ?, started_at = coalesce(started_at,
               current_timestamp), updated_at = current_timestamp, message = 'starting' WHERE id = ?""",
            [os.getpid(), job_id],
        )
    ctx = JobContext(store, job_id)
    signal.signal(signal.SIGTERM, ctx.request_stop)
    try:
        if ctx.should_stop():
            raise Cancelled("cancelled before it started")
        result = JOB_KINDS[job["kind"]](store, job["params"], ctx)
    except Cancelled:
        _finish(
            store, job_id, "cancelled", "cancelled; finished chunks are kept and a rerun resumes"
        )
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


def cancel(store: Store, job_id: int) -> None:
    """Ask a job to stop: flag it; a queued job ends at once, a running one at its next check."""
    job = get_job(store, job_id)
    if job["status"] in FINAL:
        return
    with store.transaction() as con:
        con.execute("UPDATE jobs SET cancel_requested = true WHERE id = ?", [job_id])
    if job["status"] in ("queued", "interrupted"):
        _finish(store, job_id, "cancelled", "cancelled before it ran")
    elif job["pid"] and _alive(int(job["pid"])):
        with contextlib.suppress(OSError):  # the worker turns SIGTERM into a stop request
            os.kill(int(job["pid"]), signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def reconcile(store: Store) -> list[int]:
    """Mark running jobs whose worker is gone as ``interrupted``; returns their ids."""
    df = store.query_df("SELECT id, pid FROM jobs WHERE status = 'running'")
    dead = [int(r.id) for r in df.itertuples() if not (pd.notna(r.pid) and _alive(int(r.pid)))]
    for job_id in dead:
        with store.transaction() as con:
            con.execute(
                """UPDATE jobs SET status = 'interrupted', updated_at = current_timestamp,
                   message = 'the worker stopped unexpectedly; finished chunks are kept' WHERE id = ?""",
                [job_id],
            )
    return dead


def resume(store: Store, job_id: int) -> subprocess.Popen:
    """Relaunch an interrupted, failed or cancelled job; finished chunks are skipped."""
    job = get_job(store, job_id)
    if job["status"] in ("running", "queued", "done"):
        raise ConfigError(f"job {job_id} is {job['status']}; only a stopped job can be resumed")
    with store.transaction() as con:
        con.execute(
            """UPDATE jobs SET status = 'queued', cancel_requested = false, finished_at = NULL,
               message = 'resuming' WHERE id = ?""",
            [job_id],
        )
    return launch(store, job_id)


def reconcile_and_resume(store: Store) -> list[int]:
    """At start-up: mark dead workers' jobs interrupted and relaunch them."""
    ids = reconcile(store)
    for job_id in ids:
        resume(store, job_id)
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


from . import job_kinds  # noqa: E402, F401  (registers the job kinds)
