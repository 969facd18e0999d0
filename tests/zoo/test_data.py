"""Datasets: the digits split, image rendering, the CIFAR-10 loader on fabricated files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from core.common.errors import ConfigError, LabError
from core.zoo.data import CIFAR_DIR, clear_cache, load_dataset


def test_digits_split_and_normalization():
    d = load_dataset("digits")
    assert (d.n_train, d.n_val) == (1347, 450)
    assert d.x_train.shape == (1347, 1, 8, 8) and d.x_train.dtype == torch.float32
    assert d.y_train.dtype == torch.int64 and d.input_shape == (1, 8, 8)
    assert d.num_classes == 10 and d.class_names[3] == "3"
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-3
    # stratified: every class holds about a quarter of its points in val
    counts = np.bincount(d.y_val.numpy(), minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47
    assert load_dataset("digits") is d  # cached


def test_digits_image():
    d = load_dataset("digits")
    img = d.image("val", 0)
    assert img.dtype == np.uint8 and img.shape == (8, 8) and img.max() > 100
    with pytest.raises(ConfigError):
        d.image("test", 0)
    with pytest.raises(ConfigError):
        d.image("train", 1347)
    with pytest.raises(ConfigError):
        d.image("train", -1)


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="digits"):
        load_dataset("mnist")


def _write_cifar(root, per_batch: int = 3) -> None:
    """Tiny files in CIFAR-10's on-disk format (pickled dicts, latin1-readable str keys)."""
    rng = np.random.default_rng(0)
    folder = root / CIFAR_DIR
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, f)
    classes = ["airplane", "automobile", "bird", "cat", "deer"] + [
        "dog", "frog", "horse", "ship", "truck"
    ]  # fmt: skip
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes, "num_cases_per_batch": per_batch}, f)


def test_cifar10_on_fabricated_files(tmp_path, monkeypatch):
    # torchvision's own CIFAR10 class reads the files, integrity check included; only its table
    # of the real files' md5 sums is swapped for the fabricated files' sums
    from tests.cifar_fixtures import fabricate_cifar

    fabricate_cifar(tmp_path, monkeypatch, per_batch=3)
    d = load_dataset("cifar10", root=tmp_path)
    assert (d.n_train, d.n_val) == (15, 3)
    assert d.x_train.shape == (15, 3, 32, 32) and d.x_train.dtype == torch.float32
    assert d.y_train.tolist()[:3] == [0, 1, 2] and d.class_names[9] == "truck"
    img = d.image("train", 1)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    with open(tmp_path / CIFAR_DIR / "data_batch_1", "rb") as f:
        raw = pickle.load(f)["data"][1].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(img, raw)
    # standardized pixel = (raw/255 − mean_c)/std_c
    expect = (raw[0, 0, 0] / 255 - 0.4914) / 0.2470
    assert abs(float(d.x_train[1, 0, 0, 0]) - expect) < 1e-4
    clear_cache()


def test_cifar10_missing_root(tmp_path, monkeypatch):
    root = tmp_path / "nowhere"
    with pytest.raises(LabError, match="--download"):
        load_dataset("cifar10", root=root)
    assert not root.exists()
    monkeypatch.setenv("LAB_DATA_ROOT", str(root))
    with pytest.raises(LabError, match="nowhere"):
        load_dataset("cifar10")
    assert not root.exists()


def test_cifar10_corrupt_files_are_refused_clearly(tmp_path):
    _write_cifar(tmp_path)  # fabricated files do not match the real md5 sums
    with pytest.raises(LabError, match="incomplete or corrupt"):
        load_dataset("cifar10", root=tmp_path)


def test_digits_match_scikit_learn_and_its_split():
    """Digits are read from scikit-learn's CSV without importing it, with a stored split:
    both must equal what scikit-learn itself gives."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from core.zoo.data import DIGITS_SPLIT, digits_arrays, load_dataset
    from tests.conftest import ROOT

    bunch = load_digits()
    images, target = digits_arrays()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(target, bunch.target)
    tr, va = train_test_split(
        np.arange(1797), test_size=0.25, stratify=bunch.target, random_state=0
    )
    np.testing.assert_array_equal(np.load(DIGITS_SPLIT), np.concatenate([tr, va]))
    data = load_dataset("digits")
    np.testing.assert_array_equal(data.y_train.numpy(), bunch.target[tr])
    np.testing.assert_array_equal(data.y_val.numpy(), bunch.target[va])
    code = "import sys; from core.zoo.data import load_dataset; load_dataset('digits'); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
