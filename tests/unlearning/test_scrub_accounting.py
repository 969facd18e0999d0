"""SCRUB's compute cost is the example-gradients it computes (issue 22, item 12), counted here
independently by wrapping the student's autograd forward; and its forget-side ascent has zero
gradient while the student equals its teacher."""

from __future__ import annotations

import pytest
import torch

from core.evaluation.run import evaluate, evaluation
from core.zoo.ensemble import Ensemble
from tests.lab_fixtures import tiny_lab

RETRAIN = 2688  # a TINY model's retraining: 42 steps of 64 example-gradients


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return tiny_lab(tmp_path_factory.mktemp("scrub") / "lab.duckdb", n_models=2)


def _closed_form(budget: float, batch: int, forget_batch: int, max_share: float) -> int:
    """Naive: the most steps S with S retain batches and round(max_share·S) forget batches
    within the budget; the example-gradients they spend per model."""
    best = 0
    for s in range(1, 10_000):
        spent = s * batch + round(max_share * s) * forget_batch
        if spent > budget * RETRAIN:
            break
        best = spent
    return best


@pytest.mark.parametrize(
    ("budget", "max_share", "expected"),
    [(0.1, 0.5, 3 * 64 + 2 * 16), (0.5, 0.25, 19 * 64 + 5 * 16), (0.5, 0.0, 21 * 64)],
)
def test_scrub_charges_exactly_the_gradients_it_computes(lab, monkeypatch, budget, max_share,
                                                         expected):  # fmt: skip
    """The old code ran the student twice on every retain batch (KL and CE each did a
    forward/backward) and charged a forget batch on every step, after the max phase too: at
    budget 0.1 it computed 3·2·64 + 2·16 = 416 example-gradients and recorded 3·80 = 240."""
    counted = []
    forward = Ensemble.forward_train

    def counting(self, x):
        z = forward(self, x)
        assert z.requires_grad  # every counted forward is backpropagated through the loss
        counted.append(x.shape[1])  # x: (n_models, B, ...) → B examples per model
        return z

    monkeypatch.setattr(Ensemble, "forward_train", counting)
    run = evaluate(lab["store"], lab["forget_set"], "scrub", budget=budget, max_share=max_share,
                   recompute=True)  # fmt: skip
    cost = evaluation(lab["store"], run)["evaluation"]["compute_cost"]
    assert sum(counted) == expected == _closed_form(budget, 64, 16, max_share)
    assert cost == pytest.approx(sum(counted) / RETRAIN, abs=1e-12)
    assert cost <= budget + 64 / RETRAIN  # within one batch of the budget (here: within it)
    assert cost <= budget


def test_scrub_forget_ascent_has_zero_gradient_while_student_is_teacher(lab):
    """∇ KL(teacher ‖ student) = softmax(s) − softmax(t) in the student's logits: zero at the
    start, when the student is a copy of the teacher (the digits MLP has no batch norm, so
    train and eval mode agree). The ascent only acts after the retain descent moves it."""
    import torch.nn.functional as F

    from core.zoo.build import load_ensemble
    from core.zoo.data import load_dataset

    teacher = load_ensemble(lab["store"], lab["original"], "cpu")
    student = teacher.select(range(teacher.n_models))
    x = load_dataset("digits").x_train[torch.as_tensor(lab["forget"][:16].copy())]
    xs = x.unsqueeze(0).expand(teacher.n_models, *x.shape)
    with torch.no_grad():
        pt = F.log_softmax(teacher.net(xs), -1)
    ps = F.log_softmax(student.forward_train(xs), -1)
    (-(pt.exp() * (pt - ps)).sum(-1).mean(1).sum()).backward()
    grads = torch.cat([p.grad.reshape(-1) for p in student.parameters()])
    assert grads.abs().max() < 1e-6
