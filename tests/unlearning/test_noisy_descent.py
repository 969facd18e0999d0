"""Noisy descent (issue 24, part 4): EasyDUB's DP-SGD-style retain fine-tuning, checked against
a per-model loop of plain torch (``clip_grad_norm_`` and ``torch.optim.SGD`` on each model
alone), its noise against its stated law, and end to end as a registered, budgeted method."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.evaluation.run import evaluate, evaluation
from core.unlearning import METHODS
from core.unlearning.finetune import model_loss, sgd
from core.unlearning.gradient import clip_and_noise
from core.zoo.build import load_ensemble
from core.zoo.data import load_dataset
from tests.lab_fixtures import tiny_lab

RETRAIN = 2688  # a TINY model's retraining: 42 steps of 64 example-gradients


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return tiny_lab(tmp_path_factory.mktemp("noisy") / "lab.duckdb", n_models=3)


def _batches(n_models: int, steps: int, batch: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return [torch.randint(0, 1347, (n_models, batch), generator=g) for _ in range(steps)]


@pytest.mark.parametrize("max_norm", [0.05, 1e6])  # clipping binds / never binds
def test_without_noise_it_is_per_model_clipped_sgd(lab, max_norm):
    data = load_dataset("digits")
    x, y = data.x_train, data.y_train
    ens = load_ensemble(lab["store"], lab["original"], "cpu")
    singles = [ens.model(i).train() for i in range(ens.n_models)]
    idx = _batches(ens.n_models, 4, 32)
    gen = torch.Generator().manual_seed(0)
    sgd(ens, 4, lambda t: model_loss(ens.forward_train(x[idx[t]]), y[idx[t]]), lr=0.05,
        momentum=0.9, grad_transform=clip_and_noise(max_norm, 0.0, gen))  # fmt: skip
    for i, m in enumerate(singles):  # the reference: each model alone, plain torch
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        for t in range(4):
            opt.zero_grad()
            F.cross_entropy(m(x[idx[t][i]]), y[idx[t][i]]).backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), max_norm)
            opt.step()
        got = ens.model(i).state_dict()
        for name, want in m.state_dict().items():
            torch.testing.assert_close(got[name], want, rtol=1e-5, atol=1e-6)


def test_clipping_binds_per_model_not_over_the_stack():
    """Two models, one with a gradient of norm 10 and one of norm 0.1: clipped to 1 the first
    scales by 1/10, the second stays (a norm over the whole stack would scale both)."""
    g1 = torch.zeros(2, 3)
    g1[0] = torch.tensor([6.0, 0.0, 0.0])
    g1[1] = torch.tensor([0.06, 0.0, 0.0])
    g2 = torch.zeros(2, 4)
    g2[0, 1], g2[1, 1] = 8.0, 0.08  # model norms: 10 and 0.1
    params = [torch.zeros(2, 3, requires_grad=True), torch.zeros(2, 4, requires_grad=True)]
    params[0].grad, params[1].grad = g1.clone(), g2.clone()
    clip_and_noise(1.0, 0.0, torch.Generator().manual_seed(0))(params)
    assert params[0].grad[0, 0].item() == pytest.approx(0.6, rel=1e-6)
    assert params[1].grad[0, 1].item() == pytest.approx(0.8, rel=1e-6)
    assert params[0].grad[1, 0].item() == pytest.approx(0.06, rel=1e-6)
    assert params[1].grad[1, 1].item() == pytest.approx(0.08, rel=1e-6)


def test_the_noise_is_gaussian_with_the_stated_sigma():
    """Zero gradients (nothing to clip) plus noise: the gradient is the noise. Its mean and
    standard deviation over 400,000 entries match N(0, σ²) (a deterministic draw)."""
    p = torch.zeros(4, 100_000, requires_grad=True)
    p.grad = torch.zeros_like(p)
    clip_and_noise(1.0, 0.3, torch.Generator().manual_seed(1))([p])
    g = p.grad.numpy().ravel()
    assert abs(g.mean()) < 0.3 * 5 / np.sqrt(g.size)
    assert g.std() == pytest.approx(0.3, rel=0.01)
    assert not np.allclose(p.grad[0].numpy(), p.grad[1].numpy())  # each model its own noise


def test_it_is_registered_and_budgeted(lab):
    assert "noisy_descent" in METHODS
    run = evaluate(lab["store"], lab["forget_set"], "noisy_descent", budget=0.1, noise_std=0.05)
    ev = evaluation(lab["store"], run)
    assert ev["evaluation"]["compute_cost"] == pytest.approx(4 * 64 / RETRAIN)  # ⌊268.8/64⌋ steps


def test_the_same_seed_gives_the_same_models(lab):
    """The noise is a function of the generator's seed: equal seeds, equal parameters."""
    data = load_dataset("digits")
    x, y = data.x_train, data.y_train
    idx = _batches(3, 3, 16)
    out = []
    for seed in (7, 7, 8):
        ens = load_ensemble(lab["store"], lab["original"], "cpu")
        edit = clip_and_noise(1.0, 0.05, torch.Generator().manual_seed(seed))
        sgd(ens, 3, lambda t, e=ens: model_loss(e.forward_train(x[idx[t]]), y[idx[t]]), lr=0.05,
            momentum=0.9, grad_transform=edit)  # fmt: skip
        out.append(torch.cat([p.detach().reshape(-1) for p in ens.parameters()]))
    assert torch.equal(out[0], out[1])
    assert not torch.equal(out[0], out[2])


def test_noise_moves_the_models(lab):
    """σ = 0 is retain fine-tuning with clipping; σ > 0 lands elsewhere."""
    quiet = evaluate(lab["store"], lab["forget_set"], "noisy_descent", budget=0.1, noise_std=0.0)
    loud = evaluate(lab["store"], lab["forget_set"], "noisy_descent", budget=0.1, noise_std=0.5)
    ga = evaluation(lab["store"], quiet)["points"]["gap"].to_numpy()
    gb = evaluation(lab["store"], loud)["points"]["gap"].to_numpy()
    assert np.isfinite(ga).all() and np.isfinite(gb).all()
    assert np.abs(ga - gb).max() > 0.01
