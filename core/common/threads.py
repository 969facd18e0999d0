"""CPU threads for training, chosen per chunk from the cores that are free right now.

Small stacked steps (models × batch < 2,048 examples) run on one thread: OpenMP threads that
wait on each other at every tiny op cost more than they give. Larger steps use as many threads
as this process's cores (its CPU affinity) are idle, measured over a short window from
``/proc/stat`` just before each chunk: on a quiet machine every core, beside a busy process
one fewer — an OpenMP team that shares a core with another process stalls at every barrier,
so on a 2-core machine beside one busy process one thread is faster than two. ``LAB_THREADS``
overrides the choice. ``bench/demo_load.py`` measures the policy quiet and beside a busy
process.
"""

from __future__ import annotations

import os
import time

SMALL_WORK = 2048  # examples per stacked step below which one thread is used


def cores_available() -> list[int]:
    """The CPU ids this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cpu_times(cores: list[int]) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over ``cores``, from ``/proc/stat``; None without it."""
    try:
        with open("/proc/stat") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    want = {f"cpu{c}" for c in cores}
    busy = total = 0
    for line in lines:
        parts = line.split()
        if parts and parts[0] in want:
            vals = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
            total += sum(vals)
            busy += sum(vals) - vals[3] - vals[4]
    return (busy, total) if total else None


def idle_cores(window_s: float = 0.1) -> float | None:
    """How many of this process's cores were idle over the next ``window_s`` seconds."""
    cores = cores_available()
    a = _cpu_times(cores)
    time.sleep(window_s)
    b = _cpu_times(cores)
    if a is None or b is None or b[1] <= a[1]:
        return None
    busy = (b[0] - a[0]) / (b[1] - a[1])  # share of the cores' time spent busy
    return len(cores) * (1.0 - busy)


def env_threads() -> int | None:
    """``LAB_THREADS`` as a positive whole number, or None when unset."""
    from core.common.errors import ConfigError

    raw = os.environ.get("LAB_THREADS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"LAB_THREADS must be a whole number ≥ 1, got {raw!r}")
    return int(raw)


def training_threads(work: int) -> int:
    """Threads for stacked steps of ``work`` examples (models × batch)."""
    forced = env_threads()
    if forced is not None:
        return forced
    n = len(cores_available())
    if work < SMALL_WORK or n == 1:
        return 1
    idle = idle_cores()
    if idle is None:
        return n
    return max(1, min(n, int(idle + 0.5)))
