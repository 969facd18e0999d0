"""``forget-set``, ``oracles``, ``evaluate``, ``demo``, ``jobs`` and the internal ``worker``.

The engine modules that load torch are imported inside the commands that train or score.
"""

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
from core.common.config import check_int
from core.common.errors import ConfigError
from core.store.db import Store


def _check_training_args(args: argparse.Namespace) -> None:
    """Ranges of --models / --epochs and the --device asked for, before anything is written."""
    from core.jobs.kinds import MAX_EPOCHS, MAX_MODELS

    if getattr(args, "models", None) is not None:
        check_int("models", args.models, 1, MAX_MODELS)
    if getattr(args, "epochs", None) is not None:
        check_int("epochs", args.epochs, 1, MAX_EPOCHS)
    from core.common.device import resolve_device  # loads torch: after the checks that need none

    resolve_device(args.device)  # an unknown or absent device is refused here


def _fs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("create", "list", "show", "delete"), help="what to do")
    p.add_argument("id", nargs="?", type=int, help="forget-set id (show, delete)")
    p.add_argument("--dataset", default="digits", help="digits (default) or cifar10")
    p.add_argument(
        "--kind", default=None,
        choices=("preset", "random", "class", "knn", "manual", "upload", "datamodel_pc"),
        help="how the points are chosen (create; default preset when --preset is given, else random)",
    )  # fmt: skip
    p.add_argument("--name", default=None, help="a name unique per dataset (default: from kind)")
    p.add_argument(
        "--preset", default=None,
        help="random-10, random-50, random-200, class3-half, knn-pixel-20; from the datamodel: "
        "dm-pc1-top10, dm-pc1-top50, dm-pc1-top25-bottom25 (and pc2)",
    )  # fmt: skip
    p.add_argument("--k", type=int, default=None, help="number of points (random, class, knn)")
    p.add_argument("--seed", type=int, default=0, help="random seed (random, class)")
    p.add_argument("--cls", type=int, default=None, help="class (kind class)")
    p.add_argument("--fraction", type=float, default=None, help="share of the class (kind class)")
    p.add_argument("--anchor", type=int, default=None, help="centre point (kind knn)")
    p.add_argument(
        "--space", default="pixel", choices=("pixel", "feature", "datamodel"),
        help="distance space of kind knn: pixels, the original models' features, or the rows "
        "of the newest margin datamodel",
    )  # fmt: skip
    p.add_argument("--component", type=int, default=1, help="principal component (datamodel_pc)")
    p.add_argument("--top", type=int, default=None, help="highest scores (datamodel_pc; 10)")
    p.add_argument("--bottom", type=int, default=0, help="lowest scores (datamodel_pc; 0)")
    p.add_argument("--indices", default=None, help="comma-separated train indices (kind manual)")
    p.add_argument("--file", default=None, help="CSV or JSON of indices (kind upload)")


@command("forget-set", "create, list, show or delete forget sets")(_fs_args)
def forget_set(args: argparse.Namespace) -> int:
    from core.evaluation.cleanup import delete_forget_set
    from core.forget.make import make_forget_set
    from core.forget.store import get_forget_set, list_forget_sets, save_forget_set
    from core.forget.uploads import read_upload

    store = Store(args.db, must_exist=args.action != "create")
    if args.action == "list":
        rows = list_forget_sets(store).to_dict("records")
        cols = ("id", "name", "dataset", "kind", "size", "created_at")
        emit(args, {"forget_sets": rows}, table(rows, cols) if rows else "no forget sets yet")
        return 0
    if args.action in ("show", "delete"):
        if args.id is None:
            raise ConfigError(f"forget-set {args.action} needs an id")
        fs, dataset = get_forget_set(store, args.id)
        if args.action == "delete":
            delete_forget_set(store, args.id)
            emit(
                args,
                {"deleted": args.id},
                f"deleted forget set {args.id} ({fs.name}) with its oracles and evaluations",
            )
        else:
            emit(
                args,
                {"id": args.id, "dataset": dataset, **fs.to_dict()},
                f"{fs.name} ({fs.kind}, {fs.size} points): {[int(i) for i in fs.indices]}",
            )
        return 0
    kind = args.kind or ("preset" if args.preset else "random")
    if args.preset and kind != "preset":
        raise ConfigError(f"--preset names a preset; it cannot be combined with --kind {kind}")
    if kind == "preset" and not args.preset:
        raise ConfigError("--kind preset needs --preset NAME: random-10, random-50, random-200, "
                          "class3-half, knn-pixel-20, dm-pc1-top10, …")  # fmt: skip
    if kind in ("random", "knn") and args.k is None:
        raise ConfigError(f"a {kind} forget set needs --k, the number of points")
    params = dict(preset=args.preset, k=args.k, seed=args.seed, cls=args.cls, fraction=args.fraction,
                  anchor=args.anchor, space=args.space, component=args.component, top=args.top,
                  bottom=args.bottom)  # fmt: skip
    if kind == "manual":
        params["indices"] = [s.strip() for s in (args.indices or "").split(",") if s.strip()]
    if kind == "upload":
        data, filename = read_upload(args.file or "")
        params.update(data=data, filename=filename)
    fs = make_forget_set(store, args.dataset, kind, args.name, **params)
    fs_id = save_forget_set(store, fs, args.dataset)
    warn = "".join(f"\nwarning: {w}" for w in fs.warnings)
    emit(
        args,
        {"id": fs_id, "dataset": args.dataset, **fs.to_dict()},
        f"forget set {fs_id}: {fs.name}, {fs.size} points{warn}",
    )
    return 0


