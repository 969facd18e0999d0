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
import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import LabError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable, str]] = {}
HIDDEN: set[str] = set()  # internal commands, left out of --help


def command(name: str, help: str, hidden: bool = False):
    """Register ``fn(args) -> int`` as a sub-command; ``add_args(parser)`` adds its options."""

    def deco(add_args: Callable[[argparse.ArgumentParser], None]):
        def register(fn: Callable) -> Callable:
            COMMANDS[name] = (add_args, fn, help)
            if hidden:
                HIDDEN.add(name)
            return fn

        return register

    return deco


def device_name(value: str) -> str:
    """argparse type of ``--device``: a known device name (whether it is present is checked
    when the command runs, which loads torch)."""
    from .device import DEVICE_CHOICES

    if value.strip().lower().split(":")[0] not in DEVICE_CHOICES:
        raise argparse.ArgumentTypeError(
            f"unknown device {value!r}: choose one of {', '.join(DEVICE_CHOICES)}"
        )
    return value


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """The ``--device`` option shared by the commands that train or score models."""
    p.add_argument(
        "--device", type=device_name, default=None,
        help="auto, cpu, cuda[:N] or mps (default: $LAB_DEVICE, else auto)",
    )  # fmt: skip


def plain(value: Any) -> Any:
    """``value`` made of JSON types only: NaN and ±inf → None, timestamps → ISO 8601 strings,
    NumPy scalars → numbers, arrays, tuples and sets → lists, anything else → its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # NumPy scalars and arrays
        return plain(value.tolist())
    pd = sys.modules.get("pandas")  # loaded whenever a value can be one of its missing markers
    if pd is not None and (value is pd.NaT or value is pd.NA):
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):  # pandas' Timestamp included
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def emit(args: argparse.Namespace, obj: dict, text: str) -> None:
    """Print ``obj`` as strict JSON (see ``plain``) with ``--json``, else the ``text``."""
    print(json.dumps(plain(obj), indent=2, allow_nan=False) if args.json else text)


def table(rows: list[dict], columns: Sequence[str]) -> str:
    """A plain fixed-width text table."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([line(list(columns)), line(["-" * w for w in widths]), *map(line, cells)])


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"
    return str(v)


def build_parser() -> argparse.ArgumentParser:
    from . import commands  # noqa: F401  (registers the sub-commands)

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

    from .store import resolve_db_path
    from .store_check import is_storage_error, storage_error

    db = resolve_db_path(getattr(args, "db", None))
    if isinstance(err, MemoryError):
        print(f"error: out of memory in {args.command}; try smaller settings", file=sys.stderr)
        return 2
    if isinstance(err, OSError) and err.errno not in (errno.ENOSPC, errno.EDQUOT):
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
    """Append the traceback to ``$LAB_LOG`` or ``lab-errors.log`` beside the database."""
    import datetime
    import os
    import tempfile
    import traceback

    env = os.environ.get("LAB_LOG")
    folder = db.parent if db.parent.is_dir() else Path(tempfile.gettempdir())
    text = "".join(traceback.format_exception(err))
    for path in (
        [Path(env)]
        if env
        else [folder / "lab-errors.log", Path(tempfile.gettempdir()) / "lab-errors.log"]
    ):
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"--- {datetime.datetime.now().isoformat()} {' '.join(sys.argv)}\n{text}")
            return str(path)
        except OSError:
            continue
    sys.stderr.write(text)  # no log could be written: keep the traceback visible
    return None
