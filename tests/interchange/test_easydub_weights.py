"""EasyDUB's checkpoints imported with ``--weights`` (core.interchange.easydub_weights): fabricated
checkpoints saved by ``torch.save`` from a module with EasyDUB's parameter names (written here,
independently of core.zoo.models) reproduce, in the lab's stacked ``resnet9_easydub``, the margins
that module gives on EasyDUB's normalization; a method runs on them end to end on the CPU;
a checkpoint that does not fit is refused naming the file, nothing stored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.cli import main
from core.evaluation.run import evaluate, evaluation, evaluation_margins
from core.interchange.easydub import import_easydub, rel_margins, rel_weights
from core.store.db import Store
from core.zoo.data import load_dataset
from core.zoo.model_sets import load_ensemble, load_margins
from tests.cifar_fixtures import fabricate_cifar
from tests.interchange.test_easydub import FORGET, _stored, write_easydub

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # EasyDUB's normalization


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.module = nn.Sequential(_cbr(c, c), _cbr(c, c))

    def forward(self, x):
        return x + self.module(x)


def _cbr(ci: int, co: int, k: int = 3, s: int = 1, p: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, k, s, p, bias=False), nn.BatchNorm2d(co), nn.ReLU())


def easydub_net(seed: int) -> nn.Sequential:
    """EasyDUB's ResNet-9 layout (positions as names); batch-norm statistics and scales drawn
    at random, negative scales included (a max-pool before the ReLU would then differ)."""
    torch.manual_seed(seed)
    net = nn.Sequential(_cbr(3, 64), _cbr(64, 128, 5, 2, 2), _Res(128), _cbr(128, 256),
                        nn.MaxPool2d(2), _Res(256), _cbr(256, 128, 3, 1, 0),
                        nn.AdaptiveMaxPool2d((1, 1)), nn.Flatten(), nn.Linear(128, 10, bias=False))  # fmt: skip
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.randn(c)
            m.bias.data = torch.randn(c) * 0.1
            m.running_mean = torch.randn(c) * 0.1
            m.running_var = torch.rand(c) + 0.5
            m.num_batches_tracked.fill_(seed + 7)
    net[9].weight.data = torch.randn(10, 128)  # logits far apart: margins of several units
    return net.eval()


def easydub_margins(net: nn.Module, raw: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``z = 0.2 · net(x)``, ``z_y − logsumexp_{j≠y} z_j``, on images in [0, 255] (B, 32, 32, 3)."""
    x = torch.from_numpy(raw).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        z = (net(x) * 0.2).double().numpy()
    rows = np.arange(len(labels))
    zy = z[rows, labels]
    z[rows, labels] = -np.inf
    return zy - np.log(np.exp(z).sum(1))


@pytest.fixture
def with_weights(tmp_path, monkeypatch):
    """The tiny EasyDUB directory, its pretrained margins made by 3 checkpoints saved here
    (model 1 with a ``module.`` prefix, model 2 with ``model.``)."""
    from core.zoo.data import import_torchvision

    CIFAR10 = import_torchvision().datasets.CIFAR10  # noqa: N806  (torchvision's reader)
    root = tmp_path / "EasyDUB-dataset"
    fabricate_cifar(root / "data", monkeypatch)
    write_easydub(root)
    tr, va = CIFAR10(str(root / "data"), train=True), CIFAR10(str(root / "data"), train=False)
    for m, prefix in enumerate(("", "module.", "model.")):
        net = easydub_net(m)
        (root / rel_weights("cifar10", m)).parent.mkdir(parents=True, exist_ok=True)
        torch.save({prefix + k: v for k, v in net.state_dict().items()},
                   root / rel_weights("cifar10", m))  # fmt: skip
        mt = easydub_margins(net, tr.data, np.array(tr.targets)).astype(np.float32)
        np.save(root / rel_margins("cifar10", "pretrain", "retain", None, m), mt)
        np.save(root / rel_margins("cifar10", "pretrain", "val", None, m),
                easydub_margins(net, va.data, np.array(va.targets)).astype(np.float32))  # fmt: skip
        for k, idx in FORGET.items():
            np.save(root / rel_margins("cifar10", "pretrain", "forget", k, m), mt[idx])
    return root


def test_weights_reproduce_the_margins_and_a_method_runs(with_weights, db_path):
    store = Store(db_path)
    out = import_easydub(store, with_weights, weights=True)
    orig = out["original_set_id"]
    data = load_dataset("cifar10")
    ens = load_ensemble(store, orig, "cpu")
    assert ens.arch == "resnet9_easydub"
    got = ens.margins(*data.all_points())  # (3, 24), the lab's standardized images
    np.testing.assert_allclose(got, load_margins(store, orig), atol=2e-4, rtol=1e-4)
    assert np.ptp(got) > 1.0  # margins that vary: a wrong layer order would show
    fs = out["forget_sets"][0]["id"]
    # 12 of the 96 steps of a retraining: enough to move the margins (48 took ~40 s more)
    run = evaluate(store, fs, "gradient_descent", budget=0.125, batch=5, device="cpu")
    ev = evaluation(store, run)
    assert ev["evaluation"]["compute_cost"] == pytest.approx(0.125)
    assert np.isfinite(ev["points"]["klom"]).all()
    unlearned, _ = evaluation_margins(store, run)  # fine-tuned: the margins moved
    assert unlearned.shape == got.shape and not np.allclose(unlearned, got, atol=1e-3)


def _replace(root, m: int, obj) -> str:
    rel = rel_weights("cifar10", m)
    if isinstance(obj, bytes):
        (root / rel).write_bytes(obj)
    else:
        torch.save(obj, root / rel)
    return rel


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled",))


BAD = {
    "wider head": (lambda sd: {**sd, "9.weight": torch.zeros(10, 256)}, "9.weight has shape"),
    "missing key": (
        lambda sd: {k: v for k, v in sd.items() if k != "6.1.running_var"},
        "missing ['6.1.running_var']",
    ),  # fmt: skip
    "extra key": (lambda sd: {**sd, "9.bias": torch.zeros(10)}, "unexpected ['9.bias']"),
    "NaN": (lambda sd: {**sd, "0.0.weight": sd["0.0.weight"] * np.nan}, "not finite"),
    "a pickle": (lambda sd: {"x": _Evil()}, "torch loads safely"),
    "garbage": (lambda sd: b"not a checkpoint", "torch loads safely"),
    "a list": (lambda sd: [1, 2], "not a state dict"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_checkpoint_that_does_not_fit_is_refused(with_weights, db_path, capsys, case):
    make, message = BAD[case]
    rel = _replace(with_weights, 2, make(easydub_net(2).state_dict()))
    assert main(["import-easydub", str(with_weights), "--weights"]) == 2
    err = capsys.readouterr()
    assert "unpickled" not in err.out
    line = err.err.strip()
    assert len(line.splitlines()) == 1 and rel in line and message in line, line
    assert _stored(Store(db_path)) == (0, 0, 0)


def test_a_missing_checkpoint_and_weights_of_digits(with_weights, db_path, capsys):
    (with_weights / rel_weights("cifar10", 1)).unlink()
    assert main(["import-easydub", str(with_weights), "--weights"]) == 2
    assert "id_1_epoch_23.pt: missing" in capsys.readouterr().err
    assert main(["import-easydub", str(with_weights), "--weights", "--dataset", "digits"]) == 2
    assert "ResNet-9s of cifar10" in capsys.readouterr().err
    assert main(["import-easydub", str(with_weights)]) == 0  # margins only: no checkpoint read


@pytest.mark.gpu
def test_weights_on_cuda(with_weights, db_path):
    """The same on a GPU (not run where there is none): the stacked checkpoints' margins on
    CUDA match the files to bf16's precision, and gradient descent runs there."""
    store = Store(db_path)
    out = import_easydub(store, with_weights, weights=True)
    orig = out["original_set_id"]
    got = load_ensemble(store, orig, "cuda").margins(*load_dataset("cifar10", "cuda").all_points())
    np.testing.assert_allclose(got, load_margins(store, orig), atol=0.1, rtol=0.05)
    run = evaluate(store, out["forget_sets"][0]["id"], "gradient_descent", budget=0.5, batch=5,
                   device="cuda")  # fmt: skip
    assert np.isfinite(evaluation(store, run)["points"]["klom"]).all()
