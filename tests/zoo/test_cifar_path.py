"""The whole CIFAR-10 path on the CPU, tiny: torchvision's loader on fabricated files in
CIFAR-10's format, ResNet-9 ensembles with the augmented fast recipe, margins, oracles, one
unlearning method with a budget, KLoM and the audits; the same through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.evaluation.run import build_oracles, evaluate, evaluation
from core.forget.sets import random_forget_set
from core.forget.store import save_forget_set
from core.store.db import Store
from core.zoo.build import build_model_set, create_model_set
from core.zoo.data import load_dataset
from core.zoo.model_sets import load_margins
from core.zoo.recipe import default_train_config
from tests.cifar_fixtures import fake_cifar  # noqa: F401  (fixture)

# the cifar10 recipe (ResNet-9, augmentation, label smoothing, warm-up) at 4 steps of batch 5
TINY = default_train_config("cifar10").replace(epochs=1, batch_size=5)


def test_cifar10_resnet9_end_to_end(fake_cifar, db_path):  # noqa: F811
    data = load_dataset("cifar10")
    assert (data.n_train, data.n_val, data.input_shape) == (20, 4, (3, 32, 32))
    assert TINY.arch == "resnet9" and TINY.augment
    store = Store(db_path)
    orig = create_model_set(store, "original", TINY, 2, seed=0, data=data)
    ms = build_model_set(store, orig)
    assert ms.status == "complete" and ms.n_chunks == 1
    margins = load_margins(store, orig)
    assert margins.shape == (2, 24) and np.isfinite(margins).all()
    fs_id = save_forget_set(store, random_forget_set(20, 3, seed=0, name="r3"), "cifar10")
    main_id, floor_id = build_oracles(store, fs_id)
    assert load_margins(store, floor_id).shape == (2, 24)
    base = evaluate(store, fs_id, "do_nothing")
    run = evaluate(store, fs_id, "gradient_descent", budget=0.5, batch=5)  # 2 steps
    ev = evaluation(store, run)
    assert ev["evaluation"]["compute_cost"] == pytest.approx(0.5)
    s = ev["summaries"].set_index(["split", "metric"])
    assert s.loc[("forget", "klom"), "count"] == 3 and s.loc[("val", "klom"), "count"] == 4
    assert np.isfinite(ev["points"]["klom"]).all() and (ev["points"]["klom"] >= 0).all()
    assert run != base
    from core.evaluation.audits import audit_summary

    assert audit_summary(store, run)["ulira"]["bacc_mean"]["value"] is not None


def test_cifar10_imports_through_the_cli(fake_cifar, db_path, tmp_path, capsys):  # noqa: F811
    """The authors' files, CIFAR-10-shaped (here 20 + 4 points): a forget-set index file,
    originals, an oracle file split into main and floor, unlearned margins; then evaluate."""
    args = ["--dataset", "cifar10", "--models", "2", "--epochs", "1", "--json"]
    # the default cifar10 batch (512) is larger than the fabricated train split: said clearly
    assert main(["train", *args]) == 2
    assert "batch_size 512 is larger than the train split (20 points)" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    files = {"fs": np.array([3, 11, 17]), "orig": rng.normal(size=(4, 24)) + 1,
             "oracles": rng.normal(size=(8, 24)), "om": rng.normal(size=(4, 24))}  # fmt: skip
    for name, arr in files.items():
        np.save(tmp_path / f"{name}.npy", arr)

    def run(*argv: str) -> dict:
        assert main([*argv, "--json"]) == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    fs = run("import-forget-set", "--dataset", "cifar10", str(tmp_path / "fs.npy"))["id"]
    imp = ["import-margins", "--dataset", "cifar10"]
    run(*imp, "--kind", "original", str(tmp_path / "orig.npy"))
    for role, rows in (("main", "0:4"), ("floor", "4:8")):
        run(*imp, "--kind", "oracle", "--forget-set", str(fs), "--role", role, "--rows", rows,
            str(tmp_path / "oracles.npy"))  # fmt: skip
    base = run("evaluate", "--forget-set", str(fs))
    assert base["summaries"]["forget/klom"]["count"] == 3
    om = run(*imp, "--kind", "unlearned", "--forget-set", str(fs), "--label", "om",
             str(tmp_path / "om.npy"))  # fmt: skip
    assert om["run_id"] != base["run_id"] and not om["reused"]
    assert main([*imp, "--kind", "original", str(tmp_path / "fs.npy")]) == 2  # integers
    assert "must be floating point" in capsys.readouterr().err


@pytest.mark.gpu
def test_cifar10_resnet9_on_cuda_bf16(fake_cifar, db_path):  # noqa: F811
    """The same recipe on a GPU: bf16 autocast, channels_last, augmentation on the device."""
    store = Store(db_path)
    orig = create_model_set(store, "original", TINY.replace(epochs=2), 4, device="cuda")
    build_model_set(store, orig, device="cuda")
    m = load_margins(store, orig)
    assert m.shape == (4, 24) and np.isfinite(m).all()
