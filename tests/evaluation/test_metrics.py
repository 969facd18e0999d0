"""KLoM against its slow per-point reference, edge cases, summaries and the other metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.common.errors import ConfigError
from core.evaluation.klom import (
    accuracy_from_correct,
    klom,
    klom_reference,
    margin_gap,
    noise_floor,
    split_accuracy,
    split_halves,
    split_indices,
    split_summary,
)
from core.zoo.margins import margins_from_logits

TOL = 1e-9


def assert_matches_reference(p, q, **kw) -> np.ndarray:
    fast = klom(p, q, **kw)
    slow = klom_reference(p, q, **kw)
    assert fast.dtype == np.float64 and fast.shape == (np.shape(p)[1],)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=TOL)
    return fast


# ----------------------------------------------------------------------------- agreement


@pytest.mark.parametrize(
    ("n_p", "n_q", "n_points", "seed"),
    [(10, 10, 50, 0), (100, 37, 400, 1), (3, 50, 200, 2), (1, 1, 30, 3), (64, 128, 300, 4)],
)
def test_random_inputs_match_reference(n_p, n_q, n_points, seed):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n_p, n_points)) + rng.uniform(-2, 2, size=n_points)  # shifted points
    q = rng.normal(scale=rng.uniform(0.1, 3), size=(n_q, n_points))
    out = assert_matches_reference(p, q)
    assert np.all(out >= -1e-12)


@pytest.mark.parametrize("scale", [1, 2, 4, 7, 10])
def test_ties_on_a_coarse_grid(scale):
    """Integer-ish values: many samples sit exactly on (rounded) bin edges."""
    rng = np.random.default_rng(scale)
    p = rng.integers(-20, 21, size=(50, 500)) / scale
    q = rng.integers(-5, 30, size=(30, 500)) / scale
    assert_matches_reference(p, q)


def test_samples_exactly_on_linspace_edges():
    """Samples drawn from numpy's own edges, where the floor estimate needs correcting."""
    rng = np.random.default_rng(0)
    n = 600
    lo = rng.uniform(-5, 0, n)
    hi = lo + rng.choice([0.1, 0.3, 1 / 3, 0.7, 1.1, 3.0, 7.0], n)
    edges = np.stack([np.linspace(a, b, 21) for a, b in zip(lo, hi, strict=True)], axis=1)
    # the naive estimate floor((x - lo) / (hi - lo) * 20) is wrong for some interior edges
    naive = (((edges - lo) / (hi - lo)) * 20).astype(np.int64)[1:-1]
    assert np.any(naive != np.arange(1, 20)[:, None])
    cols = np.arange(n)
    p = edges[rng.integers(0, 21, size=(40, n)), cols]  # (40, n)
    q = edges[rng.integers(0, 21, size=(25, n)), cols]  # (25, n)
    p[0], p[1] = lo, hi  # the joint range is exactly [lo, hi]
    assert_matches_reference(p, q)


def test_constant_rows_and_single_value():
    rng = np.random.default_rng(5)
    p = rng.normal(size=(20, 40))
    q = rng.normal(size=(30, 40))
    p[:, :5] = 1.5  # P constant, Q not
    q[:, 5:10] = -0.25  # Q constant, P not
    p[:, 10:15] = 3.0  # both constant at the same value → 0
    q[:, 10:15] = 3.0
    p[:, 15:20] = 2.0  # both constant, different values
    q[:, 15:20] = -2.0
    out = assert_matches_reference(p, q)
    assert np.all(out[10:15] == 0.0)
    assert np.all(out[:10] > 0)


