"""Architectures by name (mlp, cnn, resnet9), each written once and built two ways.

Every architecture is a function of a *layer kit*. The single kit gives plain torch layers
(``nn.Linear``, ``nn.Conv2d``, ``nn.BatchNorm2d``) and takes input ``(B, C, H, W)``. The
batched kit gives layers that hold N independent models stacked on a leading dim and takes
input ``(N, B, C, H, W)``:

- linear: weight ``(N, out, in)``, computed with one ``baddbmm`` over the N models;
- conv: weight ``(N, out, in, k, k)``; activations live as ``(B, N*C, H, W)`` and the conv is
  one ``conv2d(..., groups=N)``, so model n only ever sees its own channel block;
- batch norm: over the ``N*C`` channels of that layout, so statistics stay per model.

Parameter and buffer names are identical in both builds and the stacked tensors are the single
tensors with a leading N, so model i of an ensemble is ``{k: v[i] for k, v in state.items()}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.common.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Batched layers: parameters carry a leading n_models dim.


class BLinear(nn.Module):
    """N linear maps: ``y[n] = x[n] @ W[n].T + b[n]`` for x ``(N, B, in)`` (``bias=False``:
    no ``b``)."""

    def __init__(self, n: int, d_in: int, d_out: int, bias: bool = True) -> None:
        super().__init__()
        self.n, self.fan_in = n, d_in
        self.weight = nn.Parameter(torch.zeros(n, d_out, d_in))  # (N, out, in)
        self.bias = nn.Parameter(torch.zeros(n, d_out)) if bias else None  # (N, out)

    def forward(self, x: Tensor) -> Tensor:  # (N, B, in) -> (N, B, out)
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    @torch.no_grad()
    def init_model(self, i: int, g: torch.Generator) -> None:
        """PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
        bound = 1.0 / math.sqrt(self.fan_in)
        self.weight[i].uniform_(-bound, bound, generator=g)
        if self.bias is not None:
            self.bias[i].uniform_(-bound, bound, generator=g)


class BConv2d(nn.Module):
    """N convolutions as one grouped conv over the ``(B, N*C, H, W)`` layout (no bias);
    ``k×k`` kernels, ``stride``, zero ``padding`` (default ``k // 2``: the size kept)."""

    def __init__(
        self, n: int, c_in: int, c_out: int, k: int = 3, stride: int = 1,
        padding: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.n, self.k, self.fan_in = n, k, c_in * k * k
        self.stride, self.padding = stride, k // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.zeros(n, c_out, c_in, k, k))  # (N, out, in, k, k)

    def forward(self, x: Tensor) -> Tensor:  # (B, N*in, H, W) -> (B, N*out, H', W')
        w = self.weight.reshape(-1, *self.weight.shape[2:])  # (N*out, in, k, k)
        return F.conv2d(x, w, stride=self.stride, padding=self.padding, groups=self.n)

    @torch.no_grad()
    def init_model(self, i: int, g: torch.Generator) -> None:
        bound = 1.0 / math.sqrt(self.fan_in)
        self.weight[i].uniform_(-bound, bound, generator=g)


class BBatchNorm2d(nn.Module):
    """Batch norm over ``(B, N*C, H, W)``: each model's channels keep their own statistics."""

    def __init__(self, n: int, c: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(n, c))  # (N, C)
        self.bias = nn.Parameter(torch.zeros(n, c))  # (N, C)
        self.register_buffer("running_mean", torch.zeros(n, c))  # (N, C)
        self.register_buffer("running_var", torch.ones(n, c))  # (N, C)
        self.register_buffer("num_batches_tracked", torch.zeros(n, dtype=torch.long))  # (N,)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        # views share storage, so F.batch_norm's in-place running-stat update lands in the buffers
        return F.batch_norm(
            x,
            self.running_mean.view(-1),
            self.running_var.view(-1),
            self.weight.view(-1),
            self.bias.view(-1),
            self.training,
            self.momentum,
            self.eps,
        )

    @torch.no_grad()
    def init_model(self, i: int, g: torch.Generator) -> None:
        self.weight[i].fill_(1.0)
        self.bias[i].zero_()


# ---------------------------------------------------------------------------------------------
# Kits: the same architecture code builds a single model or a stack of N.


class SingleKit:
    """Plain torch layers; activations ``(B, C, H, W)`` / ``(B, F)``."""

    n: int | None = None

    def linear(self, d_in: int, d_out: int, bias: bool = True) -> nn.Module:
        return nn.Linear(d_in, d_out, bias=bias)

    def conv(self, c_in: int, c_out: int, k: int = 3, stride: int = 1,
             padding: int | None = None) -> nn.Module:  # fmt: skip
        pad = k // 2 if padding is None else padding
        return nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, bias=False)

    def bn(self, c: int) -> nn.Module:
        return nn.BatchNorm2d(c)

    def image_in(self, x: Tensor) -> Tensor:  # (B, C, H, W)
        return x

    def flat_in(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C*H*W)
        return x.flatten(1)

    def conv_flat(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C*H*W)
        return x.flatten(1)

    def global_max(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C)
        return x.amax(dim=(2, 3))


