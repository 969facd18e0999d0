"""DuckDB's write-ahead log (``<db>.wal``) around a failed checkpoint: report it, never call it
damage.

A commit lands in the ``.wal`` first; DuckDB copies it into the database file (a checkpoint)
when the last connection closes, but it *swallows* a failure there: on a full disk a command
reported success while its change stayed in the ``.wal``, and the file — grown by part of the
checkpoint's writes — no longer looked whole to the lab's size check, so every later command
called it damaged although DuckDB replays the log and every row is there. So a write
connection is checkpointed explicitly before it is closed (``close``): a failure raises, and the
command says that nothing was lost. And a file whose size looks cut is only called damaged when
DuckDB itself cannot read every table (``size_is_damage``); a reader that may not write, facing
a log it cannot apply, is told that recovery is pending (``recovery_pending``).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from core.common.errors import StoreError
from core.store import check as store_check


def wal_path(path: Path) -> Path:
    """The write-ahead log DuckDB keeps beside the database file."""
    return path.with_name(path.name + ".wal")


def kept(path: Path) -> str:
    """What is true of a commit whose checkpoint failed."""
    return (
        f"nothing was lost: the change is in its write-ahead log ({wal_path(path).name}) and is "
        "applied when the database is next opened"
    )


def close(con: duckdb.DuckDBPyConnection, path: Path, writing: bool, quiet: bool) -> None:
    """Close ``con``; a write connection is checkpointed first, so that a failing checkpoint
    raises ``StoreError`` (DuckDB's checkpoint at close fails silently). ``quiet``: the caller
    is already failing; errors here are dropped and nothing is checkpointed."""
    err: duckdb.Error | None = None
    if writing and not quiet:
        try:
            con.execute("CHECKPOINT")
        except duckdb.Error as e:  # a fatal one invalidates the instance; the .wal stays
            err = e
    try:
        con.close()
    except duckdb.Error as e:
        err = err or e
    if err is None or quiet:
        return
    advice = "free some space; the next command applies it (do not repeat this one)"
    if store_check.is_full(err):
        big = "file too large" in str(err).lower()
        if big:
            raise store_check.too_large(path, kept(path), "raise the limit; " + advice) from err
        raise store_check.no_space(path, kept(path), advice) from err
    plain = store_check.storage_error(err, path, "checkpoint")
    raise StoreError(f"{plain}; {kept(path)}") from err


def size_is_damage(con: duckdb.DuckDBPyConnection) -> bool:
    """True when DuckDB cannot read every table of the file ``con`` has open (it has applied
    any pending log): only then is a size that cuts a block damage, not a failed checkpoint's
    leftover."""
    try:
        store_check.scan_all(con)
    except duckdb.Error:
        return True
    return False


def recovery_pending(path: Path, writable: bool) -> StoreError | None:
    """The message for a reader without write access facing a log it could not apply, or None
    when there is no log or the reader may write (then the file is what is wrong)."""
    if writable or not os.path.exists(wal_path(path)):
        return None
    return StoreError(
        f"the database {path} has changes in its write-ahead log ({wal_path(path).name}) that "
        "are not yet applied: recovery pending — it is not damaged; open it once with write "
        "access (any write command, e.g. python -m core forget-set create …, or make it and its "
        "folder writable) to apply them"
    )
