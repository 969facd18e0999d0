"""Train and evaluate N independent models at once, as one stacked computation.

Model n has its own seed (a ``torch.Generator`` that draws its initial weights and then its
data order), its own training mask, and the recipe's fixed number of optimizer steps
(``TrainConfig.total_steps``, the same whatever the mask's size). Its batches are consecutive
slices of a continuous stream of its own permutations of its mask: a batch may span two
permutations, no batch is ragged and no point is skipped, so within a model every point is
seen either ⌊T·B/m⌋ or ⌈T·B/m⌉ times. Nothing couples the models, so model n's weights do not
depend on which other models share the call, and the same seeds, masks and config give
bitwise-equal weights (CPU).

The MLP trains through a hand-written forward/backward (``_mlp_fast``, no autograd); every
other architecture, and fine-tuning, goes through autograd on the stacked layers of
``core.zoo.models`` (``Ensemble.forward_train``). A test checks that the two paths agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.common.device import resolve_device
from core.common.errors import ConfigError, LabError
from core.common.sgd import SGD
from core.common.threads import training_threads
from core.zoo.augment import augment
from core.zoo.data import Dataset
from core.zoo.margins import margins_from_logits
from core.zoo.models import Net, build, initialised, single_state
from core.zoo.recipe import TrainConfig, lr_at


class Cancelled(LabError):
    """Training was stopped because ``should_stop()`` returned True."""


class Ensemble:
    """N models of one architecture, stacked: every parameter and buffer has a leading N dim."""

    def __init__(self, arch: str, net: Net, input_shape: Sequence[int], num_classes: int) -> None:
        self.arch, self.net = arch, net
        self.input_shape, self.num_classes = tuple(input_shape), int(num_classes)

    @property
    def n_models(self) -> int:
        return int(self.net.fc.weight.shape[0])

    @property
    def device(self) -> torch.device:
        return self.net.fc.weight.device

    def state_dict(self) -> dict[str, Tensor]:
        """The stacked state, ``{name: (n_models, ...)}``; safe for ``torch.load(weights_only=True)``."""
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    @classmethod
    def from_state(
        cls,
        arch: str,
        state: dict[str, Tensor],
        input_shape: Sequence[int],
        num_classes: int,
        device: torch.device | str | None = None,
    ) -> Ensemble:
        """Rebuild an ensemble from ``state_dict()`` output (and the data's shape and classes)."""
        n = int(next(iter(state.values())).shape[0])
        net = build(arch, tuple(input_shape), num_classes, n)
        net.load_state_dict(state)
        dev = resolve_device(device) if isinstance(device, str | None) else device
        return cls(arch, net.to(dev), input_shape, num_classes)

    def to(self, device: torch.device | str) -> Ensemble:
        self.net.to(device)
        return self

    def parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def forward_train(self, x: Tensor) -> Tensor:
        """Train-mode logits with autograd: ``(n_models, B, ...) → (n_models, B, K)``."""
        self.net.train()
        return self.net(x)

    @torch.no_grad()
    def _apply(self, fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int, amp: bool) -> Tensor:
        self.net.eval()
        outs = []
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if amp and self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        for s in range(0, x.shape[0], chunk):
            xb = x[s : s + chunk].to(self.device)
            with ctx:
                out = fn(xb.unsqueeze(0).expand(self.n_models, *xb.shape))  # (N, b, ...)
            outs.append(out.float())
        return torch.cat(outs, dim=1)

    def logits(self, x: Tensor, chunk: int = 2048, mixed_precision: bool = False) -> Tensor:
        """Eval-mode logits of every model on every point: ``(n, ...) → (n_models, n, K)``."""
        return self._apply(self.net, x, chunk, mixed_precision)

    def features(self, x: Tensor, chunk: int = 2048) -> Tensor:
        """Penultimate features ``(n_models, n, d)`` (eval mode)."""
        return self._apply(self.net.features, x, chunk, False)

    def margins(self, x: Tensor, y: Tensor, chunk: int = 2048) -> np.ndarray:
        """``(n_models, n)`` float32 margins ``z_y − logsumexp_{j≠y} z_j``."""
        return margins_from_logits(self.logits(x, chunk), y).cpu().numpy().astype(np.float32)

    def margins_and_correct(
        self, x: Tensor, y: Tensor, chunk: int = 2048
    ) -> tuple[np.ndarray, np.ndarray]:
        """One pass: ``(n_models, n)`` float32 margins and ``(n_models, n)`` bool
        correctness (the argmax logit is the label; ties go to the lowest class index)."""
        z = self.logits(x, chunk)  # (n_models, n, K)
        yd = y.to(z.device)
        margins = margins_from_logits(z, yd).cpu().numpy().astype(np.float32)
        return margins, (z.argmax(-1) == yd).cpu().numpy()

    def accuracy(self, x: Tensor, y: Tensor, chunk: int = 2048) -> np.ndarray:
        """``(n_models,)`` fraction of points whose argmax logit is the label."""
        pred = self.logits(x, chunk).argmax(-1)  # (n_models, n)
        return (pred == y.to(pred.device)).float().mean(1).cpu().numpy()

    def model(self, i: int) -> nn.Module:
        """A plain single-model module (standard torch layers) holding model i's weights."""
        if not 0 <= i < self.n_models:
            raise ConfigError(f"model index {i} is out of range (0..{self.n_models - 1})")
        single = build(self.arch, self.input_shape, self.num_classes)
        single.load_state_dict(single_state(self.net.state_dict(), i))
        return single.to(self.device).eval()

    def select(self, indices: Sequence[int]) -> Ensemble:
        """A new ensemble holding copies of the models at ``indices``, in that order."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        if idx.numel() == 0:
            raise ConfigError("select needs at least one model index")
        if idx.min() < 0 or idx.max() >= self.n_models:
            raise ConfigError(f"model indices must lie in 0..{self.n_models - 1}")
        state = {k: v[idx.to(v.device)] for k, v in self.net.state_dict().items()}
        return Ensemble.from_state(
            self.arch, state, self.input_shape, self.num_classes, self.device
        )

    @staticmethod
    def concat(parts: Sequence[Ensemble]) -> Ensemble:
        """Join ensembles of the same architecture and data shape, models in order."""
        if not parts:
            raise ConfigError("concat needs at least one ensemble")
        a = parts[0]
        for p in parts[1:]:
            if (p.arch, p.input_shape, p.num_classes) != (a.arch, a.input_shape, a.num_classes):
                raise ConfigError("cannot concat ensembles of different architectures or data")
        if len(parts) == 1:
            return a.select(range(a.n_models))
        states = [p.net.state_dict() for p in parts]
        state = {k: torch.cat([s[k].to(a.device) for s in states]) for k in states[0]}
        return Ensemble.from_state(a.arch, state, a.input_shape, a.num_classes, a.device)


# ---------------------------------------------------------------------------------------------
# Training


def _check_masks(masks: np.ndarray, seeds: Sequence[int], n_train: int, batch: int) -> int:
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != n_train or masks.dtype != bool:
        raise ConfigError(f"masks must be a bool array (n_models, {n_train}), got {masks.shape}")
    if masks.shape[0] < 1:
        raise ConfigError("number of models must be at least 1")
    if len(seeds) != masks.shape[0]:
        raise ConfigError(f"{len(seeds)} seeds given for {masks.shape[0]} masks")
    sizes = masks.sum(1)
    if (sizes != sizes[0]).any():
        raise ConfigError(
            f"every mask must select the same number of points (got {sizes.min()}..{sizes.max()})"
        )
    if sizes[0] < batch:
        raise ConfigError(f"masks select {sizes[0]} points, fewer than batch_size {batch}")
    return int(sizes[0])


class _Stream:
    """Each model's endless stream of permutations of its pool, read ``batch`` at a time.

    ``pools``: ``(N, m)`` train indices of every model's mask (all masks have size m, so every
    model is at the same position of its current permutation and the reads stay vectorized).
    A new permutation of model n is drawn from ``gens[n]`` only when the previous one is spent.
    """

    def __init__(self, pools: Tensor, gens: list[torch.Generator]) -> None:
        self.pools, self.gens = pools, gens
        self.rest = pools[:, :0]  # (N, r) indices of the current permutations not yet read

    def take(self, k: int) -> Tensor:
        """The next ``k`` indices of every model's stream, ``(N, k)``."""
        parts, need = [], k
        while need > 0:
            if self.rest.shape[1] == 0:
                m = self.pools.shape[1]
                perms = torch.stack([torch.randperm(m, generator=g) for g in self.gens])
                self.rest = self.pools.gather(1, perms)
            part = self.rest[:, :need]
            self.rest = self.rest[:, part.shape[1] :]
            parts.append(part)
            need -= part.shape[1]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _batches(pools: Tensor, gens: list, total: int, batch: int, dev: torch.device):
    """Yield ``total`` index batches ``(N, batch)`` on ``dev``, drawn a pass at a time."""
    stream = _Stream(pools, gens)
    per_block = max(1, pools.shape[1] // batch)  # about one pass over a mask per transfer
    for start in range(0, total, per_block):
        k = min(per_block, total - start)
        block = stream.take(k * batch).view(len(gens), k, batch).to(dev)  # (N, k, B)
        for s in range(k):
            yield block[:, s]


def train_ensemble(
    data: Dataset,
    masks: np.ndarray,
    seeds: Sequence[int],
    cfg: TrainConfig,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Ensemble:
    """Train ``len(seeds)`` models; model n on ``x_train[masks[n]]`` from seed ``seeds[n]``.

    Every model takes ``cfg.total_steps(n_train)`` steps on batches from its own stream (see
    the module docstring). Each minimizes its own mean (label-smoothed) cross-entropy per batch:
    ``g ← ∇ + wd·θ; v ← μv + g; θ ← θ − lr_t (g + μv)`` (Nesterov), ``lr_t`` from ``lr_at``.
    Models are trained ``cfg.model_chunk`` at a time and joined; the result does not depend on
    the chunking. ``progress(step, total)`` counts chunk-steps; ``should_stop()`` → ``Cancelled``.
    """
    dev = data.device if device is None else torch.device(device)
    if isinstance(device, str):
        dev = resolve_device(device)
    if cfg.schedule != "stream":
        raise ConfigError(
            "this recipe uses the per-epoch schedule of sets stored by an older version, which "
            "no longer trains; build a new set instead"
        )
    masks = np.asarray(masks)
    _check_masks(masks, seeds, data.n_train, cfg.batch_size)
    steps = cfg.total_steps(data.n_train)
    n = len(seeds)
    chunks = [range(s, min(s + cfg.model_chunk, n)) for s in range(0, n, cfg.model_chunk)]
    total = len(chunks) * steps
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    parts = []
    for c, idx in enumerate(chunks):
        offset = c * steps

        def tick(step: int, offset: int = offset) -> None:
            if should_stop is not None and should_stop():
                raise Cancelled("training was cancelled")
            if progress is not None and (step % max(1, total // 100) == 0 or step == total):
                progress(offset + step, total)

        net, gens = _init(data, [int(seeds[i]) for i in idx], cfg)
        pools = torch.from_numpy(np.stack([np.flatnonzero(masks[i]) for i in idx]))  # (N, m)
        net.to(dev)
        fast = cfg.arch == "mlp" and cfg.fast_path and not cfg.augment
        loop = _train_mlp_fast if fast else _train_autograd
        with _cpu_threads(dev, len(idx) * cfg.batch_size):
            loop(net, x, y, pools, gens, steps, cfg, tick)
        parts.append(Ensemble(cfg.arch, net, data.input_shape, data.num_classes))
    if progress is not None:
        progress(total, total)
    return parts[0] if len(parts) == 1 else Ensemble.concat(parts)


@contextlib.contextmanager
def _cpu_threads(dev: torch.device, work: int) -> Iterator[None]:
    """Train on the threads ``core.common.threads.training_threads`` picks for steps of ``work``
    examples (models × batch): one for small steps, else the cores that are idle now."""
    before = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(training_threads(work))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _init(data: Dataset, seeds: list[int], cfg: TrainConfig) -> tuple[Net, list]:
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    return initialised(cfg.arch, data.input_shape, data.num_classes, gens), gens


def _train_autograd(net, x, y, pools, gens, steps, cfg, tick) -> None:
    """Generic path: autograd through the stacked layers, SGD (``core.common.sgd``) on the stack."""
    n, b, k = len(gens), cfg.batch_size, net.fc.weight.shape[1]
    opt = SGD(
        net.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )  # fmt: skip
    amp = cfg.mixed_precision and x.device.type == "cuda"  # bf16 on CUDA only: CPU stays exact
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    net.train()
    total = steps
    for t, idx in enumerate(_batches(pools, gens, total, b, x.device)):  # idx (N, B)
        tick(t)
        xb = x[idx]  # (N, B, C, H, W)
        if cfg.augment:  # drawn from each model's generator (core.zoo.augment)
            xb = augment(xb, gens, cfg.translate, cfg.augment_pad)
        with ctx:
            z = net(xb)  # (N, B, K)
        # sum over models of each model's mean loss: the models' gradients stay separate
        loss = F.cross_entropy(
            z.float().reshape(n * b, k), y[idx].reshape(-1),
            label_smoothing=cfg.label_smoothing, reduction="sum",
        ) / b  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.lr = lr_at(t, total, cfg)
        opt.step()
    tick(total)


@torch.no_grad()
def _train_mlp_fast(net, x, y, pools, gens, steps, cfg, tick) -> None:
    """MLP path without autograd: the same math as ``_train_autograd``, written out by hand.

    Forward ``h = relu(x W1ᵀ + b1)``, ``z = h W2ᵀ + b2``; backward of the mean smoothed CE:
    ``dz = (softmax(z) − (1−ε)·onehot − ε/K) / B``, ``dW2 = dzᵀh``, ``dh = dz W2 ⊙ [h>0]``,
    ``dW1 = dhᵀx``. All buffers are allocated once; the SGD update is in place (``_foreach``).
    """
    n, b = len(gens), cfg.batch_size
    w1, b1, w2, b2 = net.fc1.weight, net.fc1.bias, net.fc.weight, net.fc.bias
    (_, hid, d), k = w1.shape, w2.shape[1]  # w1 (N, H, D), w2 (N, K, H)
    xf = x.reshape(x.shape[0], -1)  # (n_train, D)
    dev, f32 = x.device, dict(device=x.device, dtype=torch.float32)
    xb, h, dh = (torch.empty(n, b, c, **f32) for c in (d, hid, hid))  # (N, B, ·)
    z = torch.empty(n, k, b, **f32)  # logits transposed, (N, K, B): faster GEMMs for small K
    zmax, zsum = torch.empty(n, 1, b, **f32), torch.empty(n, 1, b, **f32)
    yb = torch.empty(n * b, dtype=torch.long, device=dev)
    eps = cfg.label_smoothing
    hit = torch.full((n, 1, b), -(1.0 - eps) / b, **f32)  # the one-hot part of dz
    params = [w1, b1, w2, b2]
    grads = [torch.zeros_like(p) for p in params]
    gw1, gb1, gw2, gb2 = grads
    bufs = [torch.zeros_like(p) for p in params]
    total, mu = steps, cfg.momentum
    relu_bwd = torch.ops.aten.threshold_backward.grad_input
    for t, idx in enumerate(_batches(pools, gens, total, b, dev)):  # idx (N, B)
        tick(t)
        flat = idx.reshape(-1)  # (N*B,)
        torch.index_select(xf, 0, flat, out=xb.view(n * b, d))
        torch.index_select(y, 0, flat, out=yb)
        torch.baddbmm(b1.unsqueeze(1), xb, w1.transpose(1, 2), out=h)  # (N, B, H)
        h.clamp_(min=0.0)
        torch.baddbmm(b2.unsqueeze(2), w2, h.transpose(1, 2), out=z)  # (N, K, B)
        torch.amax(z, dim=1, keepdim=True, out=zmax)
        z.sub_(zmax).exp_()
        torch.sum(z, dim=1, keepdim=True, out=zsum)
        z.div_(zsum.mul_(b))  # softmax / B
        if eps:
            z.sub_(eps / (k * b))
        z.scatter_add_(1, yb.view(n, 1, b), hit)  # dzᵀ, (N, K, B)
        torch.bmm(z, h, out=gw2)  # (N, K, H)
        torch.sum(z, dim=2, out=gb2)
        torch.bmm(z.transpose(1, 2), w2, out=dh)  # (N, B, H)
        relu_bwd(dh, h, 0.0, grad_input=dh)  # dh ⊙ [h > 0]
        torch.bmm(dh.transpose(1, 2), xb, out=gw1)  # (N, H, D)
        torch.sum(dh, dim=1, out=gb1)
        lr = lr_at(t, total, cfg)
        for p, g, v in zip(params, grads, bufs, strict=True):  # in place, as core.common.sgd.SGD
            if cfg.weight_decay:
                g.add_(p, alpha=cfg.weight_decay)  # g ← ∇ + wd·θ
            torch.add(g, v, alpha=mu, out=v)  # v ← μv + g
            if cfg.nesterov:
                p.add_(g.add_(v, alpha=mu), alpha=-lr)  # θ ← θ − lr (g + μv)
            else:
                p.add_(v, alpha=-lr)
    tick(total)
