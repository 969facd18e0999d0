"""Executors without Ray: the local one, the options' checks, and the lab without Ray installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.cli import main
from core.common.errors import ConfigError
from core.store.db import Store
from core.zoo.executors import LocalExecutor, RayExecutor, make_executor
from tests.conftest import ROOT


def test_local_executor_runs_in_order_with_progress():
    seen = []
    out = list(
        LocalExecutor().run(
            lambda task, progress, stop: (progress(0.5), task * 2)[1],
            [1, 2, 3],
            progress=lambda i, f: seen.append((i, f)),
        )
    )
    assert out == [(0, 2), (1, 4), (2, 6)] and seen == [(0, 0.5), (1, 0.5), (2, 0.5)]
    assert LocalExecutor().device("cpu") == "cpu" and LocalExecutor().slots() == 1


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"name": "dask"}, "unknown executor"),
        ({"address": "auto"}, "need --executor ray"),
        ({"gpus_per_task": 1.0}, "need --executor ray"),
        ({"name": "ray", "gpus_per_task": 1.5}, "gpus-per-task"),
        ({"name": "ray", "gpus_per_task": -1.0}, "gpus-per-task"),
        ({"name": "ray", "address": "no-port"}, "HOST:PORT"),
    ],
)
def test_executor_options_are_checked(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        make_executor(**{"name": "local", **kwargs})


def test_without_ray_the_lab_runs_and_says_how_to_install_it(db_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["train", "--db", str(db_path), "--executor", "ray", "--models", "2"]) == 2
    err = capsys.readouterr().err
    assert "pip install -r requirements-ray.txt" in err and "not installed" in err
    assert Store(db_path).query_df("SELECT count(*) FROM model_sets").iloc[0, 0] == 0
    with pytest.raises(ConfigError, match="requirements-ray.txt"):
        RayExecutor().slots()


def test_the_engine_never_imports_ray_unless_asked():
    code = (
        "import sys, core.zoo.build, core.forget.oracles, core.cli; core.cli.build_parser(); "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
