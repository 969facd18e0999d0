"""Checks on a database file around DuckDB's open, and plain messages for storage failures.

A DuckDB file starts with three 4 KiB headers: the main header (``DUCK`` at byte 8) and two
database headers, each led by an 8-byte checksum; the blocks follow from byte 12 288, each
``block_alloc_size`` bytes (256 KiB by default) led by its own checksum. Before DuckDB sees a
file, ``read_header(strict=False)`` recognises it by its magic bytes and main header (so a
SQLite, text or empty file is never handed to DuckDB, which would try to load an extension or
write into it). Once DuckDB holds its lock (nobody else is writing), ``read_header`` checks both
database headers and refuses a size that cuts a known block (a truncated copy), and
``damaged_blocks`` recomputes every block's checksum with NumPy (DuckDB's multiply-xor sum):
under a millisecond for a 5 MB lab, about 30 ms for 110 MB (``bench/store_check.py``). The
store refuses to write into a file with a failing block; a failing block may be unused space,
so reads go on if DuckDB can still read every table (``scan_all``).

Every read of the file here goes through ``descriptor``: one descriptor per file, kept open,
because closing any descriptor of a file drops DuckDB's POSIX lock on it for the whole process.

``storage_error`` turns DuckDB and OS errors about the file (corruption, disk full,
permissions, another process's lock) into one ``StoreError`` naming the file.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import os
import re
import shutil
import struct
import threading
from pathlib import Path

import numpy as np

from core.common.errors import StoreBusyError, StoreError

MAGIC, MAGIC_OFFSET = b"DUCK", 8
HEADER_SIZE = 4096
BLOCKS_START = 3 * HEADER_SIZE
DEFAULT_BLOCK_SIZE = 262_144
_SEED, _MUL = np.uint64(5381), np.uint64(0xBF58476D1CE4E5B9)
# "lock" as a word, as in DuckDB's "Could not set lock on file" and "Conflicting lock" (the
# "in block at location" of a corrupt file's message is not one)
LOCK_WORD = re.compile(r"\block\b")
_BATCH_BYTES = 16 * 1024 * 1024  # blocks are checked in batches of about this many bytes

_CORRUPT = ("corrupt database file", "checksum", "not a valid duckdb")
_NO_SPACE = ("no space left", "disk full", "disk quota")
_TOO_LARGE = ("file too large",)  # EFBIG: the file-size limit (ulimit -f) or the filesystem's
_DENIED = ("permission denied", "read-only file system", "read only file system")


@dataclasses.dataclass(frozen=True)
class FileHeader:
    """What the headers say: bytes per block and the active header's block count."""

    size: int
    block_size: int
    block_count: int
    plain: bool  # no feature flags (no encryption): block checksums can be verified here


def _checksum(words: np.ndarray) -> np.ndarray:
    """DuckDB's checksum of each row of ``words`` ``(n, k)`` uint64 → ``(n,)`` uint64."""
    return _SEED ^ np.bitwise_xor.reduce(words * _MUL, axis=1)


def _header_ok(buf: bytes) -> bool:
    words = np.frombuffer(buf[8:], dtype="<u8").reshape(1, -1)
    return int(_checksum(words)[0]) == struct.unpack_from("<Q", buf)[0]


class CutFile(StoreError):
    """A size that cuts a block the header knows: a truncated copy, or the leftover of a failed
    checkpoint; the store asks DuckDB which (``store_wal.size_is_damage``)."""


def damaged(path: Path, why: str) -> StoreError:
    """The one message for a damaged database file."""
    return StoreError(
        f"the database {path} is damaged ({why}); it was left untouched — restore it from a "
        "backup, or point --db / LAB_DB at another file"
    )


_HANDLES: collections.OrderedDict[str, tuple[int, tuple[int, int]]] = collections.OrderedDict()
_HANDLES_LOCK = threading.Lock()
MAX_HANDLES = 256  # database files kept open at once (least recently used closed first)


