"""``train`` and ``models``: build model sets and list them."""

from __future__ import annotations

import argparse

from ..cli import command, emit, table
from ..data import load_dataset
from ..recipe import default_train_config
from ..store import Store
from ..zoo import build_model_set, create_model_set, list_model_sets
from .progress import bar


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help="digits (embedded) or cifar10")
    p.add_argument("--arch", default=None, help="mlp, cnn or resnet9 (default: the dataset's)")
    p.add_argument("--models", type=int, default=100, help="number of models (default 100)")
    p.add_argument("--kind", default="original", choices=("original", "subset"))
    p.add_argument(
        "--fraction", type=float, default=None, help="share of train points per subset model"
    )
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--seed", type=int, default=None, help="model i is trained from seed + i")
    p.add_argument(
        "--device", default=None, help="auto, cpu, cuda or mps (default $LAB_DEVICE/auto)"
    )
    p.add_argument("--data-root", default=None, help="where cifar10 lives ($LAB_DATA_ROOT)")
    p.add_argument("--download", action="store_true", help="download cifar10 if missing")


@command("train", "train a set of models at once (originals on the full train set, or subsets)")(
    _train_args
)
def train(args: argparse.Namespace) -> int:
    cfg = default_train_config(args.dataset, args.arch)
    if args.epochs is not None:
        cfg = cfg.replace(epochs=args.epochs)
    data = load_dataset(args.dataset, "cpu", root=args.data_root, download=args.download)
    store = Store(args.db)
    set_id = create_model_set(
        store, args.kind, cfg, args.models, seed=args.seed, fraction=args.fraction,
        device=args.device, data=data,
    )  # fmt: skip
    with bar(f"set {set_id}", quiet=args.json) as progress:
        build_model_set(store, set_id, device=args.device, progress=progress)
    row = list_model_sets(store).set_index("id").loc[set_id].to_dict()
    row["id"] = set_id
    text = (
        f"model set {set_id}: {args.models} × {cfg.arch} on {cfg.dataset} ({args.kind}), "
        f"mean val accuracy {row['mean_val_acc']:.2%}, {row['wall_time_s']:.1f} s on {row['device']}"
    )
    emit(args, row, text)
    return 0


@command("models", "list the model sets in the store")(lambda p: None)
def models(args: argparse.Namespace) -> int:
    df = list_model_sets(Store(args.db, must_exist=True))
    rows = df.to_dict("records")
    cols = (
        "id",
        "kind",
        "role",
        "dataset",
        "arch",
        "n_models",
        "models_done",
        "mean_val_acc",
        "status",
    )
    emit(args, {"model_sets": rows}, table(rows, cols) if rows else "no model sets yet")
    return 0
