"""Start-up time of the command line: median whole-process wall time of a few light commands.

    python bench/cli_startup.py [--runs 5]

Each command runs ``--runs`` times as a fresh ``python -m core`` process against a scratch
database (created by the first run and reused); prints the median and the fastest run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["models"], ["forget-set", "list"], ["jobs"])


def wall_times(argv: list[str], db: Path, runs: int) -> list[float]:
    """Seconds from launch to exit of ``python -m core ARGV`` (``runs`` separate processes)."""
    extra = [] if argv == ["--help"] else ["--db", str(db)]
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "core", *argv, *extra],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="processes per command (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "lab.duckdb"
        subprocess.run(  # create the schema outside the measurement (reads need a database)
            [sys.executable, "-c", f"from core.store.db import Store; Store({str(db)!r}).create()"],
            cwd=ROOT, check=True,
        )  # fmt: skip
        for argv in COMMANDS:
            times = wall_times(argv, db, args.runs)
            name = " ".join(argv)
            print(f"{name:<16} median {statistics.median(times):.3f} s  best {min(times):.3f} s")


if __name__ == "__main__":
    main()
