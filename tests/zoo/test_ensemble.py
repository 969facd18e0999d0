"""Training and evaluating N models at once: determinism, independence, agreement, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.common.errors import ConfigError
from core.zoo.data import Dataset, load_dataset
from core.zoo.ensemble import Cancelled, Ensemble, train_ensemble
from core.zoo.margins import margins_from_logits
from core.zoo.recipe import TrainConfig, default_train_config, random_subset_masks

QUICK = TrainConfig(epochs=3)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _full(n: int, d: Dataset) -> np.ndarray:
    return np.ones((n, d.n_train), dtype=bool)


def test_same_seeds_same_weights(digits):
    masks = random_subset_masks(3, digits.n_train, 0.5, seed=1)
    a = train_ensemble(digits, masks, [5, 6, 7], QUICK)
    b = train_ensemble(digits, masks, [5, 6, 7], QUICK)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    np.testing.assert_array_equal(
        a.margins(digits.x_val, digits.y_val), b.margins(digits.x_val, digits.y_val)
    )
    c = train_ensemble(digits, masks, [5, 6, 8], QUICK)
    assert not np.allclose(
        a.margins(digits.x_val, digits.y_val)[2], c.margins(digits.x_val, digits.y_val)[2]
    )


@pytest.mark.parametrize("fast", [True, False])
def test_model_independent_of_siblings(digits, fast):
    cfg = QUICK.replace(fast_path=fast)
    masks = random_subset_masks(4, digits.n_train, 0.5, seed=2)
    together = train_ensemble(digits, masks, [10, 11, 12, 13], cfg)
    alone = train_ensemble(digits, masks[2:3], [12], cfg)
    chunked = train_ensemble(digits, masks, [10, 11, 12, 13], cfg.replace(model_chunk=3))
    m_all = together.margins(digits.x_val, digits.y_val)
    np.testing.assert_allclose(m_all[2], alone.margins(digits.x_val, digits.y_val)[0], atol=1e-5)
    np.testing.assert_allclose(m_all, chunked.margins(digits.x_val, digits.y_val), atol=1e-5)


def test_fast_mlp_path_matches_autograd(digits):
    masks = random_subset_masks(3, digits.n_train, 0.5, seed=3)
    for ls in (0.0, 0.2):
        cfg = QUICK.replace(label_smoothing=ls)
        fast = train_ensemble(digits, masks, [1, 2, 3], cfg)
        slow = train_ensemble(digits, masks, [1, 2, 3], cfg.replace(fast_path=False))
        for k, v in fast.state_dict().items():
            torch.testing.assert_close(v, slow.state_dict()[k], atol=1e-4, rtol=1e-4)


def test_excluded_class_is_not_learned(digits):
    y = digits.y_train.numpy()
    keep = np.flatnonzero(y != 3)
    rng = np.random.default_rng(0)
    masks = np.zeros((3, digits.n_train), dtype=bool)
    masks[0, keep] = True  # model 0 never sees a 3
    for i in (1, 2):
        masks[i, rng.choice(digits.n_train, size=len(keep), replace=False)] = True
    ens = train_ensemble(digits, masks, [0, 1, 2], TrainConfig(epochs=10))
    threes = digits.y_val == 3
    acc = ens.accuracy(digits.x_val[threes], digits.y_val[threes])
    assert acc[0] < 0.05 and acc[1] > 0.8 and acc[2] > 0.8


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_vectorized_margins_equal_single_models(digits, arch):
    ens = train_ensemble(digits, _full(3, digits), [0, 1, 2], QUICK.replace(arch=arch, epochs=1))
    x, y = digits.x_val, digits.y_val
    margins = ens.margins(x, y, chunk=100)  # (3, n_val)
    assert margins.shape == (3, digits.n_val) and margins.dtype == np.float32
    for i in range(3):
        with torch.no_grad():
            zi = ens.model(i)(x)  # (n_val, K), plain torch layers, eval mode
        np.testing.assert_allclose(margins[i], margins_from_logits(zi, y).numpy(), atol=1e-4)
    feats = ens.features(x[:5])
    assert feats.shape[:2] == (3, 5)


def test_margins_from_logits_naive():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 7, 4)).astype(np.float32) * 5
    z[0, 0] = [1000.0, -1000.0, 3.0, 999.0]  # large values stay finite
    y = rng.integers(0, 4, size=7)
    y[0] = 0
    got = margins_from_logits(torch.from_numpy(z), torch.from_numpy(y)).numpy()
    for m in range(2):
        for p in range(7):
            others = np.delete(z[m, p].astype(np.float64), y[p])
            top = others.max()
            expect = z[m, p, y[p]] - (top + np.log(np.exp(others - top).sum()))
            assert abs(got[m, p] - expect) < 1e-4 * max(1.0, abs(expect))


def test_state_roundtrip_select_concat(digits, tmp_path):
    ens = train_ensemble(digits, _full(3, digits), [0, 1, 2], QUICK.replace(arch="cnn", epochs=1))
    torch.save(ens.state_dict(), tmp_path / "w.pt")
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    back = Ensemble.from_state("cnn", state, digits.input_shape, digits.num_classes, "cpu")
    m = ens.margins(digits.x_val, digits.y_val)
    np.testing.assert_array_equal(back.margins(digits.x_val, digits.y_val), m)
    sub = ens.select([2, 0])
    np.testing.assert_array_equal(sub.margins(digits.x_val, digits.y_val), m[[2, 0]])
    joined = Ensemble.concat([sub, ens.select([1])])
    assert joined.n_models == 3
    np.testing.assert_array_equal(joined.margins(digits.x_val, digits.y_val), m[[2, 0, 1]])
    assert ens.accuracy(digits.x_val, digits.y_val).shape == (3,)


def test_forward_train_for_custom_losses(digits):
    ens = train_ensemble(digits, _full(2, digits), [0, 1], QUICK.replace(epochs=1))
    x = digits.x_train[:8].unsqueeze(0).expand(2, -1, -1, -1, -1)  # (2, 8, 1, 8, 8)
    z = ens.forward_train(x)
    assert z.shape == (2, 8, 10)
    z.sum().backward()
    assert all(p.grad is not None for p in ens.parameters())


def _tiny_images(n_train: int = 6) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + 2, 3, 32, 32, generator=g)
    y = torch.arange(n_train + 2) % 10
    raw = np.zeros((n_train + 2, 32, 32, 3), dtype=np.uint8)
    names = [str(i) for i in range(10)]
    return Dataset(
        "cifar10",
        x[:n_train],
        y[:n_train],
        x[n_train:],
        y[n_train:],
        names,
        raw[:n_train],
        raw[n_train:],
    )


@pytest.mark.parametrize("arch", ["cnn", "resnet9"])
def test_conv_ensemble_trains(arch):
    data = _tiny_images() if arch == "resnet9" else load_dataset("digits")
    b = data.n_train // 2  # two steps: the schedule is epochs × ⌊n_train / batch⌋
    cfg = default_train_config(data.name, arch).replace(epochs=1, batch_size=b, model_chunk=2)
    masks = np.zeros((2, data.n_train), dtype=bool)
    masks[:, :b] = True
    before = train_ensemble(data, masks, [0, 1], cfg.replace(lr=1e-9))
    ens = train_ensemble(data, masks, [0, 1], cfg)
    assert ens.n_models == 2
    name = "prep.conv.weight" if arch == "resnet9" else "layer1.conv.weight"
    assert not torch.equal(before.state_dict()[name], ens.state_dict()[name])
    assert (
        ens.state_dict()[
            "layer1.bn.num_batches_tracked" if arch == "cnn" else "prep.bn.num_batches_tracked"
        ]
        == 2
    ).all()
    assert np.isfinite(ens.margins(data.x_val, data.y_val)).all()


def test_schedule_is_fixed_whatever_the_mask_size(digits):
    """Review item: steps depended on each set's size (630 originals, 600 random-10 oracles,
    570 class3-half) and each epoch skipped the ragged rest. Now every model of a recipe takes
    epochs × ⌊n_train / batch⌋ steps, whatever its mask."""
    totals = {}
    for size in (digits.n_train, digits.n_train - 10, digits.n_train - 77, 64):
        masks = np.zeros((2, digits.n_train), dtype=bool)
        masks[:, :size] = True
        seen = []
        train_ensemble(
            digits, masks, [0, 1], QUICK, progress=lambda s, t, seen=seen: seen.append(t)
        )
        totals[size] = seen[-1]
    assert set(totals.values()) == {QUICK.epochs * (digits.n_train // QUICK.batch_size)}


@pytest.mark.parametrize(
    "m,batch,steps", [(1337, 64, 630), (100, 64, 7), (64, 64, 5), (673, 50, 33)]
)
def test_stream_sees_every_point_equally_often(m, batch, steps):
    """Each model's batches are slices of a stream of its own permutations: over T steps a
    point of a mask of size m is drawn ⌊T·B/m⌋ or ⌈T·B/m⌉ times, never skipped, never ragged;
    the stream is a model's alone (same generator seed → same stream, whatever its siblings)."""
    from core.zoo.ensemble import _batches

    pools = torch.stack([torch.arange(m) * 2, torch.arange(m) * 2 + 1])  # (2, m) disjoint
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    batches = list(_batches(pools, gens, steps, batch, torch.device("cpu")))
    assert len(batches) == steps and all(b.shape == (2, batch) for b in batches)
    drawn = torch.stack(batches, 1).reshape(2, -1)  # (2, T·B)
    for n in range(2):
        counts = np.bincount(drawn[n].numpy(), minlength=2 * m)[n::2]  # model n's pool
        lo = steps * batch // m
        assert counts.min() >= lo and counts.max() <= lo + 1 and counts.sum() == steps * batch
        # each full pass is a permutation: the first m draws hold every point once
        assert sorted(drawn[n, :m].tolist()) == pools[n].tolist()
    alone = list(_batches(pools[1:], [torch.Generator().manual_seed(4)], steps, batch, "cpu"))
    assert torch.equal(torch.stack(alone, 1)[0], torch.stack(batches, 1)[1])


