"""The command line. Each command validates its input before anything is written.

Errors the user can fix (``LabError``, and storage trouble: a full disk, a damaged or unwritable
file, a value too large for the database) print ``error: <message>`` on stderr and exit with 2.
Anything else is a bug: one line on stderr names the error and the log file that holds its
traceback (``$LAB_LOG``, else ``lab-errors.log`` beside the database), exit status 1.
``--json`` prints one strict JSON object on stdout.

Start-up stays fast: building the parser imports no engine module that loads torch; each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from core.commands.base import COMMANDS, HIDDEN, emit  # noqa: F401  (re-exported)
from core.common.errors import LabError
from core.common.jsonable import plain  # noqa: F401  (re-exported)


def build_parser() -> argparse.ArgumentParser:
    from core import commands  # noqa: F401  (registers the sub-commands)

    parser = argparse.ArgumentParser(prog="python -m core", description="Unlearning Lab engine")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_args, _, help_text) in COMMANDS.items():
        listed = {} if name in HIDDEN else {"help": help_text}  # no help: not in the list
        p = sub.add_parser(name, description=help_text, **listed)
        p.add_argument("--db", help="DuckDB file (default: $LAB_DB or data/lab.duckdb)")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        add_args(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _, fn, _ = COMMANDS[args.command]
    try:
        return int(fn(args) or 0)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; work committed so far is kept", file=sys.stderr)
        return 130
    except Exception as err:  # not a LabError: an environment problem, or a bug
        return _report(err, args)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:300]


def _report(err: Exception, args: argparse.Namespace) -> int:
    """One line for an error that escaped a command; 2 if the user can act on it, else 1."""
    import errno

    import duckdb

    from core.store.check import is_storage_error, storage_error
    from core.store.db import resolve_db_path

    db = resolve_db_path(getattr(args, "db", None))
    if isinstance(err, MemoryError):
        print(f"error: out of memory in {args.command}; try smaller settings", file=sys.stderr)
        return 2
    if isinstance(err, OSError) and err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or _first_line(err)}", file=sys.stderr)
        return 2
    if is_storage_error(err):  # duckdb's IO, corruption and permission errors; a full disk
        path = Path(err.filename) if isinstance(err, OSError) and err.filename else db
        print(f"error: {storage_error(err, path, 'use')}", file=sys.stderr)
        return 2
    if isinstance(err, duckdb.ConversionException | duckdb.OutOfRangeException):
        print(f"error: a value is too large for the database: {_first_line(err)}", file=sys.stderr)
        return 2
    log = _log_traceback(err, db)
    where = f"; the traceback is in {log}" if log else ""
    print(
        f"error: internal error in {args.command} ({type(err).__name__}: {_first_line(err)})"
        f"{where}; please report it",
        file=sys.stderr,
    )
    return 1


def _log_traceback(err: Exception, db) -> str | None:
    """Append the traceback to ``$LAB_LOG``, else ``lab-errors.log`` beside the database, else
    in this user's private folder ``<tmp>/unlearning-lab-<uid>`` (mode 0700, never a shared
    ``/tmp`` file that another user could have placed or could read)."""
    import datetime
    import os
    import traceback

    env = os.environ.get("LAB_LOG")
    text = "".join(traceback.format_exception(err))
    paths = [Path(env)] if env else [db.parent / "lab-errors.log"]
    private = None if env else _private_dir()
    if private is not None:
        paths.append(private / "lab-errors.log")
    for path in paths:
        try:
            # backslashreplace: argv may hold bytes that are not UTF-8 (kept by Python as lone
            # surrogates), which the strict codec refuses; they are written as \udcff escapes
            with open(path, "a", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(f"--- {datetime.datetime.now().isoformat()} {' '.join(sys.argv)}\n{text}")
            return str(path)
        except OSError:
            continue
    sys.stderr.write(text)  # no log could be written: keep the traceback visible
    return None


def _private_dir() -> Path | None:
    """``<tmp>/unlearning-lab-<uid>``, made with mode 0700; None unless it is a real folder of
    this user's that no one else can read or write (not a link someone else left there)."""
    import os
    import stat
    import tempfile

    path = Path(tempfile.gettempdir()) / f"unlearning-lab-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    ok = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077
    return path if ok else None