def _oracle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--forget-set", type=int, required=True, dest="forget_set", help="its id")
    p.add_argument(
        "--originals", type=int, default=None,
        help="the original set whose recipe the oracles copy (default: the newest)",
    )  # fmt: skip
    p.add_argument(
        "--models", type=int, default=None,
        help="models per group (two groups); must equal the originals' number (default)",
    )  # fmt: skip
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="first seed of the oracle group (model i: S + i; default: free seeds)",
    )
    p.add_argument(
        "--floor-seed",
        type=int,
        default=None,
        dest="floor_seed",
        help="first seed of the noise-floor group (default: free seeds)",
    )
    add_device_arg(p)
    add_executor_args(p)


@command("oracles", "train the oracle models (and the noise-floor group) for a forget set")(
    _oracle_args
)
def oracles(args: argparse.Namespace) -> int:
    _check_training_args(args)
    from core.evaluation.run import build_oracles

    store = Store(args.db, must_exist=True)
    with (
        executor_from_args(args) as ex,
        bar(f"oracles for forget set {args.forget_set}", quiet=args.json) as progress,
    ):
        main, floor = build_oracles(
            store, args.forget_set, args.models, args.device, progress,
            original_set_id=args.originals, executor=ex, seeds=(args.seed, args.floor_seed),
        )  # fmt: skip
    emit(
        args,
        {"oracle_set_id": main, "floor_set_id": floor},
        f"oracle set {main}, noise-floor set {floor}",
    )
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--forget-set", type=int, required=True, dest="forget_set", help="its id")
    p.add_argument("--method", default="do_nothing", help="unlearning method (default do_nothing)")
    p.add_argument(
        "--originals", type=int, default=None,
        help="original model set to unlearn from (default: the one the oracles were built "
        "against); its recipe must be the oracles'",
    )  # fmt: skip
    p.add_argument(
        "--recompute", action="store_true",
        help="run again even if this evaluation is stored (default: reuse it)",
    )  # fmt: skip
    add_device_arg(p)


@command("evaluate", "score an unlearning method against the oracles with KLoM, point by point")(
    _eval_args
)
def evaluate_cmd(args: argparse.Namespace) -> int:
    _check_training_args(args)
    from core.evaluation.run import evaluate, evaluation

    store = Store(args.db, must_exist=True)
    run_id = evaluate(
        store, args.forget_set, args.method, args.device, original_set_id=args.originals,
        recompute=args.recompute,
    )  # fmt: skip
    s = evaluation(store, run_id)["summaries"]
    rows = s.to_dict("records")
    summary = {
        f"{r['split']}/{r['metric']}": {
            k: r[k] for k in ("p50", "p95", "p99", "mean", "count", "accuracy", "accuracy_kind")
        }
        for r in rows
    }
    text = f"evaluation {run_id} ({args.method} on forget set {args.forget_set})\n" + table(
        rows, ("split", "metric", "p50", "p95", "p99", "mean", "count", "accuracy", "accuracy_kind")
    )
    from core.commands.audit import summary_rows
    from core.evaluation.audits import audit_summary

    audit = audit_summary(store, run_id)
    if audit:
        text += "\nmembership audits (floor: oracle vs oracle)\n" + table(
            summary_rows(audit), ("audit", "metric", "value", "floor")
        )
    info = store.run(run_id)["config"].get("info", {})  # what the method recorded (DEL: resets)
    emit(args, {"run_id": run_id, "summaries": summary, "audit": audit, "info": info}, text)
    return 0


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", type=int, default=None, help="models per group (default 100)")
    p.add_argument("--epochs", type=int, default=None, help="override the digits recipe's epochs")
    add_device_arg(p)


@command("demo", "the quick preset on digits: originals, 3 forget sets, oracles, do-nothing KLoM")(
    _demo_args
)
def demo(args: argparse.Namespace) -> int:
    _check_training_args(args)
    from core.evaluation.run import DEFAULT_MODELS
    from core.presets.demo import quick_demo

    models = DEFAULT_MODELS if args.models is None else args.models
    store = Store(args.db)
    with bar("demo", quiet=args.json) as progress:
        out = quick_demo(store, models, args.device, progress, epochs=args.epochs)
    lines = [
        f"{name}: forget set {v['forget_set_id']}, evaluation {v['run_id']}"
        for name, v in out["evaluations"].items()
    ]
    emit(args, out, "\n".join(["demo ready (open the dashboard's KLoM explorer):", *lines]))
    return 0


def _jobs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action", nargs="?", default="list", choices=("list", "cancel", "resume"),
        help="list (default), or cancel / resume the job with the id given",
    )  # fmt: skip
    p.add_argument("id", nargs="?", type=int, help="job id (cancel, resume)")


@command("jobs", "list background jobs, or cancel / resume one")(_jobs_args)
def jobs_cmd(args: argparse.Namespace) -> int:
    from core.jobs import queue as jobs

    store = Store(args.db, must_exist=True)
    if args.action != "list":
        if args.id is None:
            raise ConfigError(f"jobs {args.action} needs a job id")
        (jobs.cancel if args.action == "cancel" else jobs.resume)(store, args.id)
    jobs.reconcile(store)
    jobs.pump(store)  # a waiting job whose predecessor's worker died starts now
    rows = jobs.list_jobs(store).drop(columns=["params"]).to_dict("records")
    emit(
        args,
        {"jobs": rows},
        table(rows, ("id", "kind", "status", "progress", "message")) if rows else "no jobs",
    )
    return 0


def _worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--job", type=int, required=True, help="the job's id")


@command("worker", "(internal) run one background job in this process", hidden=True)(_worker_args)
def worker(args: argparse.Namespace) -> int:
    from core.jobs import queue as jobs

    status = jobs.work(Store(args.db, must_exist=True), args.job)
    return 0 if status in ("done", "cancelled") else 1
