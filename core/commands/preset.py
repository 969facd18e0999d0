"""``preset cifar10``: originals, random forget sets and their oracles, after a cost estimate
measured on this machine (``core.presets.cifar10``) and the user's confirmation."""

from __future__ import annotations

import argparse
import os
import sys

from core.commands.base import add_device_arg, command, emit
from core.commands.progress import bar
from core.common.config import check_int
from core.common.errors import ConfigError
from core.store.db import Store


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sizes {text!r}: give whole numbers separated by commas") from None


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=("cifar10",), help="the preset (cifar10)")
    p.add_argument("--models", type=int, default=100, help="models per group (default 100)")
    p.add_argument("--sizes", default="10,100,1000", help="random forget-set sizes")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, default=None, dest="batch_size",
                   help="override the recipe's batch size")  # fmt: skip
    p.add_argument("--arch", default=None, help="override the architecture (default resnet9)")
    p.add_argument("--probe-steps", type=int, default=3, dest="probe_steps",
                   help="timed steps of the cost probe (after one warm-up step)")  # fmt: skip
    p.add_argument("--estimate-only", action="store_true", dest="estimate_only",
                   help="print the estimate and stop")  # fmt: skip
    p.add_argument("--yes", action="store_true", help="start without asking")
    p.add_argument("--data-root", default=None, help="where cifar10 lives ($LAB_DATA_ROOT)")
    p.add_argument("--download", action="store_true", help="download cifar10 if missing")
    add_device_arg(p)


@command("preset", "the cifar10 preset: a cost estimate, then originals, forget sets, oracles")(
    _args
)
def preset(args: argparse.Namespace) -> int:
    from core.common.device import resolve_device
    from core.presets.cifar10 import describe, estimate, plan_preset, probe, run_preset
    from core.zoo.data import load_dataset

    if args.data_root is not None:  # every later load (builds, evaluations) reads it too
        os.environ["LAB_DATA_ROOT"] = args.data_root
    resolve_device(args.device)
    sizes = parse_sizes(args.sizes)
    # the numbers are checked before CIFAR-10 is looked for, so a bad one is named first
    check_int("models", args.models, 2, 100_000)
    check_int("probe steps", args.probe_steps, 1, 1000)
    for name, value in (("epochs", args.epochs), ("batch size", args.batch_size)):
        if value is not None:
            check_int(name, value, 1)
    data = load_dataset("cifar10", "cpu", root=args.data_root, download=args.download)
    plan = plan_preset(data, args.models, sizes, args.epochs, args.batch_size, args.arch)
    if not args.json:
        print("measuring the cost on this machine …", file=sys.stderr)
    found = probe(data, plan.train, args.device, steps=args.probe_steps)
    est = estimate(plan, found["s_per_example"])
    text = describe(plan, found, est)
    out = {"plan": {"models": plan.models, "n_models": plan.n_models, "sizes": list(plan.sizes),
                    "recipe_id": plan.train.recipe_id()}, "probe": found, "estimate": est}  # fmt: skip
    if args.estimate_only:
        emit(args, out, text)
        return 0
    if not args.yes:
        if args.json or not sys.stdin.isatty():
            raise ConfigError(f"{text}\nnot started: confirm with --yes (no terminal to ask on)")
        answer = input(f"{text}\nstart? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("not started")
            return 1
    elif not args.json:
        print(text, file=sys.stderr)
    store = Store(args.db)
    with bar("cifar10 preset", quiet=args.json) as progress:
        out.update(run_preset(store, plan, args.device, progress))
    lines = [f"{name}: forget set {v['forget_set_id']}, evaluation {v['run_id']}"
             for name, v in out["evaluations"].items()]  # fmt: skip
    emit(args, out, "\n".join(["cifar10 preset ready (open Compare or the KLoM explorer):",
                               *lines]))  # fmt: skip
    return 0
