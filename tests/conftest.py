"""Shared fixtures: every test gets its own database file in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_path(tmp_path, monkeypatch) -> Path:
    """A fresh database path, also exported as LAB_DB for code that reads the environment."""
    path = tmp_path / "lab.duckdb"
    monkeypatch.setenv("LAB_DB", str(path))
    return path


def pytest_collection_modifyitems(config, items):
    """Skip GPU-marked tests where there is no CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
