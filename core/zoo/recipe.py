"""Training recipes: how every model of an ensemble is trained, and random subset masks.

One frozen dataclass of defaults per recipe (saved as JSON with every model set), the
learning-rate schedule, the recipe's identity, and the masks of subset models.

The schedule is fixed per recipe, independent of the size of a model's training set: every
model takes ``total_steps = epochs × ⌊n_train / batch_size⌋`` optimizer steps, where
``n_train`` is the size of the dataset's whole train split. Each model draws its batches from
a continuous stream of its own permutations of its training points (``core.zoo.ensemble``), so an
oracle differs from an original only in its data and seed, and within a model no point is
seen more than once more often than another. Originals, oracles, the noise-floor group and
subset models all take the same number of steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np

from core.common.config import Config, check_float, check_int
from core.common.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """How every model of an ensemble is trained (SGD, Nesterov, warm-up then linear decay)."""

    dataset: str = "digits"
    arch: str = "mlp"
    epochs: int = 30
    batch_size: int = 64  # examples per model per step
    lr: float = 0.05  # peak learning rate, per-model mean loss
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # coupled (added to the gradient), on every parameter
    warmup: float = 0.1  # fraction of steps with lr rising linearly 0 → lr, then linear → 0
    label_smoothing: float = 0.0
    mixed_precision: bool = True  # bf16 autocast, used only on CUDA (and not by the MLP path)
    eval_chunk: int = 2048  # points per evaluation chunk
    model_chunk: int = 256  # models trained together in one stacked computation
    fast_path: bool = True  # hand-written MLP forward/backward (mlp only)
    # "stream": fixed steps, batches from a continuous stream of permutations (the only one
    # that trains); "epoch": the per-epoch schedule of sets stored before it (read-only)
    schedule: str = "stream"
    # augmentation on the device (``core.zoo.augment``), per model and example, from the model's
    # generator: random mirror and a shift of up to ``translate`` px in a padding of that width
    augment: bool = False
    translate: int = 2  # pixels
    augment_pad: str = "reflect"  # reflect | zeros

    # fields that change no trained weight: left out of the recipe identity
    _NOT_RECIPE = ("eval_chunk", "model_chunk", "fast_path")
    # fields added after sets were stored, with the value those sets were trained with: they
    # enter the recipe identity only when they differ from it, so stored sets keep their ids
    _ADDED = {"augment": False, "translate": 2, "augment_pad": "reflect"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """As ``Config.from_dict``; a stored config without ``schedule`` predates the fixed
        schedule and is read as ``"epoch"`` (so it never pairs with a new set)."""
        data = dict(data)
        data.setdefault("schedule", "epoch")
        return super().from_dict(data)

    def total_steps(self, n_train: int) -> int:
        """Optimizer steps of every model of this recipe: ``epochs × ⌊n_train / batch_size⌋``.

        ``n_train`` is the size of the dataset's whole train split (not of a model's mask).
        """
        per_epoch = n_train // self.batch_size
        if per_epoch < 1:
            raise ConfigError(
                f"batch_size {self.batch_size} is larger than the train split ({n_train} points)"
            )
        return self.epochs * per_epoch

    def recipe_id(self) -> str:
        """A short stable id of everything that shapes the trained weights (sha-256 of the
        canonical JSON of the config without the chunking fields, and without the fields of
        ``_ADDED`` that hold the value sets stored before them were trained with)."""
        d = {
            k: v
            for k, v in self.to_dict().items()
            if k not in self._NOT_RECIPE and not (k in self._ADDED and v == self._ADDED[k])
        }
        return "r-" + hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One line for messages: dataset, architecture, schedule and optimizer."""
        sched = "fixed steps" if self.schedule == "stream" else "old per-epoch schedule"
        aug = f", flip + shift ±{self.translate} px ({self.augment_pad})" if self.augment else ""
        return (
            f"{self.dataset}/{self.arch}, {self.epochs} epochs of batch {self.batch_size} "
            f"({sched}), lr {self.lr:g}, wd {self.weight_decay:g}, smoothing "
            f"{self.label_smoothing:g}{aug}"
        )

    def validate(self) -> None:
        from core.zoo.data import check_dataset  # here: keeps this module light to import
        from core.zoo.models import check_arch

        check_dataset(self.dataset)
        check_arch(self.arch)
        check_int("epochs", self.epochs, 1, 10_000)
        check_int("batch_size", self.batch_size, 1, 1_000_000)
        check_float("lr", self.lr, 0.0, 100.0, lo_open=True)
        check_float("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        check_float("warmup", self.warmup, 0.0, 1.0, hi_open=True)
        check_float("label_smoothing", self.label_smoothing, 0.0, 1.0, hi_open=True)
        check_int("eval_chunk", self.eval_chunk, 1)
        check_int("model_chunk", self.model_chunk, 1)
        if self.schedule not in ("stream", "epoch"):
            raise ConfigError(f"unknown schedule {self.schedule!r}: 'stream' (or legacy 'epoch')")
        if not isinstance(self.augment, bool):
            raise ConfigError(f"augment must be true or false, got {self.augment!r}")
        check_int("translate", self.translate, 0, 8)
        if self.augment_pad not in ("reflect", "zeros"):
            raise ConfigError(f"unknown augment_pad {self.augment_pad!r}: 'reflect' or 'zeros'")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov momentum needs momentum > 0")


def default_train_config(dataset: str, arch: str | None = None) -> TrainConfig:
    """Defaults per dataset: digits → MLP (30 epochs, batch 64); cifar10 → ResNet-9 (airbench-like:
    20 epochs of batch 512, peak lr 0.4 after 20% warm-up then linear to 0, flip + ±2 px shift)."""
    from core.zoo.data import check_dataset
    from core.zoo.models import check_arch

    check_dataset(dataset)
    if dataset == "cifar10":
        cfg = TrainConfig(
            dataset="cifar10", arch="resnet9", epochs=20, batch_size=512, lr=0.4,
            weight_decay=5e-4, warmup=0.2, label_smoothing=0.2, eval_chunk=1024, model_chunk=8,
            augment=True,
        )  # fmt: skip
    else:
        cfg = TrainConfig(dataset=dataset)
    if arch is not None:
        check_arch(arch)
        cfg = cfg.replace(arch=arch)
    return cfg


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """lr for 0-based ``step`` of ``total``: ``lr·(t+1)/W`` for t < W, then ``lr·(T−t)/(T−W)``."""
    warm = int(round(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * (total - step) / (total - warm)


def random_subset_masks(n_models: int, n_train: int, fraction: float, seed: int) -> np.ndarray:
    """``(n_models, n_train)`` bool masks, each with exactly ``round(fraction·n_train)`` True."""
    check_int("number of models", n_models, 1)
    check_int("n_train", n_train, 1)
    check_float("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    k = int(round(fraction * n_train))
    if k < 1:
        raise ConfigError(f"fraction {fraction} of {n_train} points selects no point")
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_models, n_train), dtype=bool)
    for i in range(n_models):
        masks[i, rng.choice(n_train, size=k, replace=False)] = True
    return masks
