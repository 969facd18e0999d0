"""Errors that reach a user: each carries a message fit to show as is in the UI and the CLI."""


class LabError(Exception):
    """A problem the user can fix (bad input, a busy or corrupt store, a missing dataset).

    The CLI prints ``str(err)`` and exits with status 2; the dashboard shows it in ``st.error``.
    Anything else that escapes is a bug.
    """


class ConfigError(LabError, ValueError):
    """A configuration value is out of range or malformed; nothing has been written."""


class StoreError(LabError):
    """The database cannot be opened or written (locked, corrupt, unwritable)."""


class StoreBusyError(StoreError):
    """The database is held by another process past the wait allowed; retrying may succeed."""


class NotFoundError(LabError, KeyError):
    """An id (run, model set, forget set, job) that is not in the store."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else "not found"


class Diverged(LabError):
    """An unlearning method diverged (non-finite outputs); ``run_id``: its recorded ``diverged`` run."""

    def __init__(self, message: str, run_id: int | None = None):
        super().__init__(message)
        self.run_id = run_id
