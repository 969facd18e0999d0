"""What every sub-command shares: the registry (``@command``), ``--device``, the executor
options, and output as strict JSON (``--json``) or a plain text table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

from core.common.jsonable import plain  # noqa: F401  (re-exported)

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
    from core.common.device import DEVICE_CHOICES

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


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--executor``, ``--address`` and ``--gpus-per-task``: where model-set chunks train (or
    a sweep's grid points run)."""
    p.add_argument(
        "--executor", choices=("local", "ray"), default="local",
        help="local: run the chunks (or grid points) here, one after another (default); ray: as "
        "Ray tasks, all at once (pip install -r requirements-ray.txt)",
    )  # fmt: skip
    p.add_argument(
        "--address", default=None,
        help="ray: the cluster's head node HOST:PORT (its GCS port, 6379 by default), or auto "
        "(the cluster this machine joined); default: start Ray here",
    )  # fmt: skip
    p.add_argument(
        "--gpus-per-task", type=float, default=None, dest="gpus_per_task",
        help="ray: GPUs per task (1, or a fraction such as 0.25 to share one; default 0)",
    )  # fmt: skip


def executor_from_args(args: argparse.Namespace):
    """The ``core.zoo.executors.Executor`` the executor options ask for (use it in ``with``)."""
    from core.zoo.executors import make_executor  # light: Ray is imported only when it is used

    return make_executor(args.executor, args.address, args.gpus_per_task)


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
