"""Datamodel regression and LDS, on synthetic problems with known answers (no training)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from core.attribution import regression as R
from core.common.errors import ConfigError


def _linear_problem(m=400, p=30, t=6, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((m, p)) < 0.5).astype(np.float64)
    w = rng.normal(size=(p, t))
    b = rng.normal(size=t)
    y = x @ w + b + noise * rng.normal(size=(m, t))
    return x, y, w, b


def test_ridge_matches_numpy_closed_form_and_recovers_weights():
    x, y, w_true, b_true = _linear_problem()
    lam = 3.0
    w, b = R.ridge_fit(x, y, lam)
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(b.numpy(), y.mean(0) - x.mean(0) @ ref, rtol=1e-9, atol=1e-10)
    # λ = 0 is least squares: numpy's lstsq on [X, 1] gives the same weights and intercept
    w0, b0 = R.ridge_fit(x, y, 0.0)
    sol = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)[0]
    np.testing.assert_allclose(w0.numpy(), sol[:-1], atol=1e-8)
    np.testing.assert_allclose(b0.numpy(), sol[-1], atol=1e-8)
    assert np.abs(w0.numpy() - w_true).max() < 0.05  # the true weights are recovered
    assert np.abs(b0.numpy() - b_true).max() < 0.05


def test_ridge_basis_agrees_with_the_direct_solve_for_every_lambda():
    x, y, _, _ = _linear_problem(m=120, p=40)
    basis = R.ridge_basis(x, y)
    x_new = x[:7] * 0.0 + (np.arange(40) % 3 == 0)
    for scale in (1e-3, 0.1, 10.0):
        w, b = R.ridge_fit(x, y, basis.lam(scale))
        wb, bb = basis.weights(scale)
        np.testing.assert_allclose(wb.numpy(), w.numpy(), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(bb.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)
        pred = basis.predict(x_new, scale).numpy()
        np.testing.assert_allclose(pred, x_new @ w.numpy() + b.numpy(), rtol=1e-6, atol=1e-9)
    assert basis.diag == pytest.approx(np.diag((x - x.mean(0)).T @ (x - x.mean(0))).mean())


@pytest.mark.parametrize("dual", [True, False])
def test_ridge_basis_with_fewer_models_than_points_equals_the_direct_solve(dual):
    """CIFAR-10 has 50,000 points and fewer subset models: the dual form (eigendecompose the
    (M, M) Gram of the rows) must give the same weights and predictions as the (p, p) solve."""
    x, y, _, _ = _linear_problem(m=40, p=90, t=5, seed=4)
    basis = R.ridge_basis(x, y, dual=dual)
    assert basis.q.shape == ((90, 39) if dual else (90, 90))  # centring removes one direction
    x_new = (np.random.default_rng(5).random((6, 90)) < 0.5).astype(float)
    for scale in (1e-3, 0.1, 10.0):
        w, b = R.ridge_fit(x, y, basis.lam(scale))
        wb, bb = basis.weights(scale)
        np.testing.assert_allclose(wb.numpy(), w.numpy(), rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(bb.numpy(), b.numpy(), rtol=1e-7, atol=1e-10)
        pred = basis.predict(x_new, scale).numpy()
        np.testing.assert_allclose(pred, x_new @ w.numpy() + b.numpy(), rtol=1e-7, atol=1e-10)
    assert R.ridge_basis(x, y).q.shape == (90, 39)  # M < p picks the dual form by itself


def test_spearman_columns_equals_scipy_on_a_naive_loop():
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(50, 9))
    actual = pred + rng.normal(size=(50, 9))
    actual[:, 2] = np.round(actual[:, 2])  # ties are ranked as spearmanr ranks them
    actual[:, 4] = 1.0  # constant: undefined
    rho = R.spearman_columns(pred, actual)
    for t in range(9):
        if t == 4:
            assert np.isnan(rho[t])
            continue
        assert rho[t] == pytest.approx(spearmanr(pred[:, t], actual[:, t])[0], abs=1e-12)
    assert R.mean_score(rho) == pytest.approx(np.mean([rho[t] for t in range(9) if t != 4]))
    with pytest.raises(ConfigError, match="must be"):
        R.spearman_columns(pred, actual[:, :3])


def test_lds_is_high_on_linear_data_and_low_on_noise():
    x, y, _, _ = _linear_problem(m=600, p=60, t=20, noise=0.5, seed=2)
    basis = R.ridge_basis(x[:500], y[:500])
    rho = R.spearman_columns(basis.predict(x[500:], 0.01), y[500:])
    assert R.mean_score(rho) > 0.9
    noise = np.random.default_rng(3).normal(size=y.shape)
    basis = R.ridge_basis(x[:500], noise[:500])
    assert abs(R.mean_score(R.spearman_columns(basis.predict(x[500:], 0.01), noise[500:]))) < 0.2


def test_lasso_recovers_a_sparse_datamodel():
    rng = np.random.default_rng(4)
    x = (rng.random((500, 40)) < 0.5).astype(np.float64)
    w_true = np.zeros((40, 3))
    w_true[[1, 7, 30], [0, 1, 2]] = [2.0, -1.5, 1.0]
    y = x @ w_true + 0.5 + 0.05 * rng.normal(size=(500, 3))
    w, b = R.lasso_fit(x, y, alpha=0.005)
    assert w.shape == (40, 3) and b.shape == (3,)
    assert np.abs(w - w_true).max() < 0.05
    assert (np.abs(w) > 0.05).sum() == 3  # the zeros stay (near) zero
    with pytest.raises(ConfigError, match="α must be > 0"):
        R.lasso_fit(x, y, alpha=0.0)


def _datamodel_matrix(n=60, seed=5):
    """A train × train matrix with two planted directions of different strength."""
    rng = np.random.default_rng(seed)
    u1, u2 = rng.normal(size=n), rng.normal(size=n)
    v1, v2 = np.linalg.qr(rng.normal(size=(n, 2)))[0].T
    return 5 * np.outer(u1, v1) + 2 * np.outer(u2, v2) + 0.1 * rng.normal(size=(n, n))


@pytest.mark.parametrize("component", [1, 2])
def test_pc_forget_sets_are_the_extremes_of_the_component(component):
    from core.forget.datamodel_sets import pc_forget_set, pc_scores

    d = _datamodel_matrix()
    dc = d - d.mean(0)
    _, _, vt = np.linalg.svd(dc)  # an independent route to the components (the lab: eigh)
    v = vt[component - 1]
    ref = dc @ v
    ref = ref if ref[np.argmax(np.abs(ref))] > 0 else -ref
    s = pc_scores(d, component)
    np.testing.assert_allclose(s, ref, atol=1e-8)
    top10 = pc_forget_set(d, component, 10)
    assert top10.size == 10 and set(top10.indices) == set(np.argsort(-ref)[:10])
    assert np.argmax(ref) in top10.indices
    both = pc_forget_set(d, component, 25, 25)
    assert both.size == 50 and both.kind == "datamodel_pc"
    assert set(both.indices) == set(np.argsort(-ref)[:25]) | set(np.argsort(ref)[:25])
    assert np.argmin(ref) in both.indices
    assert both.name == f"dm-pc{component}-top25-bottom25"
    for top, bottom in ((40, 40), (0, 0)):
        with pytest.raises(ConfigError, match="top \\+ bottom must lie in 1..60"):
            pc_forget_set(d, component, top, bottom)


def test_nearest_neighbours_in_datamodel_space():
    from core.forget.datamodel_sets import knn_datamodel_forget_set

    d = _datamodel_matrix()
    fs = knn_datamodel_forget_set(d, anchor=3, k=6)
    dist = ((d - d[3]) ** 2).sum(1)
    assert fs.kind == "knn_datamodel" and fs.size == 6
    assert set(fs.indices) == set(np.argsort(dist)[:6]) and 3 in fs.indices
    with pytest.raises(ConfigError, match="anchor"):
        knn_datamodel_forget_set(d, anchor=99, k=3)


def test_few_models_are_named_with_an_m_to_use():
    from core.attribution.defaults import DEFAULT_MODELS, MEASURED_LDS
    from core.attribution.fit import few_models_warning

    assert few_models_warning(DEFAULT_MODELS, 1347) is None
    assert few_models_warning(DEFAULT_MODELS + 500, 1347) is None
    msg = few_models_warning(200, 1347)
    assert "200 subset models are few for a readable datamodel" in msg
    assert f"use --models {DEFAULT_MODELS} or more" in msg
    assert f"first reached 0.5 at M = {DEFAULT_MODELS:,} (measured)" in msg
    assert all(f"{v:.2f} at M = {m:,}" in msg for m, v in MEASURED_LDS.items())
    # a larger train set than digits': at least one model per train point (not measured)
    big = few_models_warning(5000, 50_000)
    assert "--models 50000 or more" in big and "so it needs more" in big
    assert few_models_warning(50_000, 50_000) is None


def test_one_default_m_for_the_fit_the_job_and_the_cli():
    """The page's default is checked by its AppTest (tests/dashboard/test_dashboard_attribution.py)."""
    import inspect

    from core.attribution import defaults, fit
    from core.cli import build_parser

    assert fit.DEFAULT_MODELS is defaults.DEFAULT_MODELS
    assert inspect.signature(fit.fit_datamodel).parameters["n_models"].default == (
        defaults.DEFAULT_MODELS
    )
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["datamodels"]
    models = next(a for a in sub._actions if a.dest == "models")
    assert models.default == defaults.DEFAULT_MODELS
    assert f"default {defaults.DEFAULT_MODELS}" in models.help
    # the measured threshold is the default: the fewest models that read at LDS ≥ WEAK_LDS
    assert defaults.MEASURED_LDS[defaults.DEFAULT_MODELS] >= defaults.WEAK_LDS
    assert all(v < defaults.WEAK_LDS for m, v in defaults.MEASURED_LDS.items()
               if m < defaults.DEFAULT_MODELS)  # fmt: skip


def test_lds_is_worded_weak_below_the_threshold():
    from core.attribution.defaults import is_weak, lds_note

    assert lds_note(0.19) == "datamodel LDS 0.19 (weak)"
    assert lds_note(0.68) == "datamodel LDS 0.68" and not is_weak(0.5)
    assert lds_note(None) == lds_note(float("nan")) == "datamodel LDS n/a (weak)"
    assert is_weak(0.4999) and is_weak(None)
