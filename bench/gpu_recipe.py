"""The CIFAR-10 recipe on one device: seconds per model and models per GPU-hour, one model and
many at once — stacked (grouped convolutions, as the lab trains) against concurrent streams.

    python bench/gpu_recipe.py --device cuda                  # stacked 1, 8, 16, 32; streams 8
    python bench/gpu_recipe.py --device cuda --full 1         # + one whole recipe run (accuracy)
    python bench/gpu_recipe.py --device cpu --tiny            # the same code, tiny, on the CPU

Data: CIFAR-10 where ``LAB_DATA_ROOT`` holds it; otherwise a synthetic set of CIFAR-10's shape
(50,000 + 10,000 standardized 3×32×32 images, ten classes: each class a fixed random smooth
template, each image its template plus noise), which costs the same arithmetic per step but
whose accuracy says nothing about CIFAR-10 (the output says which one ran).

The recipe is ``default_train_config("cifar10")`` (ResNet-9, 20 epochs of batch 512 = 1,940
steps per model, bf16 autocast and channels_last on CUDA, flip + translate on the device).

- stacked N: ``core.zoo.ensemble.train_ensemble`` with N models in one stacked computation; the
  time of steps ``warm+1 … warm+steps`` (device synchronized at both ends) gives seconds per
  step; seconds per model = s/step × 1,940 / N, plus the margins of all 60,000 points (timed:
  ``Ensemble.margins_and_correct`` as the zoo calls it).
- streams K: K ordinary single ResNet-9s (``nn.Conv2d``), each with its own optimizer, its
  steps issued round-robin on K CUDA streams from one thread (same batch, augmentation and
  precision); on the CPU the streams are a plain loop.
- ``--full N``: N models trained through the whole recipe by ``train_ensemble``; reports the
  wall time and the val accuracy (on the synthetic set: only a check that training learns).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.common.device import resolve_device  # noqa: E402
from core.common.errors import LabError  # noqa: E402
from core.zoo.augment import flip_translate  # noqa: E402
from core.zoo.data import CIFAR_MEAN, CIFAR_STD, Dataset, load_dataset  # noqa: E402
from core.zoo.ensemble import Cancelled, Ensemble, _init, train_ensemble  # noqa: E402
from core.zoo.models import build  # noqa: E402
from core.zoo.recipe import default_train_config, lr_at, random_subset_masks  # noqa: E402


def synthetic(dev: torch.device, n_train: int, n_val: int, seed: int = 0) -> Dataset:
    """CIFAR-10-shaped data: class templates (smooth random images) plus noise, standardized."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(10, 3, 8, 8, generator=g)
    templates = F.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        y = torch.arange(n) % 10
        x = (templates[y] + 0.35 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)
        raw = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous().to(dev), y.to(dev), raw

    xt, yt, rt = split(n_train)
    xv, yv, rv = split(n_val)
    return Dataset("cifar10", xt, yt, xv, yv, [f"class {i}" for i in range(10)], rt, rv)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_stacked(data, cfg, n: int, warm: int, steps: int, dev) -> float:
    """Seconds per optimizer step of ``n`` stacked models (steady state)."""
    marks: list[float] = []
    calls = 0

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        if calls in (warm + 1, warm + steps + 1):
            sync(dev)
            marks.append(time.perf_counter())
        return calls > warm + steps

    masks = random_subset_masks(n, data.n_train, 0.5, seed=1)
    with contextlib.suppress(Cancelled):
        train_ensemble(data, masks, list(range(n)), cfg.replace(model_chunk=n), dev,
                       should_stop=should_stop)  # fmt: skip
    return (marks[1] - marks[0]) / steps


def time_margins(data, cfg, n: int, dev) -> float:
    """Seconds for the margins of every point (train + val) of ``n`` stacked models."""
    net, _ = _init(data, list(range(n)), cfg)
    ens = Ensemble(cfg.arch, net.to(dev), data.input_shape, data.num_classes)
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    ens.margins_and_correct(x[: cfg.eval_chunk], y[: cfg.eval_chunk], chunk=cfg.eval_chunk)
    sync(dev)
    t0 = time.perf_counter()
    ens.margins_and_correct(x, y, chunk=cfg.eval_chunk)
    sync(dev)
    return time.perf_counter() - t0


