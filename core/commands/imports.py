"""``import-margins`` and ``import-forget-set``: ensembles trained elsewhere (``core.interchange.imports``)."""

from __future__ import annotations

import argparse

from core.commands.base import command, emit
from core.common.errors import ConfigError
from core.store.db import Store


def parse_rows(text: str | None) -> tuple[int, int] | None:
    """``"START:STOP"`` → ``(START, STOP)`` (rows START … STOP−1 of the file)."""
    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--rows {text!r}: give START:STOP, e.g. 0:100") from None
    if not 0 <= a < b:
        raise ConfigError(f"--rows {text!r}: START must be ≥ 0 and below STOP")
    return a, b


def _dataset(args: argparse.Namespace):
    """The dataset whose point order the file follows; ``--data-root`` holds for the
    evaluation that scores imported unlearned margins too."""
    import os

    from core.zoo.data import load_dataset

    if args.data_root is not None:
        os.environ["LAB_DATA_ROOT"] = args.data_root
    return load_dataset(args.dataset, "cpu", root=args.data_root, download=args.download)


def _margins_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help=".npy of margins (n_models, n_train + n_val), train then val")
    p.add_argument("--dataset", default="digits", help="digits (default) or cifar10")
    p.add_argument("--kind", required=True, choices=("original", "oracle", "unlearned"),
                   help="what the models are")  # fmt: skip
    p.add_argument("--forget-set", type=int, default=None, dest="forget_set",
                   help="the forget set the oracles / unlearned models leave out")  # fmt: skip
    p.add_argument("--role", default="main", choices=("main", "floor"),
                   help="oracles: main group, or floor (the independent second group)")  # fmt: skip
    p.add_argument("--originals", type=int, default=None,
                   help="the imported originals these pair with (default: the newest import)")  # fmt: skip
    p.add_argument("--rows", default=None, help="import rows START:STOP of the file only")
    p.add_argument("--arch", default=None, help="the models' architecture, as a label "
                   "(default: the dataset's, resnet9 for cifar10)")  # fmt: skip
    p.add_argument("--label", default=None,
                   help="unlearned: the method's name (the run's method is imported:LABEL)")  # fmt: skip
    p.add_argument("--cost", type=float, default=None,
                   help="unlearned: compute cost as a share of retraining (default: unknown)")  # fmt: skip
    p.add_argument("--data-root", default=None, help="where cifar10 lives ($LAB_DATA_ROOT)")
    p.add_argument("--download", action="store_true", help="download cifar10 if missing")


@command("import-margins", "import margins of models trained elsewhere (no weights)")(_margins_args)
def import_margins_cmd(args: argparse.Namespace) -> int:
    from core.interchange.imports import import_margins

    rows = parse_rows(args.rows)
    data = _dataset(args)
    out = import_margins(
        Store(args.db), args.dataset, args.kind, args.file, forget_set_id=args.forget_set,
        role=args.role, original_set_id=args.originals, rows=rows, arch=args.arch,
        label=args.label, cost=args.cost, data=data,
    )  # fmt: skip
    if "run_id" in out:
        again = " (already imported: the stored run)" if out["reused"] else ""
        text = (f"evaluation {out['run_id']}{again}: {out['n_models']} imported unlearned models "
                f"on forget set {args.forget_set}, scored against the batch's oracles")  # fmt: skip
    else:
        role = f" ({args.role})" if args.kind == "oracle" else ""
        text = (f"model set {out['set_id']}: {out['n_models']} imported {args.kind} models{role}"
                f" of {args.dataset}, recipe {out['recipe_id']} (margins only, no weights)")  # fmt: skip
    emit(args, out, text)
    return 0


def _fs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help=".npy of integer train indices, or a text / CSV / JSON list")
    p.add_argument("--dataset", default="digits", help="digits (default) or cifar10")
    p.add_argument("--name", default=None, help="a name unique per dataset (default: the file's)")
    p.add_argument("--data-root", default=None, help="where cifar10 lives ($LAB_DATA_ROOT)")
    p.add_argument("--download", action="store_true", help="download cifar10 if missing")


