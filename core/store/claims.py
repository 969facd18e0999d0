"""One builder per model set at a time: a claim row, taken atomically in DuckDB.

A build first removes the files of its set that no chunk row names (the leftovers of a killed
build). Two processes building the same set at once (two terminals, the CLI beside a dashboard
job) would each delete the other's chunk files written but not yet recorded, and both train
the same chunks. So a build claims its set first: one row in ``build_claims`` naming the
builder by its pid, its process start time (``core.common.processes``: a pid reused after the builder
died is not the builder) and its host. A second builder of the set is refused with a message
naming the first; a claim whose process is gone (killed, crashed) is taken over.

The table is created by the first claim (``CREATE TABLE IF NOT EXISTS`` in the claim's own
transaction), not by a schema migration: only builders use it, and a lab that never built
keeps its schema as it was.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from core.common.errors import StoreError
from core.common.processes import is_worker, process_start
from core.store.db import Store

TABLE = """CREATE TABLE IF NOT EXISTS build_claims (
    set_id BIGINT PRIMARY KEY, pid BIGINT, started VARCHAR, host VARCHAR,
    claimed_at TIMESTAMP DEFAULT current_timestamp)"""


class SetBusyError(StoreError):
    """The model set is being built by another live process."""


def _holder_alive(pid: int, started: str, host: str) -> bool:
    """A claim's process still runs (on another host we cannot tell: taken as alive)."""
    if host != socket.gethostname():
        return True
    return is_worker(pid, started)


def claim(store: Store, set_id: int) -> None:
    """Claim ``set_id`` for this process; ``SetBusyError`` if another live process holds it.
    This process's own claim (left by a release that failed) is taken again: builds run one
    per process (the CLI, a job's worker), never two threads of one process on one set."""
    me = (os.getpid(), process_start(os.getpid()) or "unknown", socket.gethostname())
    with store.transaction() as con:
        con.execute(TABLE)
        row = con.execute(
            "SELECT pid, started, host, claimed_at FROM build_claims WHERE set_id = ?", [set_id]
        ).fetchone()
        mine = row is not None and (int(row[0]), str(row[1]), str(row[2])) == me
        if row is not None and not mine and _holder_alive(int(row[0]), str(row[1]), str(row[2])):
            pid, _, host, at = row
            where = "" if host == me[2] else f" on {host}"
            raise SetBusyError(
                f"model set {set_id} is being built by another process (process {pid}{where}, "
                f"since {str(at)[:19]}); wait for it to finish or stop it, then retry — "
                "two builds of one set would delete each other's unfinished files"
            )
        con.execute("INSERT OR REPLACE INTO build_claims VALUES (?, ?, ?, ?, now())", [set_id, *me])


def release(store: Store, set_id: int) -> None:
    """Drop this process's claim on ``set_id`` (another's is left alone)."""
    with store.transaction() as con:
        con.execute(TABLE)
        con.execute(
            "DELETE FROM build_claims WHERE set_id = ? AND pid = ? AND host = ?",
            [set_id, os.getpid(), socket.gethostname()],
        )


@contextlib.contextmanager
def claimed(store: Store, set_id: int) -> Iterator[None]:
    """Hold the claim on ``set_id`` for the block. A release that fails (a full disk, a busy
    file) is dropped so that the block's own error shows; the claim stays this process's
    until it ends, and is then taken over."""
    claim(store, set_id)
    try:
        yield
    finally:
        with contextlib.suppress(StoreError):
            release(store, set_id)
