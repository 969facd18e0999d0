"""Property-based tests (hypothesis): KLoM, forget-set uploads, U-LiRA and the ridge fit hold
their promises on inputs nobody wrote by hand."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from core.common.errors import ConfigError
from core.evaluation.audit_math import ulira
from core.evaluation.klom import klom, klom_reference
from core.forget.uploads import parse_upload

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
margin = st.floats(-150, 150, allow_nan=False, allow_infinity=False, width=32)


def ensembles(max_models: int = 12, max_points: int = 6):
    """Two margin arrays ``(n_u, p)`` and ``(n_o, p)`` with the same number of points."""
    return st.tuples(
        st.integers(1, max_models), st.integers(1, max_models), st.integers(1, max_points)
    ).flatmap(lambda s: st.tuples(arrays(np.float32, (s[0], s[2]), elements=margin),
                                  arrays(np.float32, (s[1], s[2]), elements=margin)))  # fmt: skip


SEEN = np.array([[1], [2], [0], [0], [0], [0]], np.float32)  # klom(SEEN, SEEN) was −1.1e-16


@FAST
@given(ensembles())
@example((SEEN, SEEN))
def test_klom_is_finite_non_negative_and_equals_the_per_point_loop(pair):
    u, o = pair
    k = klom(u, o)
    assert k.shape == (u.shape[1],) and np.isfinite(k).all() and (k >= 0).all()
    np.testing.assert_allclose(k, klom_reference(u, o), rtol=1e-9, atol=1e-12)


@FAST
@given(ensembles(), st.randoms(use_true_random=False))
@example((SEEN, SEEN), random.Random(0))
def test_klom_is_zero_on_identical_samples_and_ignores_the_order_of_models(pair, rnd):
    u, o = pair
    assert (klom(u, u) == 0.0).all() and (klom(o, o) == 0.0).all()  # exactly
    perm_u = rnd.sample(range(u.shape[0]), u.shape[0])
    perm_o = rnd.sample(range(o.shape[0]), o.shape[0])
    np.testing.assert_allclose(klom(u[perm_u], o[perm_o]), klom(u, o), rtol=1e-9, atol=1e-12)


@FAST
@given(st.lists(st.integers(0, 1346), max_size=200))
def test_uploads_round_trip_every_format(indices):
    csv = "\n".join(map(str, indices)).encode()
    as_json = ("[" + ",".join(map(str, indices)) + "]").encode()
    for data, name in ((csv, "f.csv"), (as_json, "f.json")):
        try:
            got = parse_upload(data, name, 1347)
        except ConfigError as err:  # an empty list is refused, with a message
            assert not indices and str(err)
            continue
        assert sorted(set(got)) == sorted(set(indices))


@FAST
@given(st.binary(max_size=400), st.sampled_from(["f.csv", "f.json", "f.txt", "f.npy", "f"]))
def test_any_bytes_are_parsed_or_refused_clearly(data, name):
    """Whatever is uploaded: valid indices, or a ConfigError with a message — never another
    exception (a traceback in the UI)."""
    try:
        got = parse_upload(data, name, 1347)
    except ConfigError as err:
        assert str(err)
    else:
        assert all(isinstance(i, int) and 0 <= i < 1347 for i in got)


@FAST
@given(st.integers(4, 30), st.integers(4, 30), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_ulira_balanced_accuracy_lies_in_0_1(n_u, n_o, p, seed):
    rng = np.random.default_rng(seed)
    u = rng.normal(rng.normal(), rng.uniform(0.01, 3), (n_u, p))
    o = rng.normal(rng.normal(), rng.uniform(0.01, 3), (n_o, p))
    r = ulira(u, o, seed=seed % 1000)
    assert r.bacc.shape == (p,) and np.isfinite(r.bacc).all()
    assert ((r.bacc >= 0) & (r.bacc <= 1)).all()
    for f in (0.01, 0.05):
        assert 0.0 <= r.tpr_at(f) <= 1.0


@FAST
@given(st.integers(12, 40), st.integers(2, 8), st.integers(1, 4),
       st.floats(1e-3, 1e3), st.integers(0, 2**31 - 1))  # fmt: skip
def test_ridge_fit_solves_its_normal_equations(m, p, t, lam, seed):
    """``(X̃ᵀX̃ + λI) W = X̃ᵀỸ`` and ``b = ȳ − x̄W`` for any masks, outputs and λ > 0."""
    from core.attribution.regression import ridge_fit

    rng = np.random.default_rng(seed)
    x = (rng.random((m, p)) < 0.5).astype(np.float64)
    y = rng.normal(size=(m, t))
    w, b = ridge_fit(x, y, lam, "cpu")
    w, b = w.numpy(), b.numpy()
    xc, yc = x - x.mean(0), y - y.mean(0)
    np.testing.assert_allclose((xc.T @ xc + lam * np.eye(p)) @ w, xc.T @ yc, atol=1e-8)
    np.testing.assert_allclose(b, y.mean(0) - x.mean(0) @ w, atol=1e-10)


def test_klom_is_exactly_zero_on_identical_samples_and_still_the_definition():
    """The case a random run found: ``klom(SEEN, SEEN)`` summed to −1.1e-16 (q's float sum is
    1 − ulp); now exactly 0 on both backends, and still the per-point ``np.histogram`` loop
    (which keeps the definition's every step, rounding included) wherever floors apply."""
    import os

    import torch

    from core.evaluation import klom as m

    assert klom(SEEN, SEEN).tolist() == [0.0]
    assert abs(klom_reference(SEEN, SEEN)[0]) < 1e-15  # the loop's −1.1e-16
    t = torch.from_numpy(SEEN.T.astype(np.float64))
    assert m._klom_rows(m._TORCH, t.T, t.T, 20, 100.0, 1e-5).tolist() == [0.0]
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 300)), rng.normal(2.0, 1.0, size=(35, 300))  # disjoint tails
    np.testing.assert_allclose(klom(a, b), klom_reference(a, b), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        m._klom_rows(m._TORCH, torch.from_numpy(a), torch.from_numpy(b), 20, 100.0, 1e-5),
        klom_reference(a, b), rtol=1e-12, atol=1e-14,
    )  # fmt: skip
    if "HYPOTHESIS_PROFILE" not in os.environ:  # the suite's examples do not change run to run
        assert settings.default.derandomize