def test_progress_and_cancel(digits):
    seen = []
    train_ensemble(
        digits, _full(2, digits), [0, 1], QUICK, progress=lambda s, t: seen.append((s, t))
    )
    assert seen[-1][0] == seen[-1][1] == 3 * (digits.n_train // 64)
    with pytest.raises(Cancelled):
        train_ensemble(digits, _full(2, digits), [0, 1], QUICK, should_stop=lambda: True)


def test_digits_default_accuracy(digits):
    ens = train_ensemble(digits, _full(8, digits), list(range(8)), default_train_config("digits"))
    assert ens.accuracy(digits.x_val, digits.y_val).mean() >= 0.95


def test_bad_inputs(digits):
    full = _full(2, digits)
    ragged = full.copy()
    ragged[1, 0] = False
    with pytest.raises(ConfigError, match="same number"):
        train_ensemble(digits, ragged, [0, 1], QUICK)
    with pytest.raises(ConfigError):
        train_ensemble(digits, full[:0], [], QUICK)
    with pytest.raises(ConfigError, match="seeds"):
        train_ensemble(digits, full, [0], QUICK)
    small = np.zeros_like(full)
    small[:, :10] = True
    with pytest.raises(ConfigError, match="batch_size"):
        train_ensemble(digits, small, [0, 1], QUICK)
    for frac in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError):
            random_subset_masks(2, 100, frac, seed=0)
    with pytest.raises(ConfigError):
        random_subset_masks(0, 100, 0.5, seed=0)
    masks = random_subset_masks(4, 101, 0.5, seed=0)
    assert masks.shape == (4, 101) and (masks.sum(1) == 50).all()
    for bad in (
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"arch": "vit"},
        {"dataset": "mnist"},
        {"momentum": 1.0},
    ):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)
    with pytest.raises(ConfigError):
        default_train_config("mnist")
    assert TrainConfig.from_dict(QUICK.to_dict()) == QUICK


@pytest.mark.gpu
def test_bf16_training_on_cuda():
    data = load_dataset("digits", "cuda")
    cfg = TrainConfig(arch="cnn", epochs=2, mixed_precision=True)
    ens = train_ensemble(data, _full(4, data), [0, 1, 2, 3], cfg)
    m = ens.margins(data.x_val, data.y_val)
    assert m.shape == (4, data.n_val) and np.isfinite(m).all()
    assert ens.accuracy(data.x_val, data.y_val).mean() > 0.5
    z = ens.logits(data.x_val, mixed_precision=True)
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
