"""CLI sub-commands, one module per area; importing them registers them in ``core.cli``."""

from . import datamodels, klom, linear, unlearn, zoo  # noqa: F401  (order = help order)