def test_clipping_beyond_100():
    rng = np.random.default_rng(6)
    p = rng.normal(scale=150, size=(30, 200))
    q = rng.normal(scale=150, size=(20, 200))
    p[:, :10] = 1e6  # all clipped to 100: equal to q's clipped samples below
    q[:, :10] = 500.0
    p[:, 10:20] = np.inf  # ±inf clips too
    q[:, 10:20] = -np.inf
    out = assert_matches_reference(p, q)
    assert np.all(out[:10] == 0.0)
    # P all at +100, Q all at -100: q = (1, …, 1e-5) renormalized → ln((1 + 1e-5) / 1e-5)
    np.testing.assert_allclose(out[10:20], math.log((1 + 1e-5) / 1e-5), rtol=1e-12)
    np.testing.assert_allclose(out, assert_matches_reference(p.clip(-100, 100), q), atol=TOL)


def test_float32_and_integer_inputs():
    rng = np.random.default_rng(7)
    p = rng.normal(size=(10, 60)).astype(np.float32)
    q = rng.integers(-3, 3, size=(12, 60))
    assert_matches_reference(p, q)


def test_identical_samples_give_zero():
    rng = np.random.default_rng(8)
    p = rng.normal(size=(25, 100))
    # zero up to the rounding of q / sum(q)
    np.testing.assert_allclose(klom(p, p.copy()), 0.0, atol=1e-15)
    np.testing.assert_allclose(klom(p, np.concatenate([p, p])), 0.0, atol=1e-15)


def test_closed_form_small_case():
    """P all in the first bin; Q half there, half in the last bin."""
    p = np.zeros((4, 1))
    q = np.array([[0.0], [0.0], [1.0], [1.0]])
    # p = (1, 0, …, 0); q = (0.5, 0, …, 0.5), no flooring needed → KL = ln(1 / 0.5)
    assert klom(p, q)[0] == pytest.approx(math.log(2), abs=1e-15)
    # reversed: p = (0.5, …, 0.5), q = (1, 0, …, 0); q's last bin floored to 1e-5, renormalized
    qn = np.array([1.0, 1e-5]) / (1 + 1e-5)
    expected = 0.5 * math.log(0.5 / qn[0]) + 0.5 * math.log(0.5 / qn[1])
    assert klom(q, p)[0] == pytest.approx(expected, abs=1e-12)
    assert klom_reference(q, p)[0] == pytest.approx(expected, abs=1e-12)


def test_torch_input_matches_numpy():
    rng = np.random.default_rng(9)
    p = rng.normal(size=(15, 80))
    q = rng.normal(size=(9, 80))
    expected = klom(p, q)
    out = klom(torch.from_numpy(p).float(), torch.from_numpy(q).float())
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, klom(p.astype(np.float32), q.astype(np.float32)), atol=0)
    np.testing.assert_allclose(klom(torch.from_numpy(p), torch.from_numpy(q)), expected, atol=0)


def test_torch_kernel_matches_reference():
    """The torch kernel (used for CUDA tensors) run on the CPU, edge-heavy data."""
    import core.evaluation.klom as m

    rng = np.random.default_rng(14)
    p = rng.integers(-20, 21, size=(50, 700)) / 7
    q = rng.normal(size=(40, 700))
    q[:, :50] = 1.0
    p[:, :25] = 1.0
    tp, tq = torch.from_numpy(p), torch.from_numpy(q)
    out = m._klom_rows(m._TORCH, tp, tq, 20, 100.0, 1e-5)
    np.testing.assert_allclose(out, klom_reference(p, q), rtol=0, atol=TOL)


@pytest.mark.gpu
def test_cuda_matches_reference():
    rng = np.random.default_rng(10)
    p = rng.integers(-20, 21, size=(50, 3000)) / 7
    q = rng.normal(size=(40, 3000))
    out = klom(torch.from_numpy(p).cuda(), torch.from_numpy(q).cuda())
    np.testing.assert_allclose(out, klom_reference(p, q), rtol=0, atol=TOL)


