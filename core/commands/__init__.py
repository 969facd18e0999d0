"""CLI sub-commands, one module per area; importing them registers them in ``core.cli``."""

from . import datamodels, klom, linear, unlearn, zoo  # noqa: F401, I001  (order = help order)
from . import audit  # noqa: F401  (after the commands whose runs it audits)
from . import imports, preset  # noqa: F401
from . import collateral  # noqa: F401  (reads stored runs only)
from . import needed  # noqa: F401  (models-needed)
from . import cards  # noqa: F401  (card, reproduce)
