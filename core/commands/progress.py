"""A tqdm progress bar fed by the engine's ``progress(fraction, message)`` callbacks."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from tqdm import tqdm

Progress = Callable[[float, str], None]  # as core.zoo.build.Progress (not imported: it loads torch)


@contextlib.contextmanager
def bar(desc: str, quiet: bool = False) -> Iterator[Progress]:
    """Yields ``progress(fraction, message)``; draws on stderr (silent when ``quiet``).

    The bar appears at the first report, so input refused before any work prints only the
    error."""
    interactive = sys.stderr.isatty()
    state: dict = {}

    def update(fraction: float, message: str) -> None:
        t = state.get("bar")
        if t is None:
            t = state["bar"] = tqdm(
                total=1000, desc=desc, file=sys.stderr, disable=quiet, leave=True,
                mininterval=0.2 if interactive else 10.0,  # a log file gets a line every 10 s
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
            )  # fmt: skip
        t.set_postfix_str(message[:60], refresh=False)
        t.update(int(1000 * max(0.0, min(1.0, fraction))) - t.n)  # redraws at mininterval

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].close()
