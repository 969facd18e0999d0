"""Which process a job's worker is: its pid *and* its process start time, so a pid reused by
another process after the worker died is never taken for the worker (nor signalled)."""

from __future__ import annotations

import os
import subprocess

import pandas as pd


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


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as an opaque string; None when it cannot be read.

    Linux: field 22 of ``/proc/<pid>/stat`` (clock ticks after boot); elsewhere the start time
    ``ps -o lstart=`` prints. A pid reused by another process comes with another start time.
    """
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{int(pid)}/stat") as fh:
                # the command name (field 2) may hold spaces and ")": split after its last ")"
                return "ticks:" + fh.read().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            return None
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(int(pid))],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    text = " ".join(out.stdout.split())
    return f"ps:{text}" if out.returncode == 0 and text else None


def is_worker(pid: object, start: object) -> bool:
    """True only if ``pid`` is alive and is the very process that started at ``start``.

    A missing pid or start time, a dead pid, or one now used by another process (another start
    time, or one that cannot be read) is not the worker.
    """
    if pid is None or start is None or pd.isna(pid) or pd.isna(start):
        return False
    return _alive(int(pid)) and process_start(int(pid)) == str(start)
