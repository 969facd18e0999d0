"""How many subset models a readable datamodel needs, and how to word a datamodel's LDS.

Pure Python (no NumPy): the command line reads ``DEFAULT_MODELS`` for its ``--help`` and the
dashboard for its forms. Figures are measured on digits with the default recipe by
``nice python bench/datamodel_models.py`` (docs/results.md, Datamodels).
"""

from __future__ import annotations

import math

KINDS = ("ridge", "lasso")  # the regressions a datamodel fit offers
TARGETS = ("margin", "logits")  # what a datamodel predicts

# How many subset models a readable datamodel needs, measured on digits with the default recipe
# (``nice python bench/datamodel_models.py``; docs/results.md, Datamodels): the first M whose held-out LDS
# (val targets) reached ``WEAK_LDS`` in every draw measured. The CLI, the ``datamodel`` job and
# the Attribution page all default to it.
DEFAULT_MODELS = 1000
DIGITS_TRAIN = 1347  # digits' train points, where DEFAULT_MODELS was measured
WEAK_LDS = 0.5  # below this held-out LDS a datamodel's influencers are mostly noise
# The bench's figures, one subset set of 3,000 models (seed 200000), each M on its first M:
# M → LDS val of the stored fit (over 3 disjoint draws of M models: 200: 0.22–0.26, 500:
# 0.37–0.40, 750: 0.47–0.48, 1,000: 0.53–0.54). Seconds at M = 1,000 on 2 CPU cores shared
# with other work (load ≈ 7): training 437 s (per 100 models: 43.7), fit 26 s (margin) and
# 33 s (logits); on an idle machine training is several times faster (docs/results.md: 2,000 in 127 s).
MEASURED_LDS = {200: 0.25, 500: 0.37, 750: 0.48, 1000: 0.53, 2000: 0.68}
MEASURED_SECONDS = {"train_per_100": 43.7, "fit_margin": 26.0, "fit_logits": 33.0}


def models_needed(n_train: int) -> int:
    """Subset models for a readable datamodel: ``DEFAULT_MODELS`` (measured on digits, 1,347
    train points); for a larger train set at least one model per train point (each target's
    fit has ``n_train`` weights) — not measured."""
    return DEFAULT_MODELS if n_train <= DIGITS_TRAIN else max(DEFAULT_MODELS, n_train)


def few_models_note(n_models: int, n_train: int) -> str | None:
    """A sentence when ``n_models`` subset models are fewer than ``models_needed(n_train)``,
    quoting the measured LDS against M on digits; None when they are enough."""
    if n_models >= models_needed(n_train):
        return None
    lds = ", ".join(f"{v:.2f} at M = {m:,}" for m, v in sorted(MEASURED_LDS.items()))
    more = (f"; this train set has {n_train:,} points against digits' {DIGITS_TRAIN:,}, so it "
            "needs more" if n_train > DIGITS_TRAIN else "")  # fmt: skip
    return (f"{n_models:,} subset models are few for a readable datamodel: on digits (default "
            f"recipe) the held-out LDS was {lds}, and first reached {WEAK_LDS} at M = "
            f"{DEFAULT_MODELS:,} (measured){more}")  # fmt: skip


def is_weak(lds: float | None) -> bool:
    """A held-out LDS below ``WEAK_LDS`` (or none: no target had a defined score)."""
    return lds is None or not math.isfinite(lds) or lds < WEAK_LDS


def lds_note(lds: float | None) -> str:
    """``datamodel LDS 0.19 (weak)`` / ``datamodel LDS 0.68``: the held-out LDS (val targets)
    to show beside anything read from a datamodel."""
    value = "n/a" if lds is None or not math.isfinite(lds) else f"{lds:.2f}"
    return f"datamodel LDS {value}" + (" (weak)" if is_weak(lds) else "")


def check_fit_settings(kind: str, target: str, n_models: int, fraction: float,
                       holdout: float) -> None:  # fmt: skip
    """A datamodel fit's settings, refused with a ``ConfigError`` that names the bad one before
    anything heavy is imported, opened or trained (the CLI calls it first)."""
    from core.common.config import check_float, check_int
    from core.common.errors import ConfigError

    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if target not in TARGETS:
        raise ConfigError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if kind == "lasso" and target != "margin":
        raise ConfigError("the ℓ1 (lasso) fit is for margins; fit logits with --kind ridge")
    check_int("models", n_models, 20, 100_000)
    check_float("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    check_float("holdout", holdout, 0.0, 0.5, lo_open=True)
