"""The training thread policy: one thread for small steps, else the cores idle right now."""

from __future__ import annotations

import pytest

import core.common.threads as threads
from core.common.errors import ConfigError


def _fake_stat(monkeypatch, samples):
    """Feed ``_cpu_times`` a sequence of (busy, total) jiffies and skip the sleep."""
    it = iter(samples)
    monkeypatch.setattr(threads, "_cpu_times", lambda cores: next(it))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)


def test_idle_cores_from_jiffies(monkeypatch):
    monkeypatch.setattr(threads, "cores_available", lambda: [0, 1])
    _fake_stat(monkeypatch, [(1000, 4000), (1100, 4200)])  # 100 of 200 busy: one core free
    assert threads.idle_cores() == pytest.approx(1.0)
    _fake_stat(monkeypatch, [(0, 0), (0, 0)])  # no progress in the counters: unknown
    assert threads.idle_cores() is None


@pytest.mark.parametrize(
    "work,busy,expected",
    [
        (6400, 0, 2),  # quiet machine: every core
        (6400, 100, 1),  # one core busy beside us: one thread
        (6400, 200, 1),  # everything busy: still one
        (6400, 40, 2),  # a light background load rounds to two free cores
        (1024, 0, 1),  # small steps: one thread whatever the machine
    ],
)
def test_training_threads(monkeypatch, work, busy, expected):
    monkeypatch.delenv("LAB_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores_available", lambda: [0, 1])
    _fake_stat(monkeypatch, [(0, 0), (busy, 200)])
    assert threads.training_threads(work) == expected


def test_lab_threads_overrides_and_is_validated(monkeypatch):
    monkeypatch.setenv("LAB_THREADS", "3")
    assert threads.training_threads(10**6) == 3
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv("LAB_THREADS", bad)
        with pytest.raises(ConfigError, match="LAB_THREADS"):
            threads.training_threads(10**6)


def test_real_proc_stat_is_read():
    """On Linux the counters exist for this process's cores and move forward."""
    cores = threads.cores_available()
    a = threads._cpu_times(cores)
    if a is None:
        pytest.skip("no /proc/stat here")
    idle = threads.idle_cores(0.05)
    assert idle is None or 0.0 <= idle <= len(cores) + 1e-9
