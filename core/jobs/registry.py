"""The job kinds' registry and the context a running job is handed (progress, cancel)."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.store.db import Store

JobFn = Callable[[Store, dict, "JobContext"], dict]
CheckFn = Callable[[Store, dict], None]
JOB_KINDS: dict[str, JobFn] = {}
JOB_CHECKS: dict[str, CheckFn] = {}
JOB_READY: dict[str, CheckFn] = {}


def job_kind(
    name: str, check: CheckFn | None = None, ready: CheckFn | None = None
) -> Callable[[JobFn], JobFn]:
    """Register a job function ``fn(store, params, ctx) -> result dict`` under ``name``.

    ``check(store, params)`` raises ``ConfigError`` for parameters the job cannot run with; it
    runs in ``submit`` (before any row is written) and again in the worker. ``ready(store,
    params)`` raises ``ConfigError`` while what the job needs is not stored (oracles, a
    datamodel); it is skipped while a job this one waits for (``after``) has not finished.
    """

    def deco(fn: JobFn) -> JobFn:
        JOB_KINDS[name] = fn
        if check is not None:
            JOB_CHECKS[name] = check
        if ready is not None:
            JOB_READY[name] = ready
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
