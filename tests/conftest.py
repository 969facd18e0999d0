"""Shared fixtures: every test gets its own database file in a temporary folder."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path

# One BLAS/OpenMP thread per process unless the caller says otherwise: the suite runs two
# workers on a 2-core machine, each beside servers, browsers and job workers, and an OpenMP team
# that shares its cores with them stalls at every barrier (the suite took ~16% longer with the
# libraries' default of one thread per core). Set before torch and numpy load; subprocesses
# (servers, CLI, job workers) inherit it; LAB_THREADS=1 does the same for training
# (core.common.threads), which would otherwise take every core it finds idle at a chunk's start.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LAB_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every run (derandomize: examples follow from each
# test's source), so the suite never flakes on a case one run happens to find. To explore new
# cases, run with HYPOTHESIS_PROFILE=explore; a case it finds becomes an explicit @example.
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def db_path(tmp_path, monkeypatch) -> Path:
    """A fresh database path, also exported as LAB_DB for code that reads the environment."""
    path = tmp_path / "lab.duckdb"
    monkeypatch.setenv("LAB_DB", str(path))
    return path


def page_infos(at) -> list[str]:
    """The info boxes a page drew, without the router's "Loading the lab…" note. AppTest keeps
    that note in the tree of a process's first run, although the router empties it (a browser
    drops it: tests/dashboard/test_browser.py), so ``at.info[0]`` depends on which test a worker
    ran first."""
    from dashboard.warmup import LOADING

    return [i.value for i in at.info if i.value != LOADING]


def serving(proc, port: int, log: Path, timeout: float = 60) -> bool:
    """Wait until the Streamlit server ``proc`` serves on ``port``: its health check answers and
    its own log names the port. (The suite runs on two workers, each picking free ports: a
    server whose port the other worker's server took first exits, while the health check would
    answer from the other one.) False if it exited or the timeout passed."""
    ours = re.compile(rf"URL: http://[^\s]+:{port}\b")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            healthy = (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status
                == 200
            )
        except OSError:
            healthy = False
        if healthy and ours.search(log.read_text(errors="replace")):
            return True
        time.sleep(0.3)
    return False


def pytest_collection_modifyitems(config, items):
    """Skip GPU-marked tests where there is no CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
