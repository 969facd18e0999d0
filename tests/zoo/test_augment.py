"""The fast recipe's parts: augmentation on the device (exact, per model), recipe identity
kept for stored sets, bf16 and channels_last only on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.common.errors import ConfigError
from core.zoo.augment import augment, draw, flip_translate
from core.zoo.data import load_dataset
from core.zoo.ensemble import train_ensemble
from core.zoo.recipe import TrainConfig, default_train_config


def _reference(x, flip, shift, t, pad):
    """One example at a time: mirror, pad, crop the shifted window."""
    out = torch.empty_like(x)
    mode = "reflect" if pad == "reflect" else "constant"
    n, b, _, h, w = x.shape
    for i in range(n):
        for j in range(b):
            img = x[i, j].flip(-1) if flip[i, j] else x[i, j]
            p = F.pad(img[None], (t, t, t, t), mode=mode)[0]
            sy, sx = (int(v) for v in shift[i, j])
            out[i, j] = p[:, sy : sy + h, sx : sx + w]
    return out


@pytest.mark.parametrize("pad", ["reflect", "zeros"])
@pytest.mark.parametrize("t", [0, 1, 2])
def test_flip_translate_matches_a_loop(pad, t):
    x = torch.randn(3, 5, 2, 6, 7)
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    flip, shift = draw(gens, 5, t)
    assert shift.min() >= 0 and shift.max() <= 2 * t and flip.dtype == torch.bool
    got = flip_translate(x, flip, shift, t, pad)
    assert torch.equal(got, _reference(x, flip, shift, t, pad))


def test_identity_and_per_model_draws():
    x = torch.randn(2, 4, 3, 8, 8)
    none = flip_translate(x, torch.zeros(2, 4, dtype=torch.bool), torch.full((2, 4, 2), 2), 2,
                          "reflect")  # fmt: skip
    assert torch.equal(none, x)  # no mirror, centred window
    both = augment(x, [torch.Generator().manual_seed(s) for s in (7, 8)], 2, "reflect")
    alone = augment(x[:1], [torch.Generator().manual_seed(7)], 2, "reflect")
    assert torch.equal(both[:1], alone)  # model 0's draws do not depend on model 1
    with pytest.raises(ValueError):
        flip_translate(x, *draw([torch.Generator()] * 2, 4, 1), 1, "wrap")


def test_recipe_ids_of_stored_sets_are_kept():
    """Fields added to the recipe enter its id only when they differ from the value every set
    stored before them was trained with."""
    d = default_train_config
    assert d("digits").recipe_id() == "r-8f4ceda4a2c4"
    assert d("digits", "cnn").recipe_id() == "r-e659a647f7c7"
    assert d("digits").replace(epochs=2).recipe_id() == "r-39a29eeef32c"
    old_cifar = d("cifar10").replace(augment=False)
    assert old_cifar.recipe_id() == "r-36829db9009a"  # the cifar10 default before augmentation
    stored = {k: v for k, v in old_cifar.to_dict().items() if k not in TrainConfig._ADDED}
    assert TrainConfig.from_dict(stored).recipe_id() == "r-36829db9009a"
    ids = {d("cifar10").recipe_id(), d("cifar10").replace(augment_pad="zeros").recipe_id(),
           d("cifar10").replace(translate=4).recipe_id(), old_cifar.recipe_id()}  # fmt: skip
    assert len(ids) == 4 and d("cifar10").augment
    for bad in ({"augment_pad": "wrap"}, {"translate": -1}, {"translate": 9}, {"augment": 1}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_augmented_training_is_exact_and_per_model(digits):
    cfg = TrainConfig(arch="cnn", epochs=1, batch_size=128, augment=True)
    masks = np.ones((3, digits.n_train), dtype=bool)
    a = train_ensemble(digits, masks, [1, 2, 3], cfg)
    b = train_ensemble(digits, masks, [1, 2, 3], cfg)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k  # CPU: bitwise the same
    alone = train_ensemble(digits, masks[:1], [2], cfg)
    # grouped convs of 3 or 1 models sum in other orders (float32), hence the tolerance
    np.testing.assert_allclose(a.margins(digits.x_val, digits.y_val)[1],
                               alone.margins(digits.x_val, digits.y_val)[0], atol=1e-3)  # fmt: skip
    plain = train_ensemble(digits, masks[:1], [2], cfg.replace(augment=False))
    assert not torch.equal(plain.state_dict()["fc.weight"], alone.state_dict()["fc.weight"])
    mlp = train_ensemble(digits, masks[:1], [2], TrainConfig(epochs=1, augment=True))
    assert np.isfinite(mlp.margins(digits.x_val, digits.y_val)).all()  # autograd path


@pytest.mark.gpu
def test_cuda_recipe_bf16_channels_last_and_exact_draws():
    x = torch.randn(2, 8, 3, 32, 32)
    flip, shift = draw([torch.Generator().manual_seed(s) for s in (0, 1)], 8, 2)
    on_gpu = flip_translate(x.cuda(), flip, shift, 2, "reflect").cpu()
    assert torch.equal(on_gpu, flip_translate(x, flip, shift, 2, "reflect"))  # gathers: exact
    data = load_dataset("digits", "cuda")
    cfg = TrainConfig(arch="cnn", epochs=2, augment=True, mixed_precision=True)
    ens = train_ensemble(data, np.ones((4, data.n_train), dtype=bool), [0, 1, 2, 3], cfg)
    assert ens.accuracy(data.x_val, data.y_val).mean() > 0.5
    x_in = ens.net.kit.image_in(data.x_val[:4].expand(4, 4, 1, 8, 8))  # (B, N*C, H, W)
    assert x_in.is_contiguous(memory_format=torch.channels_last)
