"""``train`` and ``models``: build model sets, list them, delete one."""

from __future__ import annotations

import argparse

from core.commands.base import (
    add_device_arg,
    add_executor_args,
    command,
    emit,
    executor_from_args,
    table,
)
from core.commands.progress import bar
from core.common.errors import ConfigError
from core.store.db import Store


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help="digits (embedded) or cifar10")
    p.add_argument("--arch", default=None, help="mlp, cnn or resnet9 (default: the dataset's)")
    p.add_argument("--models", type=int, default=100, help="number of models (default 100)")
    p.add_argument(
        "--kind", default="original", choices=("original", "subset"),
        help="original: every model on the whole train split; subset: each on a random share",
    )  # fmt: skip
    p.add_argument(
        "--fraction", type=float, default=None, help="share of train points per subset model"
    )
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument(
        "--seed", type=int, default=None,
        help="model i is trained from seed + i (default: a free range; ranges never overlap)",
    )  # fmt: skip
    add_device_arg(p)
    p.add_argument(
        "--chunk-size", type=int, default=None, dest="chunk_size",
        help="models per committed chunk: an interrupted build resumes from the last one "
        "(default: the recipe's model_chunk, at most the number of models)",
    )  # fmt: skip
    p.add_argument("--data-root", default=None, help="where cifar10 lives ($LAB_DATA_ROOT)")
    p.add_argument("--download", action="store_true", help="download cifar10 if missing")
    add_executor_args(p)


@command("train", "train a set of models at once (originals on the full train set, or subsets)")(
    _train_args
)
def train(args: argparse.Namespace) -> int:
    from core.zoo.build import build_model_set, create_model_set
    from core.zoo.data import load_dataset  # the engine (torch) only when the command runs
    from core.zoo.model_sets import list_model_sets
    from core.zoo.recipe import default_train_config

    if args.data_root is not None:  # the build and later commands load the dataset again
        import os

        os.environ["LAB_DATA_ROOT"] = args.data_root
    cfg = default_train_config(args.dataset, args.arch)
    if args.epochs is not None:
        cfg = cfg.replace(epochs=args.epochs)
    data = load_dataset(args.dataset, "cpu", root=args.data_root, download=args.download)
    store = Store(args.db)
    with executor_from_args(args) as ex:
        set_id = unfinished_match(store, args.kind, cfg, args.models, args.fraction, args.seed)
        if set_id is None:
            set_id = create_model_set(
                store, args.kind, cfg, args.models, seed=args.seed, fraction=args.fraction,
                device=args.device, data=data, chunk_size=args.chunk_size, executor=ex,
            )  # fmt: skip
        else:
            ex.device(args.device)
            done = int(list_model_sets(store).set_index("id").loc[set_id, "models_done"])
            if not args.json:
                print(
                    f"resuming unfinished model set {set_id} ({done} of {args.models} models done)"
                )
        with bar(f"set {set_id}", quiet=args.json) as progress:
            build_model_set(store, set_id, device=args.device, progress=progress, executor=ex,
                            data_root=args.data_root)  # fmt: skip
    row = list_model_sets(store).set_index("id").loc[set_id].to_dict()
    row["id"] = set_id
    text = (
        f"model set {set_id}: {args.models} × {cfg.arch} on {cfg.dataset} ({args.kind}), "
        f"mean val accuracy (argmax) {row['mean_val_acc']:.2%}, {row['wall_time_s']:.1f} s "
        f"on {row['device']}"
    )
    emit(args, row, text)
    return 0


def unfinished_match(store: Store, kind: str, cfg, n_models: int, fraction, seed) -> int | None:
    """The newest unfinished set this very command would build (same kind, recipe, size,
    fraction and, when given, seed), so that rerunning an interrupted ``train`` resumes it."""
    from core.zoo.model_sets import find_model_set, get_model_set

    set_id = find_model_set(
        store, kind, cfg.dataset, status="building", recipe_id=cfg.recipe_id(),
        n_models=n_models, fraction=fraction,
    )  # fmt: skip
    if set_id is not None and seed is not None and get_model_set(store, set_id).seed != seed:
        return None
    return set_id


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=("list", "delete"),
                   help="list (default) or delete one set")  # fmt: skip
    p.add_argument("id", nargs="?", type=int, help="model set id (delete)")
    p.add_argument(
        "--cascade", action="store_true",
        help="delete: also delete the evaluations that use the set",
    )  # fmt: skip


@command("models", "list the model sets in the store, or delete one")(_models_args)
def models(args: argparse.Namespace) -> int:
    from core.zoo.model_sets import delete_model_set, list_model_sets  # light: no torch

    store = Store(args.db, must_exist=True)
    if args.action == "delete":
        if args.id is None:
            raise ConfigError("models delete needs a model set id")
        runs = delete_model_set(store, args.id, cascade=args.cascade)
        also = f" and {len(runs)} evaluation(s) that used it ({runs})" if runs else ""
        emit(args, {"deleted": args.id, "deleted_evaluations": runs},
             f"deleted model set {args.id} with its files{also}")  # fmt: skip
        return 0
    df = list_model_sets(store)
    rows = df.to_dict("records")
    for r in rows:
        if r["status"] == "building":  # no process is necessarily at work on it
            r["status"] = f"unfinished ({r['models_done']}/{r['n_models']})"
    cols = ("id", "kind", "role", "dataset", "arch", "n_models", "recipe_id", "base_set_id",
            "mean_val_acc", "status")  # fmt: skip
    text = table(rows, cols) if rows else "no model sets yet"
    if any(str(r["status"]).startswith("unfinished") for r in rows):
        text += "\n(unfinished sets resume when the same train/oracles command is run again)"
    emit(args, {"model_sets": rows}, text)
    return 0
