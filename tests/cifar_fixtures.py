"""Fabricated CIFAR-10 for the tests: tiny files in the real on-disk format, read by
torchvision's own loader (integrity check included: only its table of md5 sums is swapped for
the fabricated files' sums), found through ``LAB_DATA_ROOT`` as a user's copy would be."""

from __future__ import annotations

import hashlib

import pytest

from core.zoo.data import CIFAR_DIR, clear_cache, import_torchvision
from tests.zoo.test_data import _write_cifar


def fabricate_cifar(root, monkeypatch, per_batch: int = 4) -> None:
    """Write ``5 × per_batch`` train and ``per_batch`` val images under ``root`` and point
    ``LAB_DATA_ROOT`` there; labels cycle through the classes."""
    _write_cifar(root, per_batch)
    cifar10 = import_torchvision().datasets.CIFAR10
    folder = root / CIFAR_DIR

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(
        cifar10, "train_list", [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)]
    )
    monkeypatch.setattr(cifar10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(cifar10, "meta", {**cifar10.meta, "md5": md5("batches.meta")})
    monkeypatch.setenv("LAB_DATA_ROOT", str(root))
    clear_cache()


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """20 train and 4 val fabricated CIFAR-10 images (ResNet-9 takes seconds a step on a small
    CPU); the dataset cache is cleared after."""
    root = tmp_path / "datasets"
    fabricate_cifar(root, monkeypatch)
    yield root
    clear_cache()
