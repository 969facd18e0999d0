"""Architectures: the stacked build equals N single builds holding the same weights."""

from __future__ import annotations

import pytest
import torch

from core.common.errors import ConfigError
from core.zoo.models import ARCHITECTURES, build, single_state

SHAPES = {
    "mlp": (1, 8, 8),
    "cnn": (1, 8, 8),
    "resnet9": (3, 32, 32),
    "resnet9_easydub": (3, 32, 32),
}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("train", [False, True])
def test_stacked_matches_single(arch, train):
    shape = SHAPES.get(arch, (1, 8, 8))
    n, b = 2, 3
    net = build(arch, shape, 10, n_models=n)
    for i in range(n):
        net.init_model(i, torch.Generator().manual_seed(i))
    net.train(train)
    x = torch.randn(n, b, *shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        z = net(x)  # (N, B, K)
    assert z.shape == (n, b, 10)
    for i in range(n):
        single = build(arch, shape, 10)
        single.load_state_dict(single_state(net.state_dict(), i))
        single.train(train)
        with torch.no_grad():
            zi = single(x[i])  # (B, K)
        torch.testing.assert_close(z[i], zi, atol=1e-4, rtol=1e-4)


def test_models_get_different_inits():
    net = build("mlp", (1, 8, 8), 10, n_models=2)
    net.init_model(0, torch.Generator().manual_seed(0))
    net.init_model(1, torch.Generator().manual_seed(1))
    assert not torch.equal(net.fc1.weight[0], net.fc1.weight[1])
    # same seed, same init regardless of position
    other = build("mlp", (1, 8, 8), 10, n_models=3)
    other.init_model(2, torch.Generator().manual_seed(1))
    assert torch.equal(other.fc1.weight[2], net.fc1.weight[1])


def test_resnet9_forward_backward_cpu():
    net = build("resnet9", (3, 32, 32), 10, n_models=2)
    for i in range(2):
        net.init_model(i, torch.Generator().manual_seed(i))
    x = torch.randn(2, 2, 3, 32, 32)
    z = net(x)
    assert z.shape == (2, 2, 10) and torch.isfinite(z).all()
    z.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.features(x).shape == (2, 2, 512)
    # the state carries per-model BatchNorm statistics
    assert net.state_dict()["prep.bn.running_mean"].shape == (2, 64)


def test_bad_architecture_and_model_count():
    with pytest.raises(ConfigError, match="mlp"):
        build("vit", (1, 8, 8), 10)
    with pytest.raises(ConfigError):
        build("mlp", (1, 8, 8), 10, n_models=0)
