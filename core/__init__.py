"""Unlearning Lab engine: datasets, model zoos, unlearning methods, KLoM and the store.

Its packages, bottom to top; a package imports only those below it, never one above, and none
imports streamlit (tests/test_architecture.py):

- ``common``: errors, checks of user values, device, threads, SGD, ``.npy`` headers
- ``store``: the DuckDB store, its schema, array files and integrity
- ``zoo``: datasets, architectures, recipes, margins, ensembles, model sets
- ``attribution``: datamodels (subset models, ridge / ℓ1 fits, LDS, stored weights)
- ``forget``: forget sets of every kind, stored; oracle and noise-floor groups
- ``unlearning``: the methods, registered in one place (``unlearning.base``)
- ``evaluation``: KLoM per point, runs, audits, compare, collateral forgetting, models needed,
  cards and reproduce
- ``interchange``: imports of margins and of EasyDUB's files, and the export
- ``presets``: the demo and the CIFAR-10 preset
- ``linear``: the linear-model study
- ``jobs``: background jobs, chains, prerequisites and sweeps
- ``commands``: the CLI's sub-commands

Entry points: ``cli`` (the parser and ``main``) and ``__main__`` (``python -m core``).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.cache
def code_version() -> str:
    """The version stored with every result: package version plus the git commit when known."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__
