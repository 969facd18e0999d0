"""Load the embedded digits dataset in a background thread as soon as the server runs the app,
so that the first page that shows images (the KLoM explorer's drill-down, a forget set's
gallery) does not wait for scikit-learn and the data. Once per process; harmless if unused."""

from __future__ import annotations

import threading

LOADING = "Loading the lab… (a fresh server needs a few seconds for its first page)"
"""What the router shows until a fresh server's first page is drawn."""

_done = threading.Event()
_started = False
_lock = threading.Lock()


def _load() -> None:
    try:
        from core.zoo.data import load_dataset  # imported already by start(): no import race

        load_dataset("digits", "cpu")  # scikit-learn's import and the data: core.zoo.data caches it
    except Exception:  # noqa: BLE001  (a failure shows when the page itself loads the data)
        pass
    finally:
        _done.set()


def start() -> None:
    """Import the engine's data module here, in the caller's thread (torch: every page needs it),
    then load the digits in a thread: only scikit-learn is imported there."""
    global _started
    import core.zoo.data  # noqa: F401

    with _lock:
        if not _started:
            _started = True
            threading.Thread(target=_load, name="lab-warmup", daemon=True).start()


def started() -> bool:
    """Whether ``start`` has run in this process (so the engine is imported already)."""
    return _started


def wait(timeout: float = 60.0) -> None:
    """Block until a started warm-up has finished (returns at once if none was started)."""
    if _started:
        _done.wait(timeout)
