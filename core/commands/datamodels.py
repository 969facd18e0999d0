"""``python -m core datamodels fit|list``: subset models, linear datamodels and their LDS."""

from __future__ import annotations

import argparse
import sys

from core.attribution.defaults import DEFAULT_MODELS, WEAK_LDS, check_fit_settings
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


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=("fit", "list", "delete"),
                   help="fit one (training the subset models it lacks), list (default), delete")  # fmt: skip
    p.add_argument("id", nargs="?", type=int, help="datamodel id (delete)")
    p.add_argument("--dataset", default="digits", help="digits (default) or cifar10")
    p.add_argument(
        "--originals", type=int, default=None,
        help="original set whose recipe the subset models copy (default: the newest)",
    )  # fmt: skip
    p.add_argument(
        "--models", type=int, default=DEFAULT_MODELS,
        help=f"subset models M (default {DEFAULT_MODELS}: the fewest that gave held-out LDS "
        f"≥ {WEAK_LDS} on digits, measured)",
    )  # fmt: skip
    p.add_argument("--fraction", type=float, default=0.5, help="α: share per model (0.5)")
    p.add_argument("--kind", default="ridge", choices=("ridge", "lasso"), help="regression")
    p.add_argument(
        "--target", default="margin", choices=("margin", "logits"),
        help="margin (dm_direct) or per-class logits (dm_matching needs these)",
    )  # fmt: skip
    p.add_argument(
        "--holdout", type=float, default=0.1, help="share of models held out for LDS (0.1)"
    )
    p.add_argument(
        "--subset-set", type=int, default=None, dest="subset_set",
        help="use this stored subset set (of the originals' recipe) instead of finding one",
    )  # fmt: skip
    add_device_arg(p)
    add_executor_args(p)


def _f(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"  # NaN / NULL: no target had a score


def _row_text(r: dict) -> str:
    return (
        f"datamodel {r['id']}: {r['kind']} on the {r['target'].rstrip('s')}s of {r['n_models']} subset models "
        f"(α {r['fraction']:g}, λ {r['lam']:.3g}); LDS train {_f(r['lds_train'])}, "
        f"val {_f(r['lds_val'])} (over {r['n_heldout']} held-out models)"
    )


@command("datamodels", "fit linear datamodels from subset models (and their LDS), list, delete")(
    _args
)
def datamodels(args: argparse.Namespace) -> int:
    from core.attribution.datamodels import delete_datamodel, list_datamodels  # NumPy, pandas

    if args.action == "delete":
        if args.id is None:
            raise ConfigError("datamodels delete needs a datamodel id")
        delete_datamodel(Store(args.db, must_exist=True), args.id)
        emit(args, {"deleted": args.id}, f"deleted datamodel {args.id} and its weight files")
        return 0

    if args.action == "list":
        store = Store(args.db, must_exist=True)
        rows = list_datamodels(store).to_dict("records")
        cols = ("id", "dataset", "kind", "target", "n_models", "fraction", "lam", "lds_train",
                "lds_val", "subset_set_id", "recipe_id")  # fmt: skip
        emit(args, {"datamodels": rows}, table(rows, cols) if rows else "no datamodels yet")
        return 0
    # before anything is imported, opened or trained
    check_fit_settings(args.kind, args.target, args.models, args.fraction, args.holdout)
    from core.attribution.datamodels import get_datamodel
    from core.attribution.fit import fit_datamodel
    from core.common.device import resolve_device

    resolve_device(args.device)
    from core.attribution.fit import few_models_warning
    from core.zoo.data import load_dataset

    warn = few_models_warning(args.models, load_dataset(args.dataset, "cpu").n_train)
    if warn:
        print(f"warning: {warn}", file=sys.stderr)
    store = Store(args.db)
    with executor_from_args(args) as ex, bar("datamodel", quiet=args.json) as progress:
        dm_id = fit_datamodel(
            store, args.dataset, original_set_id=args.originals, n_models=args.models,
            fraction=args.fraction, kind=args.kind, target=args.target, holdout=args.holdout,
            subset_set_id=args.subset_set, device=args.device, progress=progress, executor=ex,
        )  # fmt: skip
    dm = get_datamodel(store, dm_id)
    row = {k: v for k, v in vars(dm).items() if not k.endswith("_file")}
    curve = "; ".join(f"M={c['m']}: {_f(c['lds_train'])}/{_f(c['lds_val'])}" for c in dm.lds_curve)
    emit(args, row, _row_text(row) + f"\nLDS (train/val) against M: {curve}")
    return 0