@command("import-forget-set", "import a forget set from an index file (.npy, text or CSV)")(
    _fs_args
)
def import_forget_set_cmd(args: argparse.Namespace) -> int:
    from core.interchange.imports import import_forget_set

    data = _dataset(args)
    fs_id, fs = import_forget_set(Store(args.db), args.dataset, args.file, args.name, data)
    warn = "".join(f"\nwarning: {w}" for w in fs.warnings)
    emit(args, {"id": fs_id, "dataset": args.dataset, **fs.to_dict()},
         f"forget set {fs_id}: {fs.name}, {fs.size} points{warn}")  # fmt: skip
    return 0


def _easydub_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="an EasyDUB dataset directory (forget_sets/, margins/, data/)")
    p.add_argument("--forget-sets", default=None, dest="forget_sets",
                   help="forget-set ids K to import, e.g. 1,2 (default: every forget_set_K.npy)")  # fmt: skip
    p.add_argument("--models", type=int, default=None,
                   help="N originals; oracles 0..N-1 evaluate, N..2N-1 give the noise floor "
                   "(default: the most the directory holds)")  # fmt: skip
    p.add_argument("--dataset", default="cifar10",
                   help="the dataset name in the directory's paths (cifar10; digits for a lab export)")  # fmt: skip
    p.add_argument("--weights", action="store_true",
                   help="load the pretrained checkpoints too (models/): every method runs on them")  # fmt: skip


def parse_ids(text: str | None) -> list[int] | None:
    """``"1,2,5"`` → ``[1, 2, 5]``."""
    if text is None:
        return None
    try:
        ids = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--forget-sets {text!r}: give ids like 1,2,5") from None
    if not ids or min(ids) < 0:
        raise ConfigError(f"--forget-sets {text!r}: give ids like 1,2,5")
    return ids


@command("import-easydub", "import EasyDUB's directory: forget sets, originals, oracles")(
    _easydub_args
)
def import_easydub_cmd(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from core.interchange.easydub import import_easydub

    ks = parse_ids(args.forget_sets)
    if args.dataset != "digits":  # evaluations read CIFAR-10 from the directory's data/
        os.environ["LAB_DATA_ROOT"] = str(Path(args.dir).expanduser() / "data")
    out = import_easydub(Store(args.db), args.dir, forget_sets=ks, n_models=args.models,
                         dataset=args.dataset, weights=args.weights)  # fmt: skip
    lines = [f"recipe {out['recipe_id']}: {out['n_models']} originals (set "
             f"{out['original_set_id']}), "
             + ("with their weights" if out["weights"] else "margins only")]  # fmt: skip
    for f in out["forget_sets"]:
        lines.append(f"forget set {f['id']} (EasyDUB {f['k']}, {f['size']} points): oracles "
                     f"{f['main_set_id']}, noise floor {f['floor_set_id']}")  # fmt: skip
    emit(args, out, "\n".join(lines))
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="a new directory to write (it must not exist)")
    p.add_argument("--forget-set", type=int, required=True, dest="forget_set",
                   help="the forget set whose originals, oracles and runs are written")  # fmt: skip
    p.add_argument("--data-root", default=None, help="where cifar10 lives ($LAB_DATA_ROOT)")


@command("export-easydub", "write a forget set's models and runs in EasyDUB's layout")(_export_args)
def export_easydub_cmd(args: argparse.Namespace) -> int:
    import os

    from core.interchange.easydub_export import export_easydub

    if args.data_root is not None:
        os.environ["LAB_DATA_ROOT"] = args.data_root
    out = export_easydub(Store(args.db), args.forget_set, args.out)
    runs = ", ".join(f"{r['run_id']} ({r['method']})" for r in out["runs"]) or "none"
    emit(args, out, f"{out['out']}: forget set {out['forget_set']} of {out['dataset']}, "
         f"{out['n_models']} originals, oracles and floor models; unlearned runs: {runs}")  # fmt: skip
    return 0