def descriptor(path: Path) -> int:
    """A read-only descriptor of the database file at ``path``, kept open, never closed while
    the file is in use.

    DuckDB locks its file with a POSIX record lock, and the kernel drops such locks for the
    whole process the moment *any* descriptor of the file is closed in it: checking the file
    with ``open()`` … ``close()`` while a connection is open (in this thread or another) let a
    second process open it for writing at the same time ("Could not read enough bytes", or
    worse). So the checks read through this one descriptor per file; it is replaced only
    when the path names another file (an old file's lock is not this one's).
    """
    key = os.path.abspath(path)
    st = os.stat(key)
    with _HANDLES_LOCK:
        held = _HANDLES.get(key)
        if held and held[1] == (st.st_dev, st.st_ino):
            _HANDLES.move_to_end(key)
            return held[0]
        fd = os.open(key, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        fst = os.fstat(fd)
        if held:
            os.close(held[0])
        _HANDLES[key] = (fd, (fst.st_dev, fst.st_ino))
        while len(_HANDLES) > MAX_HANDLES:
            os.close(_HANDLES.popitem(last=False)[1][0])
        return fd


def close_descriptors(folder: Path | None = None) -> None:
    """Close the kept descriptors (of files under ``folder``, or all): for a caller done with
    those databases, e.g. before unmounting their disk (an open descriptor keeps it busy)."""
    root = None if folder is None else os.path.abspath(folder) + os.sep
    with _HANDLES_LOCK:
        for key in [k for k in _HANDLES if root is None or k.startswith(root)]:
            os.close(_HANDLES.pop(key)[0])


def _read_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from byte ``offset`` of ``fd`` (fewer bytes at the end of the file)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    with _HANDLES_LOCK:  # Windows: no positional reads; the offset is shared
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


def read_header(path: Path, strict: bool = True) -> FileHeader:
    """Check that ``path`` is a whole DuckDB file by its headers; ``StoreError`` otherwise.

    ``strict=False`` (before DuckDB's lock is held, while another process may be rewriting a
    database header): the magic bytes, the main header and one valid database header only.
    ``strict``: both database headers, and a size that does not cut a block the header knows
    (a partial block past them is the unfinished growth of a write that failed, e.g. a full
    disk: DuckDB ignores and later overwrites it).
    """
    try:
        fd = descriptor(path)
        buf = bytearray(BLOCKS_START)
        head = bytes(buf[: _read_into(fd, memoryview(buf), 0)])
        size = os.fstat(fd).st_size
    except OSError as err:
        raise storage_error(err, path) from err
    if size == 0:
        raise StoreError(
            f"{path} is an empty file (0 bytes), not a DuckDB database; delete it to start a "
            "new lab there, or point --db / LAB_DB at another file"
        )
    if head[MAGIC_OFFSET : MAGIC_OFFSET + 4] != MAGIC:
        sqlite = head.startswith(b"SQLite format 3\x00")
        what = "it is a SQLite database" if sqlite else "it lacks DuckDB's header"
        raise StoreError(
            f"{path} is not a DuckDB database ({what}); it was left untouched — "
            "point --db / LAB_DB at a lab database, or at a new file name to start one"
        )
    if len(head) < BLOCKS_START:
        raise damaged(path, f"only {size} bytes: it ends inside its headers")
    headers = [head[i * HEADER_SIZE : (i + 1) * HEADER_SIZE] for i in range(3)]
    valid = [_header_ok(h) for h in headers]
    if not valid[0] or not any(valid[1:]) or (strict and not all(valid)):
        raise damaged(path, "a header fails its checksum")
    flags = struct.unpack_from("<4Q", head, MAGIC_OFFSET + 12)
    # the database headers: checksum, iteration, meta block, free list, block count, block size
    usable = [h for h, ok in zip(headers[1:], valid[1:], strict=True) if ok]
    fields = [struct.unpack_from("<5Q", h, 8) for h in usable]
    _, _, _, block_count, block_size = max(fields)
    block_size = block_size or DEFAULT_BLOCK_SIZE
    if block_size % 8 or block_size < HEADER_SIZE:
        raise damaged(path, f"its header gives an impossible block size of {block_size} bytes")
    known_end = BLOCKS_START + block_count * block_size
    if strict and (size - BLOCKS_START) % block_size and size < known_end:
        why = f"its size, {size} bytes, is not a whole number of {block_size // 1024} KiB blocks"
        raise CutFile(damaged(path, why + ": it was probably truncated").args[0])
    return FileHeader(size, block_size, int(block_count), plain=not any(flags))


def damaged_blocks(path: Path, header: FileHeader) -> list[int]:
    """Indices of the blocks whose stored checksum does not match their bytes.

    Reads the file once in batches of about 16 MiB (bounded memory); linear in its size;
    through ``descriptor`` (no descriptor of the file is closed: DuckDB's lock stays).
    """
    if not header.plain:
        return []  # encrypted or otherwise flagged files: leave the checks to DuckDB
    bs = header.block_size
    per_batch = max(1, _BATCH_BYTES // bs)
    buf = np.empty(per_batch * bs // 8, dtype="<u8")  # reused: one batch in memory at a time
    bad: list[int] = []
    fd, offset, first = descriptor(path), BLOCKS_START, 0
    while n := _read_into(fd, memoryview(buf).cast("B"), offset) // bs:
        offset += n * bs
        words = buf[: n * bs // 8].reshape(n, bs // 8)
        stored = words[:, 0].copy()
        np.multiply(words, _MUL, out=words)
        sums = _SEED ^ np.bitwise_xor.reduce(words[:, 1:], axis=1)
        bad.extend(first + int(i) for i in np.flatnonzero(sums != stored))
        first += n
    return bad


def scan_all(con) -> None:
    """Read every column of every table through DuckDB (it verifies each block it reads)."""
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
        "current_database()"
    ).fetchall()
    for schema, table in tables:
        q = ".".join('"' + name.replace('"', '""') + '"' for name in (schema, table))
        con.execute(f"SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM {q}").fetchall()


def is_storage_error(err: BaseException) -> bool:
    """True for errors about the file or its disk (not for SQL or data mistakes)."""
    if isinstance(err, OSError):
        return True
    msg = str(err).lower()
    name = type(err).__name__
    return (
        name in ("IOException", "PermissionException", "FatalException")
        or any(s in msg for s in (*_CORRUPT, *_NO_SPACE, *_TOO_LARGE, *_DENIED, "invalidated"))
        or (LOCK_WORD.search(msg) is not None and "conflict" in msg)
    )


def no_space(
    path: Path, what: str = "nothing was stored", advice: str = "free some space and retry"
) -> StoreError:
    """The one message for a full disk."""
    try:
        free = shutil.disk_usage(path if path.exists() else path.parent).free
        left = f" ({free / 1e6:.0f} MB free)"
    except OSError:
        left = ""
    limit = _size_limit()
    if limit is not None:  # torch reports a refused write without its errno: it may be this
        left += f" (or the file-size limit: files of at most {limit} bytes, ulimit -f)"
    return StoreError(f"no space left on the disk holding {path}{left}; {what} — {advice}")


def _size_limit() -> int | None:
    """This process's file-size limit in bytes (``ulimit -f``), or None when unlimited."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def too_large(
    path: Path,
    what: str = "nothing was stored",
    advice: str = "raise the limit, or move the lab to another disk (--db / LAB_DB), and retry",
) -> StoreError:
    """The one message for a file that reached the largest size allowed (EFBIG)."""
    limit = _size_limit()
    why = (
        f"this process may write files of at most {limit} bytes (ulimit -f)"
        if limit is not None
        else "the filesystem allows no larger file (4 GB on FAT32)"
    )
    return StoreError(
        f"cannot write {path}: it reached the largest file size allowed — {why}; {what} — {advice}"
    )


def is_full(err: BaseException) -> bool:
    """A write refused for lack of room: a full disk or quota (ENOSPC, EDQUOT) or the
    file-size limit (EFBIG)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    return any(s in str(err).lower() for s in (*_NO_SPACE, *_TOO_LARGE))


def storage_error(err: BaseException, path: Path, action: str = "open") -> StoreError:
    """One ``StoreError`` naming ``path`` for an OS or DuckDB error about the file."""
    msg = str(err)
    low = msg.lower()
    if (isinstance(err, OSError) and err.errno == errno.EFBIG) or any(s in low for s in _TOO_LARGE):
        return too_large(path)
    if (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or any(
        s in low for s in _NO_SPACE
    ):
        return no_space(path)
    if LOCK_WORD.search(low) and ("conflict" in low or "could not set lock" in low):
        pid = re.search(r"PID (\d+)", msg)
        who = f" (process {pid.group(1)})" if pid else ""
        return StoreBusyError(
            f"the database {path} is in use by another process{who}; "
            "wait for it to finish or stop it (e.g. close the dashboard's running job), then retry"
        )
    if "not a valid duckdb" in low:
        return StoreError(f"{path} is not a DuckDB database; it was left untouched")
    if any(s in low for s in _CORRUPT):
        at = re.search(r"block at location (\d+)", msg)
        part = "a header" if at and int(at.group(1)) < BLOCKS_START else "the block"
        why = f"{part} at byte {at.group(1)} fails its checksum" if at else _first(msg)
        return damaged(path, why)
    if "trying to read a database file with version number" in low:
        return StoreError(
            f"the database {path} was written by an incompatible DuckDB version; "
            "open it with the DuckDB version that wrote it and export it"
        )
    if (isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)) or any(
        s in low for s in _DENIED
    ):
        return StoreError(
            f"cannot {action} the database {path}: it (or its folder) is not writable; "
            "make it writable or use another --db"
        )
    return StoreError(f"cannot {action} the database {path}: {_first(msg) or type(err).__name__}")


def _first(msg: str) -> str:
    """The first line of a DuckDB message without its ``Kind Error:`` prefix."""
    line = (msg.strip().splitlines() or [""])[0]
    return re.sub(r"^[A-Za-z ]*Error: ", "", line)[:200]
