"""The cifar10 preset: the cost probe and estimate, the confirmation, and the preset end to end
on fabricated CIFAR-10 files (tiny: 2 models a group, small forget sets, one epoch)."""

from __future__ import annotations

import json
import sys

import pytest

from core.cli import main
from core.common.errors import ConfigError
from core.presets.cifar10 import estimate, plan_preset, probe
from core.store.db import Store
from core.zoo.data import load_dataset
from tests.cifar_fixtures import fake_cifar  # noqa: F401  (fixture)

TINY = ["--models", "2", "--sizes", "2,3", "--epochs", "1", "--batch-size", "5", "--arch", "mlp",
        "--probe-steps", "1"]  # fmt: skip


def test_plan_and_estimate(fake_cifar):  # noqa: F811
    data = load_dataset("cifar10")  # 20 train, 4 val
    plan = plan_preset(data, 3, (2, 4), epochs=2, batch_size=5)
    assert plan.models == 3 * (1 + 2 * 2) and plan.train.arch == "resnet9"
    assert plan.example_gradients == 15 * (2 * (20 // 5)) * 5  # models × steps × batch
    est = estimate(plan, 1e-3)
    assert est["seconds"] == pytest.approx((600 + 15 * 24 / 3) * 1e-3)
    for bad in (dict(n_models=1), dict(sizes=(2, 2)), dict(sizes=()), dict(sizes=(16,)),
                dict(batch_size=21)):  # fmt: skip
        with pytest.raises(ConfigError):
            plan_preset(data, **{"n_models": 2, "sizes": (2,), "batch_size": 5, **bad})


def test_plan_defaults_refuse_a_split_too_small(fake_cifar):  # noqa: F811
    with pytest.raises(ConfigError, match="batch_size 512 is larger than the train split"):
        plan_preset(load_dataset("cifar10"))


def test_probe_times_the_steps_after_the_warm_up(fake_cifar):  # noqa: F811
    data = load_dataset("cifar10")
    plan = plan_preset(data, 2, (2,), epochs=1, batch_size=5, arch="mlp")
    ticks = iter(range(100))
    found = probe(data, plan.train, "cpu", steps=3, warmup=1, clock=lambda: float(next(ticks)))
    assert found["seconds"] == 3.0  # the clock advances one second per step
    assert found["s_per_example"] == pytest.approx(3.0 / (3 * 2 * 5))
    real = probe(data, plan.train, "cpu", steps=1)
    assert 0 < real["s_per_example"] < 10 and real["batch"] == 5


def test_preset_end_to_end_with_confirmation(fake_cifar, db_path, capsys, monkeypatch):  # noqa: F811
    assert main(["preset", "cifar10", *TINY, "--estimate-only", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"]["models"] == 10 and out["estimate"]["seconds"] > 0
    assert main(["preset", "cifar10", *TINY]) == 2  # no terminal to ask on, no --yes
    assert "confirm with --yes" in capsys.readouterr().err
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "n")
    assert main(["preset", "cifar10", *TINY]) == 1
    assert "not started" in capsys.readouterr().out
    assert "10 models" in prompts[0] and "estimate:" in prompts[0] and "start?" in prompts[0]
    assert not db_path.exists() or Store(db_path).query_df("SELECT id FROM model_sets").empty
    assert main(["preset", "cifar10", *TINY, "--yes", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert set(done["evaluations"]) == {"random-2", "random-3"}
    store = Store(db_path)
    assert len(store.query_df("SELECT id FROM model_sets")) == 5  # originals, 2 × (main, floor)
    assert main(["preset", "cifar10", *TINY, "--yes", "--json"]) == 0  # rerun: all reused
    assert json.loads(capsys.readouterr().out)["evaluations"] == done["evaluations"]