def time_streams(data, cfg, k: int, warm: int, steps: int, dev) -> float:
    """Seconds per round of ``k`` single models, one step each, on ``k`` CUDA streams."""
    torch.manual_seed(0)
    cuda = dev.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    nets = [build(cfg.arch, data.input_shape, data.num_classes).to(dev, memory_format=fmt)
            for _ in range(k)]  # fmt: skip
    opts = [torch.optim.SGD(m.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                            nesterov=cfg.nesterov, weight_decay=cfg.weight_decay) for m in nets]  # fmt: skip
    streams = [torch.cuda.Stream(dev) if cuda else None for _ in range(k)]
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    total, b = cfg.total_steps(data.n_train), cfg.batch_size
    t0 = 0.0
    for t in range(warm + steps):
        if t == warm:
            sync(dev)
            t0 = time.perf_counter()
        lr = lr_at(t, total, cfg)
        for net, opt, s in zip(nets, opts, streams, strict=True):
            with torch.cuda.stream(s) if cuda else contextlib.nullcontext():
                idx = torch.randint(0, data.n_train, (b,), device=dev)
                flip = torch.rand(1, b, device=dev) < 0.5
                shift = torch.randint(0, 2 * cfg.translate + 1, (1, b, 2), device=dev)
                xb = flip_translate(data.x_train[idx][None], flip, shift, cfg.translate,
                                    cfg.augment_pad)[0].contiguous(memory_format=fmt)  # fmt: skip
                with amp:
                    z = net(xb)
                loss = F.cross_entropy(z.float(), data.y_train[idx],
                                       label_smoothing=cfg.label_smoothing)  # fmt: skip
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for group in opt.param_groups:
                    group["lr"] = lr
                opt.step()
    sync(dev)
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--stacked", default="1,8,16,32", help="models per stacked computation")
    ap.add_argument("--streams", default="8", help="models on concurrent streams (0: none)")
    ap.add_argument("--warm", type=int, default=15, help="steps before timing")
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--full", type=int, default=0, help="models trained through the recipe")
    ap.add_argument("--tiny", action="store_true", help="a tiny problem (CPU check of the code)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    dev = resolve_device(args.device)
    cfg = default_train_config("cifar10")
    try:
        data, source = load_dataset("cifar10", dev), "CIFAR-10"
    except LabError:
        n_tr, n_va = (1024, 256) if args.tiny else (50_000, 10_000)
        data, source = synthetic(dev, n_tr, n_va), "synthetic, CIFAR-10's shape"
    if args.tiny:
        cfg = cfg.replace(batch_size=32, epochs=1, eval_chunk=256)
    total = cfg.total_steps(data.n_train)
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    out: dict = {"device": gpu, "torch": torch.__version__, "data": source,
                 "n_train": data.n_train, "n_val": data.n_val, "steps_per_model": total,
                 "batch": cfg.batch_size, "stacked": [], "streams": []}  # fmt: skip
    for n in [int(v) for v in args.stacked.split(",") if int(v) > 0]:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        s_step = time_stacked(data, cfg, n, args.warm, args.steps, dev)
        s_eval = time_margins(data, cfg, n, dev)
        per_model = (s_step * total + s_eval) / n
        row = {"models": n, "s_per_step": s_step, "train_s_per_model": s_step * total / n,
               "margins_s_per_model": s_eval / n, "s_per_model": per_model,
               "models_per_gpu_hour": 3600 / per_model,
               "peak_gib": torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None}  # fmt: skip
        out["stacked"].append(row)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        print(json.dumps({"stacked": row}), file=sys.stderr, flush=True)
    for k in [int(v) for v in args.streams.split(",") if int(v) > 0]:
        s_round = time_streams(data, cfg, k, args.warm, args.steps, dev)
        row = {"models": k, "s_per_round": s_round, "train_s_per_model": s_round * total / k}
        out["streams"].append(row)
        print(json.dumps({"streams": row}), file=sys.stderr, flush=True)
    if args.full:
        masks = random_subset_masks(args.full, data.n_train, 0.5, seed=2)
        sync(dev)
        t0 = time.perf_counter()
        ens = train_ensemble(data, masks, list(range(args.full)), cfg.replace(model_chunk=args.full), dev)  # fmt: skip
        sync(dev)
        wall = time.perf_counter() - t0
        acc = ens.accuracy(data.x_val, data.y_val, chunk=cfg.eval_chunk)
        out["full"] = {"models": args.full, "train_wall_s": wall,
                       "val_accuracy_mean": float(np.mean(acc)), "val_accuracy_min": float(np.min(acc))}  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['device']} · torch {out['torch']} · data: {source} · {total} steps of batch {cfg.batch_size} per model")  # fmt: skip
        for r in out["stacked"]:
            print(f"stacked {r['models']:3d}: {r['s_per_step'] * 1e3:8.1f} ms/step → "
                  f"{r['s_per_model']:7.2f} s/model ({r['train_s_per_model']:.2f} train + "
                  f"{r['margins_s_per_model']:.2f} margins), {r['models_per_gpu_hour']:,.0f} models/GPU-hour")  # fmt: skip
        for r in out["streams"]:
            print(f"streams {r['models']:3d}: {r['s_per_round'] * 1e3:8.1f} ms/round → "
                  f"{r['train_s_per_model']:7.2f} s/model (train only)")  # fmt: skip
        if "full" in out:
            f = out["full"]
            print(f"full recipe, {f['models']} model(s): {f['train_wall_s']:.1f} s wall, val "
                  f"accuracy {f['val_accuracy_mean']:.4f} (min {f['val_accuracy_min']:.4f}; {source})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
