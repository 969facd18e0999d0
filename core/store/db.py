"""The store: one DuckDB file (default ``data/lab.duckdb``) plus array files beside it.

Location: the ``--db`` flag, else the ``LAB_DB`` environment variable, else ``data/lab.duckdb``.
Array files (weights, margins) live in ``<db stem>.files/`` next to the database and are named
by the rows that own them.

DuckDB allows one writing process per file. Every operation here opens a short-lived
connection and closes it, so the dashboard and the CLI can take turns; when the file is held
by another process we wait briefly (``LAB_DB_TIMEOUT`` seconds, default 5) and then stop with
a clear ``StoreError`` — never a half-written run. Each write is one transaction.

Reads open the file read-only and never create it: a missing file reads as an empty lab (or,
with ``must_exist=True``, is refused), so a mistyped path leaves nothing behind. The schema is
created or migrated (``MIGRATIONS``; version kept in ``meta``) by the first write; a read of an
older schema upgrades it first, or says so when the file is read-only. Before DuckDB sees a
file, ``store_check`` recognises it by its header; with DuckDB's lock held, its blocks'
checksums are verified on a Store's first use and again before a write whenever the file
changed since (someone else wrote it), so nothing is ever written into a damaged file. Storage
errors anywhere (corruption, disk full, permissions) become one ``StoreError`` naming the file.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from core.common.errors import ConfigError, StoreError
from core.store import check as store_check
from core.store import wal as store_wal
from core.store.files import ArrayFiles
from core.store.schema import MIGRATIONS

DEFAULT_DB = Path("data") / "lab.duckdb"
DEFAULT_TIMEOUT_S = 5.0
# a read that finds the file shorter than its header says beside writing processes (seen in CI
# right after a worker's last write, for over 5 s) is retried this long before it is reported
SHORT_READ_PATIENCE_S = 30.0
MAX_TIMEOUT_S = 3600.0


def resolve_db_path(path: str | os.PathLike | None = None) -> Path:
    """The database path: argument, else ``$LAB_DB``, else ``data/lab.duckdb``; ``~`` expanded
    and made absolute against the current folder *now*, so that a worker process started in
    another folder (``core.jobs.queue.launch``) opens this same lab, not one relative to its own."""
    return Path(path or os.environ.get("LAB_DB") or DEFAULT_DB).expanduser().absolute()


def _transient(err: BaseException) -> bool:
    """An open that another process's work makes fail for a moment: its lock, or its write-ahead
    log removed by a checkpoint between our seeing it and opening it; or another thread's open
    connection of the other kind (read-only vs. read-write: DuckDB refuses to mix them)."""
    msg = str(err).lower()
    return (
        store_check.LOCK_WORD.search(msg) is not None
        or (".wal" in msg and "no such file" in msg)
        or "different configuration" in msg  # a write (read) connection of another thread
    )


def db_timeout() -> float:
    """Seconds to wait for another process's lock: ``$LAB_DB_TIMEOUT``, default 5."""
    raw = os.environ.get("LAB_DB_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= MAX_TIMEOUT_S:
        raise ConfigError(
            f"LAB_DB_TIMEOUT must be a number of seconds from 0 to {MAX_TIMEOUT_S:.0f}, "
            f"got {raw[:40]!r}"
        )
    return value


class Store(ArrayFiles):
    """Access to one lab database. Cheap to create; every call opens its own connection.

    ``must_exist``: reads of a missing file raise ``StoreError`` instead of reading as empty
    (the CLI's read commands); writes always create the file.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        timeout: float | None = None,
        *,
        must_exist: bool = False,
    ):
        self.path = resolve_db_path(path)
        self.timeout = db_timeout() if timeout is None else float(timeout)
        self.must_exist = must_exist
        self.files_dir = self.path.with_name(self.path.stem + ".files")
        self._schema_ok = False  # the file's schema was found (or made) current once
        # ((inode, size, mtime), [first failing block] or []) of the last full check
        self._verified: tuple[tuple[int, int, int] | None, list[int]] | None = None
        self._held: tuple[duckdb.DuckDBPyConnection, int] | None = None  # (con, thread): held()

    # -- file checks ---------------------------------------------------------------------
    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _check_file(self, con: duckdb.DuckDBPyConnection, writing: bool) -> None:
        """Run with DuckDB's lock held (no other process is writing): the headers and size on
        every open; every block's checksum on first use, and again before a write when the file
        changed since. A write into a file with a failing block is refused; a read goes ahead if
        DuckDB can still read every table (the block may be unused).
        """
        try:
            header = store_check.read_header(self.path)
        except store_check.CutFile as err:  # damage only if DuckDB cannot read every table
            if store_wal.size_is_damage(con):
                raise (store_wal.recovery_pending(self.path, self._writable()) or err) from None
            header = store_check.read_header(self.path, strict=False)
        sig = self._signature()
        if self._verified is None or (writing and self._verified[0] != sig):
            bad = store_check.damaged_blocks(self.path, header)
            self._verified = (sig, bad[:1])
            if bad and not writing:
                try:
                    store_check.scan_all(con)
                except duckdb.Error as err:
                    self._verified = None  # every later read says so too
                    raise store_check.storage_error(err, self.path, "read") from err
        bad = self._verified[1]
        if writing and bad:
            at = store_check.BLOCKS_START + bad[0] * header.block_size
            raise store_check.damaged(self.path, f"the block at byte {at} fails its checksum")

    def _writable(self) -> bool:
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)

    def check(self) -> None:
        """Open the file once for reading (header, blocks, schema); ``StoreError`` if unusable."""
        with self.connect(read_only=True):
            pass

    def create(self) -> Store:
        """Create the file with the current schema, or upgrade an older one; returns ``self``."""
        with self.connect():
            pass
        return self

    # -- connections -------------------------------------------------------------------
    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except (duckdb.Error, OSError) as err:
                if _transient(err) and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise store_check.storage_error(err, self.path) from err

    def _prepare_write(self) -> None:
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

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """A checked connection; reads need an existing file (see ``connect``)."""
        if self.path.is_dir():
            raise StoreError(f"the database path {self.path} is a directory, not a file")
        if self.path.exists() and not self.path.is_file():  # never opened: a FIFO would block
            raise StoreError(f"the database path {self.path} is a device, FIFO or socket")
        if not read_only:
            self._prepare_write()
        exists = self.path.exists()
        if exists:  # never hand DuckDB a file that is not one
            store_check.read_header(self.path, strict=False)
        con = self._connect(read_only)
        if exists:
            try:
                self._check_file(con, writing=not read_only)
            except BaseException:
                con.close()
                raise
        return con

    def _empty_lab(self) -> duckdb.DuckDBPyConnection:
        """An in-memory database with the current schema: how a missing file reads."""
        con = duckdb.connect(":memory:")
        self._upgrade(con, 0)
        return con

    def _reader(self) -> duckdb.DuckDBPyConnection:
        if not self.path.exists() and not self.path.is_symlink():
            if self.must_exist:
                raise StoreError(
                    f"the database {self.path} does not exist (check --db / LAB_DB); "
                    "nothing was created"
                )
            return self._empty_lab()
        con = self._open(read_only=True)
        if self._schema_ok:
            return con
        try:
            version = self._version(con)
        except BaseException:
            con.close()
            raise
        if version < len(MIGRATIONS):  # an older lab: upgrade it once (a write), then read
            con.close()
            if not self._writable():
                raise StoreError(
                    f"the database {self.path} has schema {version}, older than this lab's "
                    f"{len(MIGRATIONS)}: it must be upgraded once before it can be read, but it "
                    "is read-only — make it and its folder writable, or copy it somewhere writable"
                )
            with self.connect():
                pass
            con = self._open(read_only=True)
        self._schema_ok = True
        return con

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for the duration of the block; closed afterwards (releases the lock).

        ``read_only``: a read-only connection (a missing file reads as an empty lab, or is
        refused with ``must_exist``); otherwise the file is created or migrated first.
        """
        held = self._held
        if held is not None and held[1] == threading.get_ident():  # inside held(): reuse it
            with self._translated(read_only):
                yield held[0]
            return
        con = self._reader() if read_only else self._open(read_only=False)
        failed = True
        try:
            with self._translated(read_only):
                if not read_only and not self._schema_ok:
                    self._migrate(con)
                yield con
            failed = False
        finally:
            store_wal.close(con, self.path, not read_only, quiet=failed)
        if not read_only:
            self._verified = (self._signature(), [])  # our own write: the file stays trusted

    @contextlib.contextmanager
    def _translated(self, read_only: bool) -> Iterator[None]:
        """DuckDB's storage errors inside a connection's block, as one ``StoreError``."""
        try:
            yield
        except duckdb.Error as err:
            if store_check.is_storage_error(err):
                action = "read" if read_only else "write to"
                raise store_check.storage_error(err, self.path, action) from err
            raise

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """One write connection for a burst of short reads and writes by this thread: every
        ``connect`` and ``transaction`` inside the block uses it instead of opening the file
        again (an open costs ~30 ms: an evaluation's bookkeeping opened it ~40 times). Other
        processes wait for the block as for any write, so hold it only around work that does
        not train. Where the lab cannot be written (missing, read-only) it holds nothing and
        each call opens its own connection, as outside the block; nested blocks hold nothing
        more. Each ``transaction`` inside stays its own atomic commit."""
        if self._held is not None or not self.path.is_file() or not self._writable():
            yield
            return
        with self.connect() as con:
            self._held = (con, threading.get_ident())
            try:
                yield
            finally:
                self._held = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic write: everything in the block lands, or nothing does."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- schema --------------------------------------------------------------------------
    def _version(self, con: duckdb.DuckDBPyConnection) -> int:
        """The file's schema version (0: no lab tables yet); refuses newer and foreign files."""
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        }
        if "meta" not in tables:
            if tables:
                raise StoreError(
                    f"{self.path} is a DuckDB database but not an Unlearning Lab one (it has no "
                    "meta table); it was left untouched — point --db / LAB_DB at a lab database"
                )
            return 0
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row and str(row[0]).isdigit() else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} was written by a newer Unlearning Lab (schema {version}); "
                "upgrade the lab to open it"
            )
        return version

    @staticmethod
    def _upgrade(con: duckdb.DuckDBPyConnection, version: int) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for migration in MIGRATIONS[version:]:
            migration(con)
        con.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(len(MIGRATIONS))]
        )

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create the schema, or bring an older one up to date, in one transaction."""
        con.execute("BEGIN TRANSACTION")
        try:
            version = self._version(con)
            if version < len(MIGRATIONS):
                self._upgrade(con, version)
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        self._schema_ok = True

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
        from core import code_version

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

        from core.common.errors import NotFoundError

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
        """Run a read-only query and return a pandas DataFrame.

        A read that finds the file shorter than DuckDB expects while other processes write
        to it (seen under load: "Could not read enough bytes") is retried on a fresh
        connection until the timeout; a file that stays short is reported as before.
        """
        deadline = time.monotonic() + max(self.timeout, SHORT_READ_PATIENCE_S)
        while True:
            try:
                with self.connect(read_only=True) as con:
                    return con.execute(sql, params or []).df()
            except StoreError as err:
                if "could not read enough bytes" not in str(err).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise
                gc.collect()  # drop any DuckDB instance a failed connection left behind
                time.sleep(0.2)
