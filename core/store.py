"""The store: one DuckDB file (default ``data/lab.duckdb``) plus array files beside it.

Location: the ``--db`` flag, else the ``LAB_DB`` environment variable, else ``data/lab.duckdb``.
Array files (weights, margins) live in ``<db stem>.files/`` next to the database and are named
by the rows that own them.

DuckDB allows one writing process per file. Every operation here opens a short-lived
connection and closes it, so the dashboard and the CLI can take turns; when the file is held
by another process we wait briefly (``LAB_DB_TIMEOUT`` seconds, default 5) and then stop with
a clear ``StoreError`` — never a half-written run. Each write is one transaction.
The schema is created and migrated on open (``MIGRATIONS``; version kept in ``meta``).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from .errors import StoreBusyError, StoreError
from .schema import MIGRATIONS

DEFAULT_DB = Path("data") / "lab.duckdb"


def resolve_db_path(path: str | os.PathLike | None = None) -> Path:
    """The database path: argument, else ``$LAB_DB``, else ``data/lab.duckdb``."""
    return Path(path or os.environ.get("LAB_DB") or DEFAULT_DB).expanduser()


def _explain(err: Exception, path: Path) -> StoreError:
    """Turn a DuckDB/OS error on open into a message a user can act on."""
    msg = str(err)
    if "lock" in msg.lower():
        pid = re.search(r"PID (\d+)", msg)
        who = f" (process {pid.group(1)})" if pid else ""
        return StoreBusyError(
            f"the database {path} is in use by another process{who}; "
            "wait for it to finish or stop it (e.g. close the dashboard's running job), then retry"
        )
    if (
        "not a valid duckdb database" in msg.lower()
        or "invalid" in msg.lower()
        and "header" in msg.lower()
    ):
        return StoreError(
            f"{path} is not a DuckDB database (or it is corrupt); "
            "point --db / LAB_DB at another file — this one was left untouched"
        )
    return StoreError(f"cannot open the database {path}: {msg.splitlines()[0]}")


class Store:
    """Access to one lab database. Cheap to create; every call opens its own connection."""

    def __init__(self, path: str | os.PathLike | None = None, timeout: float | None = None):
        self.path = resolve_db_path(path)
        self.timeout = float(os.environ.get("LAB_DB_TIMEOUT", 5.0)) if timeout is None else timeout
        self.files_dir = self.path.with_name(self.path.stem + ".files")
        self._migrated = False
        self._migrate()

    # -- connections -------------------------------------------------------------------
    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if self.path.exists() and self.path.is_dir():
            raise StoreError(f"the database path {self.path} is a directory, not a file")
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as err:
                raise StoreError(
                    f"cannot create the database {self.path}: a file stands where its folder "
                    "should be; choose another --db path"
                ) from err
            except OSError as err:
                raise StoreError(
                    f"cannot create the folder for the database {self.path}: {err.strerror or err}"
                ) from err
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise StoreError(f"the database {self.path} is not writable")
            if not os.access(self.path.parent, os.W_OK):
                raise StoreError(f"the folder {self.path.parent} is not writable")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except (duckdb.Error, OSError) as err:
                locked = "lock" in str(err).lower()
                if locked and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise _explain(err, self.path) from err

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for the duration of the block; closed afterwards (releases the lock)."""
        if read_only and not self.path.exists():
            read_only = False  # nothing to read yet: create the (empty) schema first
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic write: everything in the block lands, or nothing does."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- schema --------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Create the schema, or bring an older one up to date, in one transaction."""
        with self.transaction() as con:
            con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} was written by a newer Unlearning Lab (schema {version}); "
                    "upgrade the lab to open it"
                )
            for migration in MIGRATIONS[version:]:
                migration(con)
            con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(len(MIGRATIONS))]
            )

    def schema_version(self) -> int:
        with self.connect(read_only=True) as con:
            return int(
                con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            )

    # -- runs ----------------------------------------------------------------------------
    @staticmethod
    def insert_run(
        con: duckdb.DuckDBPyConnection,
        kind: str,
        config_json: str,
        seed: int | None,
        device: str,
        wall_time_s: float,
        summary_json: str | None = None,
        run_id: int | None = None,
    ) -> int:
        """Insert a run row inside the caller's transaction; returns its id.

        ``run_id``: an id already drawn from ``run_id_seq`` (to name files before the insert).
        """
        from . import code_version

        if run_id is None:
            run_id = con.execute("SELECT nextval('run_id_seq')").fetchone()[0]
        row = con.execute(
            """INSERT INTO runs (id, kind, config, seed, code_version, device, wall_time_s, summary)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            [run_id, kind, config_json, seed, code_version(), device, wall_time_s, summary_json],
        ).fetchone()
        return int(row[0])

    def run(self, run_id: int) -> dict:
        """One run row as a dict (config and summary parsed); NotFoundError if absent."""
        import json

        from .errors import NotFoundError

        with self.connect(read_only=True) as con:
            cur = con.execute("SELECT * FROM runs WHERE id = ?", [run_id])
            row = cur.fetchone()
            if row is None:
                raise NotFoundError(f"there is no run with id {run_id}")
            out = dict(zip([c[0] for c in cur.description], row, strict=True))
        out["config"] = json.loads(out["config"])
        out["summary"] = json.loads(out["summary"]) if out["summary"] else None
        return out

    def query_df(self, sql: str, params: list | None = None):
        """Run a read-only query and return a pandas DataFrame."""
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).df()

    # -- array files ---------------------------------------------------------------------
    def file_path(self, rel: str) -> Path:
        return self.files_dir / rel

    def write_file(self, rel: str, write: Callable[[Path], None]) -> str:
        """Write a file atomically (temp name, then rename) under the files folder."""
        dest = self.file_path(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            write(tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return rel

    def save_array(self, rel: str, arr) -> str:
        """Save a NumPy array as ``.npy`` (atomically); returns ``rel`` for the owning row."""
        import numpy as np

        def write(p: Path) -> None:
            with open(p, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)

        return self.write_file(rel, write)

    def load_array(self, rel: str):
        import numpy as np

        path = self.file_path(rel)
        if not path.exists():
            raise StoreError(f"the array file {path} named by the database is missing")
        return np.load(path, allow_pickle=False)

    def save_tensors(self, rel: str, tensors: dict) -> str:
        """Save a dict of tensors with ``torch.save`` (loaded back with ``weights_only=True``)."""
        import torch

        return self.write_file(rel, lambda p: torch.save(tensors, p))

    def load_tensors(self, rel: str, device=None) -> dict:
        import torch

        path = self.file_path(rel)
        if not path.exists():
            raise StoreError(f"the weights file {path} named by the database is missing")
        return torch.load(path, map_location=device or "cpu", weights_only=True)

    def remove_files(self, rel_dir: str) -> None:
        """Delete a folder of array files (after its rows are gone)."""
        import shutil

        shutil.rmtree(self.file_path(rel_dir), ignore_errors=True)