def test_chunking_does_not_change_results(monkeypatch):
    import core.evaluation.klom as m

    rng = np.random.default_rng(11)
    p, q = rng.normal(size=(7, 333)), rng.normal(size=(5, 333))
    full = klom(p, q)
    monkeypatch.setattr(m, "_KLOM_CHUNK_ELEMENTS", 50)  # 4 points per chunk
    np.testing.assert_array_equal(klom(p, q), full)


@pytest.mark.parametrize(
    ("p", "q", "msg"),
    [
        (np.zeros((3, 4)), np.zeros((3, 5)), "different points"),
        (np.zeros(4), np.zeros((3, 4)), "2-D"),
        (np.zeros((3, 4, 1)), np.zeros((3, 4)), "2-D"),
        (np.zeros((0, 4)), np.zeros((3, 4)), "empty"),
        (np.zeros((3, 0)), np.zeros((3, 0)), "empty"),
        (np.array([[0.0, np.nan]]), np.zeros((2, 2)), "NaN"),
        (np.zeros((2, 2)), torch.tensor([[0.0, float("nan")]]), "NaN"),
        ([["a", "b"]], np.zeros((1, 2)), "numbers"),
    ],
)
def test_bad_inputs_raise(p, q, msg):
    with pytest.raises(ConfigError, match=msg):
        klom(p, q)
    with pytest.raises(ConfigError, match=msg):
        klom_reference(p, q)


@pytest.mark.parametrize("kw", [{"bins": 0}, {"clip": -1.0}, {"eps": 0.0}, {"bins": 2.5}])
def test_bad_parameters_raise(kw):
    with pytest.raises(ConfigError):
        klom(np.zeros((2, 2)), np.ones((2, 2)), **kw)


# ----------------------------------------------------------------------------- noise floor


def test_split_halves_and_noise_floor():
    rng = np.random.default_rng(12)
    oracle = rng.normal(size=(9, 50))
    a, b = split_halves(oracle, seed=3)
    assert a.shape == (4, 50) and b.shape == (5, 50)
    rows = {tuple(r) for r in np.concatenate([a, b])}
    assert rows == {tuple(r) for r in oracle}  # disjoint and complete
    a2, _ = split_halves(oracle, seed=3)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(noise_floor(a, b), klom(a, b))
    with pytest.raises(ConfigError, match="at least 2"):
        split_halves(oracle[:1])


# ----------------------------------------------------------------------------- splits, summaries


def test_split_indices():
    s = split_indices(10, 3, [7, 2, 2])
    np.testing.assert_array_equal(s["forget"], [2, 7])
    np.testing.assert_array_equal(s["retain"], [0, 1, 3, 4, 5, 6, 8, 9])
    np.testing.assert_array_equal(s["val"], [10, 11, 12])
    assert all(v.dtype == np.int64 for v in s.values())
    with pytest.raises(ConfigError, match="outside"):
        split_indices(10, 3, [10])


def test_split_summary_matches_percentile():
    rng = np.random.default_rng(13)
    values = rng.exponential(size=200)
    splits = split_indices(150, 50, np.arange(0, 150, 7))
    splits["empty"] = np.array([], dtype=np.int64)
    mask = np.zeros(200, dtype=bool)
    mask[::3] = True
    splits["masked"] = mask
    out = split_summary(values, splits)
    for name in ("forget", "retain", "val", "masked"):
        x = values[splits[name]]
        assert out[name]["count"] == x.size
        assert out[name]["mean"] == pytest.approx(x.mean())
        for key, pct in (("p50", 50), ("p95", 95), ("p99", 99)):
            assert out[name][key] == pytest.approx(np.percentile(x, pct))
    assert out["empty"]["count"] == 0 and math.isnan(out["empty"]["p95"])
    with pytest.raises(ConfigError, match="outside"):
        split_summary(values, {"bad": [200]})


