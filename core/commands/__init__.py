"""The CLI's sub-commands, one module per area; importing them registers them in ``core.cli``.

- ``base``: the registry (``COMMANDS``), shared flags, ``emit`` (text or strict JSON), tables
- ``progress``: progress lines on stderr
- ``zoo`` (train, models), ``klom`` (forget-set, oracles, evaluate, demo, jobs), ``unlearn``,
  ``datamodels``, ``audit``, ``linear``, ``imports`` (import-margins, import-forget-set,
  import-easydub, export-easydub), ``preset``, ``collateral``, ``needed`` (models-needed),
  ``cards`` (card, reproduce)

The top of the engine: may use every package; never imports streamlit.
"""

from core.commands import datamodels, klom, linear, unlearn, zoo  # noqa: F401, I001  (order = help order)
from core.commands import audit  # noqa: F401  (after the commands whose runs it audits)
from core.commands import imports, preset  # noqa: F401
from core.commands import collateral  # noqa: F401  (reads stored runs only)
from core.commands import needed  # noqa: F401  (models-needed)
from core.commands import cards  # noqa: F401  (card, reproduce)
