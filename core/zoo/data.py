"""Datasets by name, each held whole as tensors on the device (airbench style).

A subset of the training set is a boolean mask over ``x_train``, never a new loader.

- ``digits``: scikit-learn's 8×8 handwritten digits (1,797 images, embedded, no download),
  a fixed stratified 75/25 split with seed 0 → 1,347 train / 450 val. Inputs are pixel/16,
  then standardized with the train set's mean and std (one scalar each).
- ``cifar10``: torchvision's CIFAR-10 (50,000 / 10,000), per-channel standardized. Read from
  ``root``, else ``$LAB_DATA_ROOT``, else ``data/datasets``; downloaded only when asked.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.common.errors import ConfigError, LabError

DEFAULT_ROOT = Path("data/datasets")
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # per channel, of the 50,000 train images in [0, 1]
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclasses.dataclass(eq=False)
class Dataset:
    """A whole dataset on one device. ``x_*``: ``(n, C, H, W)`` float32; ``y_*``: ``(n,)`` int64.

    ``raw_*`` keep the original uint8 pixels (``(n, H, W)`` or ``(n, H, W, 3)``) for display.
    """

    name: str
    x_train: Tensor  # (n_train, C, H, W) float32, standardized
    y_train: Tensor  # (n_train,) int64
    x_val: Tensor  # (n_val, C, H, W)
    y_val: Tensor  # (n_val,)
    class_names: list[str]
    raw_train: np.ndarray = dataclasses.field(repr=False)  # (n_train, H, W[, 3]) uint8
    raw_val: np.ndarray = dataclasses.field(repr=False)  # (n_val, H, W[, 3]) uint8

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.x_val.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def all_points(self) -> tuple[Tensor, Tensor]:
        """Train then val points as one batch, in the global point order:
        ``x (n_train + n_val, ...)``, ``y (n_train + n_val,)``."""
        return torch.cat([self.x_train, self.x_val]), torch.cat([self.y_train, self.y_val])

    def split(self, split: str) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of ``"train"`` or ``"val"``."""
        if split == "train":
            return self.x_train, self.y_train
        if split == "val":
            return self.x_val, self.y_val
        raise ConfigError(f"unknown split {split!r}: choose 'train' or 'val'")

    def image(self, split: str, index: int) -> np.ndarray:
        """The original pixels of one point as uint8, ``(H, W)`` or ``(H, W, 3)``, for display."""
        if split not in ("train", "val"):
            raise ConfigError(f"unknown split {split!r}: choose 'train' or 'val'")
        raw = self.raw_train if split == "train" else self.raw_val
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ConfigError(f"index must be a whole number, got {index!r}")
        if not 0 <= index < len(raw):
            raise ConfigError(f"index {index} is out of range for {split} (0..{len(raw) - 1})")
        return raw[int(index)].copy()

    def meta(self) -> dict[str, object]:
        """What a stored result needs to know about the data it was computed on."""
        return {
            "dataset": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "n_train": self.n_train,
            "n_val": self.n_val,
        }


DIGITS_SPLIT = Path(__file__).resolve().parent.parent / "assets" / "digits_split.npy"


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, ``images (1797, 8, 8)`` float64 in 0..16 and ``target (1797,)``,
    read from the CSV that scikit-learn ships without importing scikit-learn (over a second
    of start-up); ``sklearn.datasets.load_digits`` where that file is not found."""
    spec = importlib.util.find_spec("sklearn")  # locates the package, imports nothing
    for folder in (spec.submodule_search_locations or []) if spec else []:
        csv = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",")  # (1797, 65): 64 pixels, then the label
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int64)


def _load_digits(device: torch.device, root: Path | None, download: bool) -> Dataset:
    images, y = digits_arrays()
    x = images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    # the fixed stratified 75/25 split: sklearn's train_test_split(test_size=0.25,
    # stratify=y, random_state=0), stored once (tests/zoo/test_data.py recomputes it)
    order = np.load(DIGITS_SPLIT, allow_pickle=False).astype(np.int64)
    idx_tr, idx_va = order[:1347], order[1347:]
    mean, std = float(x[idx_tr].mean()), float(x[idx_tr].std())
    raw = np.clip(np.rint(images * 16), 0, 255).astype(np.uint8)  # 0..16 → 0..255

    def tensors(idx: np.ndarray) -> tuple[Tensor, Tensor]:
        xs = torch.from_numpy((x[idx] - mean) / std).unsqueeze(1)  # (n, 1, 8, 8)
        return xs.to(device).contiguous(), torch.from_numpy(y[idx]).to(device)

    x_tr, y_tr = tensors(idx_tr)
    x_va, y_va = tensors(idx_va)
    return Dataset(
        "digits", x_tr, y_tr, x_va, y_va, [str(i) for i in range(10)], raw[idx_tr], raw[idx_va]
    )


def data_root(root: str | Path | None = None) -> Path:
    """The dataset folder: ``root``, else ``$LAB_DATA_ROOT``, else ``data/datasets``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("LAB_DATA_ROOT")
    return Path(env).expanduser() if env else DEFAULT_ROOT