def test_accuracy_and_split_accuracy():
    c = np.array([[True, False, True, False], [True, True, False, True]])
    np.testing.assert_allclose(accuracy_from_correct(c), [0.5, 0.75])
    acc = split_accuracy(c, {"a": [0, 1], "b": [2, 3]})
    assert acc == {"a": pytest.approx(0.75), "b": pytest.approx(0.5)}
    with pytest.raises(ConfigError, match="bool"):
        split_accuracy(c.astype(float), {"a": [0]})  # margins are not correctness


def test_argmax_accuracy_differs_from_positive_margins():
    """Review item: accuracy was the share of margins > 0 (p_y > ½), not argmax accuracy.

    Logits (2.0, 1.9, 1.8): the label 0 is the argmax, yet its margin
    2.0 − log(e^1.9 + e^1.8) < 0; a naive loop over argmax counts it as correct.
    """
    import torch

    from core.zoo.margins import margins_from_logits

    z = torch.tensor([[[2.0, 1.9, 1.8], [0.1, 3.0, 0.0], [5.0, 0.0, 0.0]]])  # (1 model, 3, K)
    y = torch.tensor([0, 1, 2])
    m = margins_from_logits(z, y)[0]
    correct = (z.argmax(-1) == y).numpy()
    naive = [int(np.argmax(z[0, j].numpy()) == y[j]) for j in range(3)]
    assert m[0] < 0 and correct[0, 0]  # the case the old accuracy got wrong
    assert (
        accuracy_from_correct(correct)[0] == pytest.approx(np.mean(naive)) == pytest.approx(2 / 3)
    )
    assert (m > 0).float().mean().item() == pytest.approx(1 / 3)


def test_margin_gap_sign():
    oracle = np.zeros((4, 3))
    unlearned = np.array([[2.0, -1.0, 0.0], [4.0, -3.0, 0.0]])
    gap = margin_gap(unlearned, oracle)
    np.testing.assert_allclose(gap, [3.0, -2.0, 0.0])
    assert gap[0] > 0  # still more confident than the oracle: under-unlearned
    assert gap[1] < 0  # less confident than the oracle: over-unlearned


def test_margins_from_logits():
    logits = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 3.0, 3.0]]])  # (1 model, 2 points, 3)
    labels = torch.tensor([0, 2])
    m = margins_from_logits(logits, labels)
    expected0 = 2.0 - math.log(math.exp(0.0) + math.exp(1.0))
    expected1 = 3.0 - math.log(math.exp(0.0) + math.exp(3.0))
    torch.testing.assert_close(m, torch.tensor([[expected0, expected1]]))


class _ReciprocalDiv(torch.Tensor):
    """A tensor whose division by a Python number multiplies by the reciprocal, as torch's
    CUDA kernels do (they do not round like a true division): a CPU stand-in for a GPU."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.Tensor.__truediv__, torch.Tensor.div, torch.div) and isinstance(
            args[1], int | float
        ):
            return super().__torch_function__(torch.mul, types, (args[0], 1.0 / args[1]), kwargs)
        return super().__torch_function__(func, types, args, kwargs)


def test_klom_binning_survives_reciprocal_scalar_division():
    """Defect found on an H200: with bin width (hi − lo) / bins computed as a multiplication by
    1/bins, edges moved by an ulp and samples on edges changed bins (test_cuda_matches_reference
    failed). The edges now divide by an array."""
    import core.evaluation.klom as m

    x = torch.tensor([3.0], dtype=torch.float64).as_subclass(_ReciprocalDiv)
    assert (x / 20).item() != 3.0 / 20  # the stand-in does round differently
    rng = np.random.default_rng(10)
    p = rng.integers(-20, 21, size=(50, 3000)) / 7
    q = rng.normal(size=(40, 3000))
    tp = torch.from_numpy(p).as_subclass(_ReciprocalDiv)
    tq = torch.from_numpy(q).as_subclass(_ReciprocalDiv)
    out = m._klom_rows(m._TORCH, tp, tq, 20, 100.0, 1e-5)
    np.testing.assert_allclose(out, klom_reference(p, q), rtol=0, atol=TOL)
