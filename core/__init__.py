"""Unlearning Lab engine: datasets, model zoos, unlearning methods, KLoM and the store.

The engine never imports streamlit; the dashboard and the CLI are thin layers over it, and no
two of its modules import each other (tests/test_repo.py). Its modules by role:

- data and models: ``data`` (digits, CIFAR-10), ``models`` (MLP, CNN, ResNet-9 stacked as one
  ensemble), ``recipe`` (training config and recipe identity), ``ensemble`` (training N models
  at once on a fixed schedule), ``sgd`` (its optimizer step), ``augment`` (flip and shift on
  the device, per model), ``device``, ``threads``
- model zoo: ``zoo`` (build, resume, commit sets of models), ``model_sets`` (read and delete them),
  ``imports`` (ensembles trained elsewhere, imported as margins without weights),
  ``easydub`` (EasyDUB's dataset directory, the seed paper's CIFAR-10 setting, as one import
  batch; ``easydub_weights``: its checkpoints in the stacked ensemble;
  ``easydub_export``: the lab's models and runs written in that layout), ``tasks`` (a chunk
  of models as a pure task: spec in, arrays out, no store), ``executors`` (where tasks run:
  here, or as Ray tasks on a cluster; the driver alone writes)
- sweeps: ``sweeps`` (an unlearning grid here, or each point as a Ray task stored here as it
  arrives), ``sweep_tasks`` (one grid point as a pure task on a store-free context)
- forget sets: ``forget_sets`` (how points are chosen), ``forget_uploads`` (uploaded lists),
  ``forget_store`` (stored forget sets), ``npy_check`` (a ``.npy`` header against its size)
- evaluation: ``oracles`` (oracle and noise-floor groups, pairing of one recipe), ``metrics``
  (margins, KLoM, summaries), ``evaluation`` (run a method and score it point by point),
  ``divergence`` (diverged runs), ``compare`` (runs of a forget set, Pareto fronts, per point),
  ``collateral`` (retain / val KLoM by decile of proximity to the forget set),
  ``models_needed`` (KLoM's P95 and its floor against the number of models per side),
  ``audit_math`` (membership audits: U-LiRA, population MIA) and ``audits`` (stored audits)
- unlearning methods: the ``unlearning`` package (interface and registry in ``base``)
- datamodels: the ``attribution`` package (subset models, ridge / ℓ1 fits and LDS, stored
  datamodels and their readers, forget sets from datamodels)
- reproducibility: ``cards`` (a run's or a model set's card: dataset hash, recipe, seeds,
  forget set, masks, code, method, costs, device, figures; JSON and Markdown),
  ``reproduce`` (rebuild a card in a fresh lab and compare), ``card_checks`` (a card's shape,
  and the tolerances of the comparison)
- the linear study: ``linear`` (the math), ``linear_runs`` (stored runs)
- the store: ``store`` (DuckDB), ``schema`` (migrations), ``store_files`` (array files),
  ``store_check`` (integrity, disk space), ``store_wal`` (failed checkpoints, pending logs)
- background work: ``jobs`` (queue, worker), ``job_registry``, ``job_kinds``, ``workers``,
  ``job_chain`` (jobs that wait for others), ``prerequisites`` (what an evaluation needs built
  first: oracles, a datamodel); ``build_claims`` (one builder per model set)
- entry points: ``cli`` with the ``commands`` package, ``demo``, ``presets`` (cifar10, with a
  measured cost estimate); shared: ``config`` (checks of
  user values), ``errors`` (the errors a user sees)
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
