"""Helpers for the fault tests: what the store holds (to show nothing was lost), a check that
it is whole, processes that cannot write past a size or into a read-only folder (even as root).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from core.store import check as store_check
from core.store.db import Store
from tests.conftest import ROOT

# jobs change as they run; a set still building gains chunks and its status, and its builder's
# claim comes and goes: work in progress
IN_PROGRESS = {"jobs": "true", "model_sets": "status = 'building'", "build_claims": "true"}


def wait_for(pred: Callable[[], object], timeout: float = 120.0, every: float = 0.5) -> object:
    """Poll ``pred`` until it is truthy (returned) or ``timeout`` seconds pass (fails).

    Every ``every`` seconds, not faster: a predicate that reads the lab opens the database
    (~30 ms of CPU, and DuckDB's lock, which the job being waited for needs); polled every
    0.1 s on three jobs, the waiting test took most of a core from the job. A predicate true
    only for a moment (a job part-way) passes a smaller ``every``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def snapshot(store: Store) -> dict[str, frozenset]:
    """Every stored row (but work in progress) as text, by table, and the SHA-256 of every
    array file a row names (``*_file`` columns; files no row names yet are a chunk in the
    making, removed and written again by a resumed build), by path under the files folder.

    One read connection for every table (a connection opens a DuckDB instance: ~30-90 ms of
    CPU; one per query made this helper a visible share of the fault tests' CPU), tried again
    like ``Store.query_df`` when it finds the file short while another process writes it."""
    from core.common.errors import StoreError

    deadline = time.monotonic() + 60
    while True:
        try:
            with store.connect(read_only=True) as con:
                return _snapshot(store, con)
        except StoreError as err:
            if "could not read enough bytes" not in str(err).lower():
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _snapshot(store: Store, con) -> dict[str, frozenset]:
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).df()["table_name"]
    out: dict[str, frozenset] = {}
    named: set[str] = set()
    for t in tables:
        everything = con.execute(f'SELECT * FROM "{t}"').df()
        for col in (c for c in everything.columns if c.endswith("_file")):
            named.update(v for v in everything[col] if isinstance(v, str))
        skip = IN_PROGRESS.get(t, "false")
        df = con.execute(f'SELECT * FROM "{t}" WHERE NOT ({skip})').df()
        out[t] = frozenset(map(tuple, df.astype(str).itertuples(index=False)))
    files = []
    for rel in sorted(named):
        p = store.file_path(rel)
        files.append((rel, hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-"))
    out["<files>"] = frozenset(files)
    return out


def assert_kept(before: dict[str, frozenset], after: dict[str, frozenset]) -> None:
    """Everything ``before`` held is still there, unchanged (rows and file bytes)."""
    for name, rows in before.items():
        lost = rows - after.get(name, frozenset())
        assert not lost, f"{name}: lost or changed {sorted(lost)[:3]}"


def assert_whole(store: Store) -> None:
    """The file passes its checks (headers, every block's checksum, every table read through
    DuckDB), no temp files are left, and every chunk row names loadable files of its size."""
    store.check()
    assert store_check.damaged_blocks(store.path, store_check.read_header(store.path)) == []
    with store.connect(read_only=True) as con:
        store_check.scan_all(con)
    if store.files_dir.is_dir():
        assert not [p for p in store.files_dir.rglob("*.tmp")], "a temp file was left behind"
    for r in store.query_df("SELECT * FROM model_chunks").itertuples():
        assert store.load_array(r.margins_file).shape[0] == r.n_models
        assert store.load_array(r.masks_file).shape[0] == r.n_models
        assert store.load_tensors(r.weights_file)


def cli(
    *args: str, db, preexec=None, env: dict | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    """``python -m core ARGS --db DB`` in a subprocess (``preexec``: run in it before exec;
    ``env``: added to this environment)."""
    return subprocess.run(
        [sys.executable, "-m", "core", *args, "--db", str(db)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def size_limit(limit: int) -> Callable[[], None]:
    """A ``preexec_fn``: files of at most ``limit`` bytes (a write past it fails with EFBIG,
    as a full disk fails with ENOSPC; SIGXFSZ ignored so the write returns the error)."""

    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def without_override() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes file permissions bind (root ignores them: tests and CI run
    as root): it drops the capabilities that override them from the bounding set, so the
    program exec'd runs as root without them. None when not root (permissions bind already).
    Raises ``OSError`` where the capabilities cannot be dropped."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    try:  # can this machine drop them? (a container may forbid it)
        subprocess.run(["true"], preexec_fn=lambda: _drop(libc), check=True)
    except (subprocess.SubprocessError, OSError) as err:
        raise OSError(f"cannot drop CAP_DAC_OVERRIDE here: {err}") from err
    return lambda: _drop(libc)


def _drop(libc) -> None:
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@contextlib.contextmanager
def tmpfs(mnt, size: str = "4m") -> Iterator[Path]:
    """A real filesystem of ``size`` mounted at ``mnt`` for the block (needs root and mount;
    the test is skipped where unavailable): a disk that really fills up."""
    mnt = Path(mnt)
    mnt.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                         capture_output=True)  # fmt: skip
    if res.returncode != 0:
        import pytest

        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:  # the store keeps a descriptor of its file (DuckDB's lock): close it, or the
        store_check.close_descriptors(mnt)  # disk stays busy and the mount outlives the test
        subprocess.run(["umount", str(mnt)], check=True)


def fill(folder, leave: int) -> Path:
    """Fill the filesystem holding ``folder`` until ``leave`` bytes are free; the filler file
    (delete it to free the space again)."""
    filler = Path(folder) / "filler"
    st = os.statvfs(folder)
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler
