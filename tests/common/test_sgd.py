"""core.common.sgd.SGD against torch.optim.SGD: the same parameters, bit for bit, after many steps."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from core.common.sgd import SGD
from tests.conftest import ROOT


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def _train(net, opt, steps: int, lrs=None, frozen=None) -> None:
    gen = torch.Generator().manual_seed(1)
    for t in range(steps):
        x = torch.randn(8, 6, generator=gen)
        y = torch.randint(0, 3, (8,), generator=gen)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        if frozen is not None:
            net[frozen].weight.grad = None  # a parameter without a gradient is left alone
        if lrs is not None:
            if isinstance(opt, SGD):
                opt.lr = lrs[t]
            else:
                for group in opt.param_groups:
                    group["lr"] = lrs[t]
        opt.step()


@pytest.mark.parametrize(
    "kw",
    [
        {"momentum": 0.0},
        {"momentum": 0.9},
        {"momentum": 0.9, "weight_decay": 5e-4},
        {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": True},
    ],
)
@pytest.mark.parametrize("frozen", [None, 2])
def test_equals_torch_optim_sgd_bit_for_bit(kw, frozen):
    lrs = [0.1 * (1 - t / 40) + 0.01 for t in range(40)]  # a changing rate, as lr_at's schedule
    ours, ref = _net(), _net()
    _train(ours, SGD(ours.parameters(), lr=0.1, **kw), 40, lrs, frozen)
    _train(ref, torch.optim.SGD(ref.parameters(), lr=0.1, **kw), 40, lrs, frozen)
    moved = [
        not torch.equal(a, b) for a, b in zip(ours.parameters(), _net().parameters(), strict=True)
    ]
    assert sum(moved) >= 3  # the steps did something
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(_net().parameters(), lr=0.1, nesterov=True)


def test_fine_tuning_does_not_import_dynamo():
    """Building the lab's optimizer, as every fine-tuning worker does, leaves ``torch._dynamo``
    unimported (torch.optim's first step imports it: seconds per process)."""
    code = (
        "import sys, torch; from core.common.sgd import SGD; p = torch.zeros(2, requires_grad=True); "
        "o = SGD([p], lr=0.1, momentum=0.9); p.sum().backward(); o.step(); "
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