class BatchedKit(SingleKit):
    """Stacked layers for N models; input ``(N, B, C, H, W)``, output ``(N, B, ...)``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def linear(self, d_in: int, d_out: int, bias: bool = True) -> nn.Module:
        return BLinear(self.n, d_in, d_out, bias)

    def conv(self, c_in: int, c_out: int, k: int = 3, stride: int = 1,
             padding: int | None = None) -> nn.Module:  # fmt: skip
        return BConv2d(self.n, c_in, c_out, k, stride, padding)

    def bn(self, c: int) -> nn.Module:
        return BBatchNorm2d(self.n, c)

    def image_in(self, x: Tensor) -> Tensor:  # (N, B, C, H, W) -> (B, N*C, H, W)
        n, b = x.shape[:2]
        out = x.transpose(0, 1).reshape(b, n * x.shape[2], *x.shape[3:])
        # channels_last on CUDA only (faster bf16 convolutions); the CPU path stays as it was
        return out.contiguous(memory_format=torch.channels_last) if out.is_cuda else out

    def flat_in(self, x: Tensor) -> Tensor:  # (N, B, C, H, W) -> (N, B, C*H*W)
        return x.flatten(2)

    def conv_flat(self, x: Tensor) -> Tensor:  # (B, N*C, H, W) -> (N, B, C*H*W)
        b = x.shape[0]
        return x.reshape(b, self.n, -1).transpose(0, 1)

    def global_max(self, x: Tensor) -> Tensor:  # (B, N*C, H, W) -> (N, B, C)
        b = x.shape[0]
        return x.amax(dim=(2, 3)).reshape(b, self.n, -1).transpose(0, 1)


# ---------------------------------------------------------------------------------------------
# Architectures


class Net(nn.Module):
    """Base: ``forward(x) = scale * fc(features(x))``; ``fc`` is the last linear layer."""

    scale: float = 1.0

    def features(self, x: Tensor) -> Tensor:  # penultimate features, (…, B, d)
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:  # (…, B, n_classes)
        z = self.fc(self.features(x))
        return z * self.scale if self.scale != 1.0 else z

    @torch.no_grad()
    def init_model(self, i: int, g: torch.Generator) -> None:
        """Draw fresh initial weights for model i of the stack from generator ``g``."""
        for m in self.modules():
            if m is not self and hasattr(m, "init_model"):
                m.init_model(i, g)


class MLP(Net):
    """flatten → fc1 Linear(d, 128) → ReLU → fc Linear(128, classes)."""

    def __init__(self, kit: SingleKit, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.kit = kit
        self.hidden = 128
        self.fc1 = kit.linear(math.prod(input_shape), self.hidden)
        self.fc = kit.linear(self.hidden, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return F.relu(self.fc1(self.kit.flat_in(x)))


class ConvBN(nn.Module):
    """conv k×k (→ 2×2 max-pool) → batch norm → ReLU (``k``, ``stride``, ``padding``: the
    conv's; default 3×3 keeping the size)."""

    def __init__(
        self, kit: SingleKit, c_in: int, c_out: int, pool: bool = False, k: int = 3,
        stride: int = 1, padding: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.conv, self.bn, self.pool = (
            kit.conv(c_in, c_out, k, stride, padding),
            kit.bn(c_out),
            pool,
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.pool:
            x = F.max_pool2d(x, 2)
        return F.relu(self.bn(x))


class CNN(Net):
    """Small convnet for 8×8 digits: ConvBN(32)+pool → ConvBN(64)+pool → linear."""

    def __init__(self, kit: SingleKit, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.kit = kit
        self.layer1 = ConvBN(kit, c, 32, pool=True)
        self.layer2 = ConvBN(kit, 32, 64, pool=True)
        self.fc = kit.linear(64 * (h // 4) * (w // 4), num_classes)

    def features(self, x: Tensor) -> Tensor:
        x = self.layer2(self.layer1(self.kit.image_in(x)))
        return self.kit.conv_flat(x)


class Residual(nn.Module):
    """x + ConvBN(ConvBN(x))."""

    def __init__(self, kit: SingleKit, c: int) -> None:
        super().__init__()
        self.a, self.b = ConvBN(kit, c, c), ConvBN(kit, c, c)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(self.a(x))


class ResNet9(Net):
    """The DAWNBench ResNet-9: prep 64, 128+pool+res, 256+pool, 512+pool+res, max, fc×0.125."""

    scale = 0.125

    def __init__(self, kit: SingleKit, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.kit = kit
        self.prep = ConvBN(kit, input_shape[0], 64)
        self.layer1 = nn.Sequential(ConvBN(kit, 64, 128, pool=True), Residual(kit, 128))
        self.layer2 = ConvBN(kit, 128, 256, pool=True)
        self.layer3 = nn.Sequential(ConvBN(kit, 256, 512, pool=True), Residual(kit, 512))
        self.fc = kit.linear(512, num_classes)

    def features(self, x: Tensor) -> Tensor:
        x = self.prep(self.kit.image_in(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.kit.global_max(x)


class ResNet9EasyDUB(Net):
    """EasyDUB's ResNet-9, whose pretrained checkpoints ``core.interchange.easydub`` loads: ConvBN 64 →
    ConvBN 128 (5×5, stride 2) → residual 128 → ConvBN 256 → 2×2 max-pool (after the ReLU) →
    residual 256 → ConvBN 128 (3×3, no padding) → global max → bias-free linear, logits × 0.2.

    It takes the lab's standardized images (``core.zoo.data``: mean and std of the train set) and
    first rescales them to EasyDUB's normalization, which divides by another per-channel std:
    ``x_easydub = x_lab · std_lab / std_easydub`` (the means are the same)."""

    scale = 0.2

    def __init__(self, kit: SingleKit, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        from core.zoo.data import CIFAR_STD

        c = input_shape[0]
        self.kit = kit
        ratio = (
            [a / b for a, b in zip(CIFAR_STD, EASYDUB_STD, strict=True)] if c == 3 else [1.0] * c
        )
        self.register_buffer("in_scale", torch.tensor(ratio).view(c, 1, 1), persistent=False)
        self.c1 = ConvBN(kit, c, 64)
        self.c2 = ConvBN(kit, 64, 128, k=5, stride=2, padding=2)
        self.res1 = Residual(kit, 128)
        self.c3 = ConvBN(kit, 128, 256)
        self.res2 = Residual(kit, 256)
        self.c4 = ConvBN(kit, 256, 128, padding=0)
        self.fc = kit.linear(128, num_classes, bias=False)

    def features(self, x: Tensor) -> Tensor:
        x = self.kit.image_in(x * self.in_scale)  # (…, C, H, W) · (C, 1, 1)
        x = self.res1(self.c2(self.c1(x)))
        x = self.res2(F.max_pool2d(self.c3(x), 2))
        return self.kit.global_max(self.c4(x))


EASYDUB_STD = (0.2023, 0.1994, 0.2010)  # EasyDUB's per-channel std of CIFAR-10 (means: ours)


# ---------------------------------------------------------------------------------------------
# Registry

ARCHITECTURES: dict[str, Callable[..., Net]] = {}


def register(fn: Callable[..., Net]) -> Callable[..., Net]:
    """Add an architecture builder ``fn(kit, input_shape, num_classes) -> Net`` under its name."""
    ARCHITECTURES[fn.__name__] = fn
    return fn


@register
def mlp(kit: SingleKit, input_shape: tuple[int, ...], num_classes: int) -> Net:
    return MLP(kit, input_shape, num_classes)


@register
def cnn(kit: SingleKit, input_shape: tuple[int, ...], num_classes: int) -> Net:
    return CNN(kit, input_shape, num_classes)


@register
def resnet9(kit: SingleKit, input_shape: tuple[int, ...], num_classes: int) -> Net:
    return ResNet9(kit, input_shape, num_classes)


@register
def resnet9_easydub(kit: SingleKit, input_shape: tuple[int, ...], num_classes: int) -> Net:
    return ResNet9EasyDUB(kit, input_shape, num_classes)


def check_arch(arch: str) -> None:
    """Raise ``ConfigError`` unless ``arch`` is a registered architecture."""
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {arch!r}: choose one of {', '.join(sorted(ARCHITECTURES))}"
        )


def build(
    arch: str, input_shape: tuple[int, ...], num_classes: int, n_models: int | None = None
) -> Net:
    """Build ``arch``: a plain single model (``n_models=None``) or a stack of ``n_models``.

    The single model maps ``(B, C, H, W) -> (B, K)``; the stack ``(N, B, C, H, W) -> (N, B, K)``.
    Stacked weights start at zero; call ``init_model(i, generator)`` for each model.
    """
    check_arch(arch)
    if n_models is not None and (isinstance(n_models, bool) or n_models < 1):
        raise ConfigError(f"number of models must be at least 1, got {n_models}")
    kit = SingleKit() if n_models is None else BatchedKit(int(n_models))
    return ARCHITECTURES[arch](kit, tuple(input_shape), int(num_classes))


def initialised(
    arch: str, input_shape: tuple[int, ...], num_classes: int, gens: list[torch.Generator]
) -> Net:
    """A stack of ``len(gens)`` models, model i's initial weights drawn from ``gens[i]``
    (``init_model``). Training starts from this (``core.zoo.ensemble``, each generator seeded with
    the model's seed), so a model's seed rebuilds its initial weights exactly."""
    net = build(arch, input_shape, num_classes, len(gens))
    for i, g in enumerate(gens):
        net.init_model(i, g)
    return net


def single_state(stacked: dict[str, Tensor], i: int) -> dict[str, Any]:
    """Model i's ``state_dict`` for the single build, taken from the stacked state."""
    return {k: v[i].clone() for k, v in stacked.items()}