_TV_SHIM: list = []  # keeps the shim's torch.library.Library alive


def import_torchvision():
    """``import torchvision``, also on a CPU-only torch build.

    The PyPI torchvision wheel's compiled ops are built against the CUDA build of torch; on a
    CPU-only torch they fail to load, and torchvision then stops at the one meta registration
    registrations that are not guarded by ``_has_ops()`` (``nms``, ``qnms``; pytorch/vision#9085).
    Declaring those ops' schemas (no kernels) lets the pure-Python parts we use — ``datasets`` —
    import. The lab never calls them; with a matching torch build nothing here runs.
    """
    import sys

    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
        for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[mod]
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TV_SHIM.append(lib)
        import torchvision
    return torchvision


def _load_cifar10(device: torch.device, root: Path | None, download: bool) -> Dataset:
    root = data_root(root)
    missing = [f for f in CIFAR_FILES if not (root / CIFAR_DIR / f).is_file()]
    if missing and not download:
        raise LabError(
            f"CIFAR-10 was not found under {root.resolve() / CIFAR_DIR} "
            f"(missing: {', '.join(missing)}). Download it with `--download` "
            "(or pass download=True), or point LAB_DATA_ROOT at a folder that holds it."
        )
    cifar10 = import_torchvision().datasets.CIFAR10
    splits = []
    for train in (True, False):
        try:
            ds = cifar10(str(root), train=train, download=download)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            raise LabError(
                f"CIFAR-10 under {root.resolve()} is incomplete or corrupt ({err}); "
                "delete it and download again with `--download`"
            ) from err
        splits.append((np.asarray(ds.data, dtype=np.uint8), list(ds.targets), list(ds.classes)))
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

    def tensors(raw: np.ndarray, labels: list[int]) -> tuple[Tensor, Tensor]:
        xs = torch.from_numpy(raw).permute(0, 3, 1, 2).float().div_(255.0)  # (n, 3, 32, 32)
        xs = ((xs - mean) / std).contiguous().to(device)
        return xs, torch.tensor(labels, dtype=torch.long, device=device)

    (raw_tr, lab_tr, classes), (raw_va, lab_va, _) = splits
    x_tr, y_tr = tensors(raw_tr, lab_tr)
    x_va, y_va = tensors(raw_va, lab_va)
    return Dataset("cifar10", x_tr, y_tr, x_va, y_va, classes, raw_tr, raw_va)


DATASETS: dict[str, Callable[[torch.device, Path | None, bool], Dataset]] = {
    "digits": _load_digits,
    "cifar10": _load_cifar10,
}
_CACHE: dict[tuple[str, str, str], Dataset] = {}


def check_dataset(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is a known dataset."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def load_dataset(
    name: str,
    device: torch.device | str = "cpu",
    root: str | Path | None = None,
    download: bool = False,
) -> Dataset:
    """Load dataset ``name`` whole onto ``device``; cached per (name, device, root) in-process.

    Treat the returned tensors as read-only: they are shared by every caller.
    """
    check_dataset(name)
    device = torch.device(device)
    resolved = None if name == "digits" else data_root(root).resolve()
    key = (name, str(device), str(resolved))
    if key not in _CACHE:
        _CACHE[key] = DATASETS[name](device, resolved, download)
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every loaded dataset (tests; freeing device memory)."""
    _CACHE.clear()
