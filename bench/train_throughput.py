"""Training throughput: the vectorized ensemble against a plain one-model-at-a-time loop.

    python bench/train_throughput.py                  # 200 vectorized vs 10 looped models
    python bench/train_throughput.py --json           # one JSON object on stdout

Reference workload: digits, MLP 64→128→10, the default TrainConfig (30 epochs of the 1,347-
point train split at batch 64: 630 steps, the same for every model of the recipe), each model
on its own random 50% subset (673 points, so each point is drawn about 60 times). Times are
wall-clock including model init and index shuffles, excluding dataset loading. The plain loop
is an ordinary PyTorch loop: ``nn.Sequential`` + ``torch.optim.SGD(nesterov)`` +
``F.cross_entropy`` on tensors indexed directly, same schedule and step count; its rate is
extrapolated per model. Both run in the same process, one after the other (best of
``--repeats``). Exits 1 if the ratio is below ``--min-ratio``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from core.common.device import resolve_device  # noqa: E402
from core.zoo.data import load_dataset  # noqa: E402
from core.zoo.ensemble import train_ensemble  # noqa: E402
from core.zoo.recipe import TrainConfig, lr_at, random_subset_masks  # noqa: E402


def plain_loop(data, masks: np.ndarray, seeds: list[int], cfg: TrainConfig, dev) -> list:
    """Train one model after another, the ordinary way."""
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    models = []
    for mask, seed in zip(masks, seeds, strict=True):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        net.to(dev)
        opt = torch.optim.SGD(
            net.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )  # fmt: skip
        pool = torch.from_numpy(np.flatnonzero(mask)).to(dev)
        total = cfg.total_steps(data.n_train)
        stream = pool[torch.randperm(len(pool), device=dev)]
        for t in range(total):  # consecutive batches of a stream of permutations
            while len(stream) < cfg.batch_size:
                stream = torch.cat([stream, pool[torch.randperm(len(pool), device=dev)]])
            idx, stream = stream[: cfg.batch_size], stream[cfg.batch_size :]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for group in opt.param_groups:
                group["lr"] = lr_at(t, total, cfg)
            opt.step()
        models.append(net)
    return models


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=200, help="vectorized models")
    ap.add_argument("--loop-models", type=int, default=10, help="models in the plain loop")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many timings each")
    ap.add_argument("--min-ratio", type=float, default=0.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    data = load_dataset("digits", dev)
    cfg = TrainConfig()  # the digits defaults
    masks = random_subset_masks(args.models, data.n_train, 0.5, seed=0)
    seeds = list(range(args.models))

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    t_vec = timed(lambda: train_ensemble(data, masks, seeds, cfg, dev))
    k = args.loop_models
    t_loop = timed(lambda: plain_loop(data, masks[:k], seeds[:k], cfg, dev))
    ens = train_ensemble(data, masks[:k], seeds[:k], cfg, dev)
    res = {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "workload": "digits mlp 64-128-10, batch 64, 630 steps, 50% subsets",
        "vectorized_models": args.models,
        "vectorized_s": round(t_vec, 3),
        "vectorized_models_per_s": round(args.models / t_vec, 2),
        "loop_models": k,
        "loop_s": round(t_loop, 3),
        "loop_models_per_s": round(k / t_loop, 2),
        "ratio": round((args.models / t_vec) / (k / t_loop), 2),
        "val_acc_mean": round(float(ens.accuracy(data.x_val, data.y_val).mean()), 4),
    }
    if args.json:
        print(json.dumps(res))
    else:
        for key, val in res.items():
            print(f"{key:24s} {val}")
    return 0 if res["ratio"] >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
