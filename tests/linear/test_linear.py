"""The linear study: closed forms, single steps by hand, and the paper's claims."""

from __future__ import annotations

import numpy as np
import pytest

from core.common.errors import ConfigError
from core.linear.study import (
    METHODS,
    LinearConfig,
    Problem,
    make_problem,
    objectives,
    ridge_solution,
    run_method,
    run_study,
)


@pytest.mark.parametrize("n,d,lam", [(100, 400, 0.01), (60, 20, 0.5), (30, 30, 1.0)])
def test_solutions_match_numpy_solve(n, d, lam):
    cfg = LinearConfig(n=n, d=d, forget=5, lam=lam, steps=1, seed=3)
    p = make_problem(cfg)
    keep = np.setdiff1d(np.arange(n), p.forget)
    full = np.linalg.solve(p.X.T @ p.X + lam * np.eye(d), p.X.T @ p.y)
    ret = np.linalg.solve(p.X[keep].T @ p.X[keep] + lam * np.eye(d), p.X[keep].T @ p.y[keep])
    np.testing.assert_allclose(p.theta_full, full, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(p.theta_ret, ret, rtol=1e-8, atol=1e-10)


def test_ridge_without_regularizer_is_min_norm():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, 8)), rng.standard_normal(5)
    np.testing.assert_allclose(ridge_solution(X, y, 0.0), np.linalg.pinv(X) @ y, atol=1e-10)


def _tiny() -> tuple[LinearConfig, Problem]:
    """A 3-dimensional problem with 4 points, the last one forgotten."""
    X = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [0.0, 1.0, 1.0], [2.0, 1.0, -1.0]])
    y = np.array([1.0, -0.5, 0.25, 2.0])
    cfg = LinearConfig(n=4, d=3, forget=1, lam=0.1, steps=1, ascent_weight=0.5)
    forget = np.array([3])
    full = ridge_solution(X, y, cfg.lam)
    ret = ridge_solution(X[:3], y[:3], cfg.lam)
    return cfg, Problem(X, y, np.zeros(3), forget, full, ret)


def _hand_gradients(cfg: LinearConfig, p: Problem, th: np.ndarray) -> dict[str, np.ndarray]:
    """Each objective's gradient written out point by point, coordinate by coordinate."""
    g = {m: np.zeros(3) for m in METHODS}
    for i in range(4):
        x, yi = p.X[i], p.y[i]
        r = sum(x[k] * th[k] for k in range(3)) - yi  # residual
        om = sum(x[k] * (th[k] - p.theta_ret[k]) for k in range(3))  # output gap to the oracle
        for k in range(3):
            g["OM"][k] += om * x[k]
            if i == 3:  # the forget point
                g["GD+GA"][k] -= cfg.ascent_weight * r * x[k]
            else:
                g["GD"][k] += r * x[k]
                g["GD+GA"][k] += r * x[k]
                g["OM (retain only)"][k] += om * x[k]
    for k in range(3):
        g["GD"][k] += cfg.lam * th[k]
        g["GD+GA"][k] += cfg.lam * th[k]
    return g


def test_one_step_of_each_method_matches_hand_computation():
    cfg, p = _tiny()
    qs = objectives(p, cfg)
    grads = _hand_gradients(cfg, p, p.theta_full)
    for m in METHODS:
        curve = run_method(m, qs[m], p, steps=1)
        eta = curve.outcome.step_size
        # 1/L with L the top eigenvalue of the objective's Hessian, found here by power iteration
        H = qs[m].H
        v = np.ones(3)
        for _ in range(2000):
            v = H @ v + 10 * v  # shift keeps the top eigenvalue dominant for indefinite H
            v /= np.linalg.norm(v)
        assert eta == pytest.approx(1.0 / float(v @ H @ v), rel=1e-6)
        expected = p.theta_full - eta * grads[m]
        rel = np.linalg.norm(expected - p.theta_ret) / np.linalg.norm(p.theta_full - p.theta_ret)
        assert curve.rel_dist[1] == pytest.approx(rel, rel=1e-10)
        assert curve.rel_dist[0] == 1.0


def test_paper_claims_with_defaults():
    cfg = LinearConfig()
    _, curves = run_study(cfg)
    out = {c.method: c.outcome for c in curves}
    assert out["OM"].step_below_1e6 is not None and out["OM"].step_below_1e6 <= 0.15 * cfg.steps
    assert out["GD"].final_rel_dist > 0.5 and out["GD"].min_rel_dist > 0.5
    assert out["OM (retain only)"].final_rel_dist > 0.5
    assert out["GD+GA"].min_rel_dist > 0.1
    assert out["GD+GA"].status in ("diverged", "stalled")
    for c in curves:  # nothing non-finite is ever recorded
        assert np.isfinite(c.rel_dist).all() and np.isfinite(c.objective).all()


def test_divergence_is_recorded_not_raised():
    _, curves = run_study(LinearConfig(ascent_weight=5.0, steps=300))
    ga = next(c for c in curves if c.method == "GD+GA")
    assert ga.outcome.diverged and ga.outcome.status == "diverged"
    assert len(ga.rel_dist) == ga.outcome.diverged_at  # steps 0 … diverged_at − 1
    assert np.isfinite(ga.rel_dist).all()


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"n": 0}, "n must be"),
        ({"d": 0}, "d must be"),
        ({"forget": 0}, "forget must be"),
        ({"forget": 100}, "smaller than n"),
        ({"lam": -1.0}, "lam must be"),
        ({"steps": 0}, "steps must be"),
        ({"lam": float("nan")}, "finite"),
        ({"noise": float("inf")}, "finite"),
        ({"n": 10.5}, "whole number"),
    ],
)
def test_bad_config_is_rejected(changes, needle):
    with pytest.raises(ConfigError, match=needle):
        LinearConfig(**changes)


def test_config_round_trip():
    cfg = LinearConfig(n=50, lam=0.5)
    assert LinearConfig.from_dict(cfg.to_dict()) == cfg
