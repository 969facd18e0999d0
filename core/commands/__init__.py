"""CLI sub-commands, one module per area; importing them registers them in ``core.cli``."""

from . import linear  # noqa: F401
