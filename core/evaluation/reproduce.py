"""Rebuild a card (``core.evaluation.cards``) in a fresh lab from nothing and compare it figure by figure.

For a run card, in order: the originals (the card's recipe, seed range and chunk size), the
forget set (the card's indices, kind and parameters), the oracle and noise-floor groups (their
seed ranges), a datamodel's subset models (the first M of the card's range) and the datamodel
fitted as the card says, Oracle Matching's held-out group, then the run itself — same method,
hyperparameters and budget, its unlearned models on the card's seed range — and the card of
the new run, compared with the old one (``core.evaluation.card_checks``: exactly, on the same device and
thread counts; within the stated tolerances otherwise). A model-set card rebuilds that set
(and an oracle set's forget set).

Refused before anything is written: a malformed card, a target database that already holds a
lab, a local dataset whose arrays hash differently from the card's. A card made by other code
is rebuilt with a warning.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from core.common.errors import ConfigError
from core.evaluation.card_checks import accuracy_tolerance, check_card, compare
from core.evaluation.cards import SPLITS, card, code_identity, dataset_identity, model_set_card
from core.store.db import Store

Progress = Callable[[float, str], None]


def load_card(path: str | os.PathLike) -> dict:
    """A card read from a JSON file and checked (``check_card``); one ``ConfigError`` for a
    missing, unreadable or malformed file."""
    import json

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cannot read the card {p}: {getattr(err, 'strerror', None) or err}"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"malformed card: {p} is not JSON ({err.msg} at line {err.lineno})"
        ) from None
    return check_card(data)


def fresh_store(db_path: str | os.PathLike) -> Store:
    """The target lab: a new file, or an existing lab with nothing in it; else refused."""
    store = Store(db_path)
    path = store.path
    if path.exists():
        if path.stat().st_size == 0:
            raise ConfigError(f"{path} exists and is an empty file, not a lab; name a new file")
        counts = store.query_df(
            "SELECT (SELECT count(*) FROM model_sets) + (SELECT count(*) FROM forget_sets) + "
            "(SELECT count(*) FROM runs) + (SELECT count(*) FROM datamodels) AS n"
        )
        if int(counts["n"][0]):
            raise ConfigError(f"the database {path} already holds a lab; reproduce into a new "
                              "file (--db NEW.duckdb)")  # fmt: skip
    if store.files_dir.exists() and any(store.files_dir.iterdir()):
        raise ConfigError(f"{store.files_dir} already holds array files; reproduce into a new "
                          "file in an empty folder")  # fmt: skip
    return store


def _mode(c: dict, device: str) -> tuple[bool, str]:
    """(exact expected?, why) for reproducing card ``c`` on ``device`` here."""
    env = c["environment"]
    if env["device"].split(":")[0] != device.split(":")[0]:
        return False, f"the card ran on {env['device']}, this rebuild on {device}"
    if env.get("threads") is None or env.get("lab_threads") is None:
        return False, (
            "the card does not record its thread counts (model sets trained on as "
            "many threads as were idle), so the rebuild may sum in another order"
        )
    return True, (f"same device ({device}) and thread counts (method {env['threads']}, "
                  f"training {env['lab_threads']})")  # fmt: skip


@contextlib.contextmanager
def _threads(c: dict) -> Iterator[None]:
    """Run with the card's thread counts where it records them (``LAB_THREADS`` for training,
    torch's threads for the method); restored afterwards."""
    import torch

    env, before, lab = c["environment"], torch.get_num_threads(), os.environ.get("LAB_THREADS")
    try:
        if env.get("lab_threads"):
            os.environ["LAB_THREADS"] = str(int(env["lab_threads"]))
        if env.get("threads"):
            torch.set_num_threads(int(env["threads"]))
        yield
    finally:
        torch.set_num_threads(before)
        if lab is None:
            os.environ.pop("LAB_THREADS", None)
        else:
            os.environ["LAB_THREADS"] = lab


def _device(c: dict, device: str | None) -> str:
    from core.common.device import resolve_device

    if device is not None:
        return str(resolve_device(device))
    try:
        return str(resolve_device(c["environment"]["device"]))
    except ConfigError:  # the card's device is not here: the local default
        return str(resolve_device(None))


def _preflight(c: dict) -> list[str]:
    """Refuse another dataset; the warnings (other code) to report."""
    ds = c["dataset"]
    local = dataset_identity(ds["name"])
    if local["sha256"] != ds["sha256"]:
        raise ConfigError(
            f"the card's dataset {ds['name']} has arrays sha-256 {ds['sha256'][:16]}…, the local "
            f"one {local['sha256'][:16]}…: a rebuild on other data would prove nothing; refused"
        )
    here, warnings = code_identity(), []
    if here["version"] != c["code"]["version"]:
        warnings.append(f"the card was made by code {c['code']['version']}, this is "
                        f"{here['version']}: figures may differ")  # fmt: skip
    exported = c["code"].get("exported_with") or {}
    if exported.get("core_sha256") not in (None, here["core_sha256"]):
        warnings.append("core/ sources differ from those the card was exported with")
    return warnings


def _build_set(store: Store, e: dict, train, dev: str, *, kind: str | None = None,
               forget=None, forget_set_id=None, base=None, n_models=None) -> int:  # fmt: skip
    """A set of the card entry ``e``'s kind, role, seed range and chunk size, built."""
    from core.zoo.build import build_model_set, create_model_set

    set_id = create_model_set(
        store, kind or e["kind"], train, n_models or e["n_models"], seed=e["seed_first"],
        fraction=e.get("fraction"), forget_indices=forget, forget_set_id=forget_set_id,
        role=e["role"], chunk_size=e["chunk_size"], device=dev, base_set_id=base,
    )  # fmt: skip
    build_model_set(store, set_id, forget=forget, device=dev)
    return set_id


def _forget_set(store: Store, c: dict) -> tuple[int, np.ndarray]:
    from core.forget.sets import ForgetSet
    from core.forget.store import save_forget_set

    f = c["forget_set"]
    fs = ForgetSet(f["name"], f["kind"], f["params"], np.asarray(f["indices"], dtype=np.int64),
                   tuple(f.get("warnings") or ()))  # fmt: skip
    return save_forget_set(store, fs, c["dataset"]["name"]), fs.indices


def _rebuild_run(store: Store, c: dict, dev: str, tick: Progress) -> int:
    """Every set the run card names, then the run; the new run's id."""
    from core.attribution.fit import fit_datamodel
    from core.evaluation.run import evaluate
    from core.forget.oracles import ensure_model_set
    from core.zoo.recipe import TrainConfig

    train, sets = TrainConfig.from_dict(c["recipe"]["config"]), c["model_sets"]
    tick(0.0, "originals")
    orig = _build_set(store, sets["originals"], train, dev)
    fs_id, forget = _forget_set(store, c)
    for k, role in enumerate(("oracles", "floor")):
        tick(0.25 + 0.2 * k, f"oracle group ({role})")
        e = sets[role]
        ensure_model_set(store, "oracle", train.dataset, train=train, n_models=e["n_models"],
                         forget_set_id=fs_id, forget=forget, role=e["role"], device=dev,
                         base_set_id=orig, seed=e["seed_first"], chunk_size=e["chunk_size"])  # fmt: skip
    dm = c.get("datamodel")
    if dm:
        tick(0.6, f"datamodel: {dm['n_models']} subset models")
        sub = _build_set(store, dm["subset_set"], train, dev, n_models=dm["n_models"])
        fit_datamodel(store, train.dataset, original_set_id=orig, n_models=dm["n_models"],
                      fraction=dm["fraction"], kind=dm["kind"], target=dm["target"],
                      holdout=dm["holdout"], subset_set_id=sub, device=dev)  # fmt: skip
    seeds = {role: sets[role]["seed_first"] for role in ("unlearned", "heldout") if role in sets}
    if "heldout" in sets:
        tick(0.7, "held-out oracle group")
        e = sets["heldout"]
        ensure_model_set(store, "oracle", train.dataset, train=train, n_models=e["n_models"],
                         forget_set_id=fs_id, forget=forget, role="heldout", device=dev,
                         base_set_id=orig, seed=e["seed_first"], chunk_size=e["chunk_size"])  # fmt: skip
    m = c["method"]
    tick(0.85, f"the run: {m['name']}")
    return evaluate(store, fs_id, m["name"], dev, original_set_id=orig, recompute=True,
                    budget=m["budget"], set_seeds=seeds, **m["params"])  # fmt: skip


def _run_figures(old: dict, new: dict, exact: bool) -> list[dict]:
    out = []
    n = old["model_sets"]["originals"]["n_models"]
    for split in SPLITS:
        fo, fn = old["figures"][split], new["figures"][split]
        floor = float(fo["floor_p95"] or 0.0) + 1e-9
        for name in ("klom_p50", "klom_p95", "klom_p99", "floor_p95"):
            out.append({"split": split, **compare(name, fo[name], fn[name], floor, exact)})
        for name in ("accuracy", "floor_accuracy"):
            a = fo[name]
            tol = None if a is None else accuracy_tolerance(a, n * fo["count"])
            out.append({"split": split, **compare(name, a, fn[name], tol, exact)})
    for name in ("spent", "consumed"):
        out.append({"split": None, **compare(f"cost {name}", old["costs"][name],
                                             new["costs"][name], None, exact)})  # fmt: skip
    return out


def _set_checks(old: dict, new: dict, exact: bool) -> list[dict]:
    """Seeds and masks (always equal), margins (equal when exact) of every set both name."""
    out = []
    for role, e in old.items():
        if role not in new:
            out.append({"split": None, **compare(f"{role}: model set", e["id"], None, None, True)})
            continue
        for key in ("seed_first", "n_models", "masks_sha256"):
            out.append({"split": None, **compare(f"{role}: {key}", e[key], new[role][key],
                                                 None, True)})  # fmt: skip
        c = compare(
            f"{role}: margins_sha256", e["margins_sha256"], new[role]["margins_sha256"], None, True
        )
        out.append({"split": None, **c, "ok": c["equal"] or not exact})
    return out


def reproduce(c: dict, db_path: str | os.PathLike, device: str | None = None,
              progress: Progress | None = None) -> dict:  # fmt: skip
    """Rebuild card ``c`` in the new lab ``db_path`` and compare: a report with the mode
    (``exact`` or ``tolerance``, and why), warnings, every figure and check (card value,
    reproduced value, difference, tolerance, equal, within, ok), the verdict (``match``:
    ``exact`` | ``within tolerance`` | ``differs``; ``ok``) and the wall time."""
    check_card(c)
    if c["kind"] == "model_set" and c["model_set"]["kind"] == "unlearned":
        raise ConfigError("an unlearned model set is rebuilt by its run: reproduce the run's card "
                          "(python -m core card RUN_ID)")  # fmt: skip
    entries = [c["model_set"]] if c["kind"] == "model_set" else list(c["model_sets"].values())
    if any(e.get("imported") for e in entries):
        raise ConfigError("the card names margins imported from files: they have no recipe to "
                          "retrain by, so the card cannot be rebuilt")  # fmt: skip
    warnings = _preflight(c)
    store = fresh_store(db_path)
    dev = _device(c, device)
    exact, why = _mode(c, dev)
    tick = progress or (lambda f, m: None)
    t0 = time.perf_counter()
    with _threads(c):
        if c["kind"] == "run":
            new_id = _rebuild_run(store, c, dev, tick)
            new = card(store, new_id)
            rows = _set_checks(c["model_sets"], new["model_sets"], exact)
            if c.get("datamodel"):
                rows += _set_checks({"subsets": c["datamodel"]["subset_set"]},
                                    {"subsets": new["datamodel"]["subset_set"]}, exact)  # fmt: skip
            rows += _run_figures(c, new, exact)
        else:
            new_id = _rebuild_set(store, c, dev)
            new = model_set_card(store, new_id)
            rows = _set_checks({"set": c["model_set"]}, {"set": new["model_set"]}, exact)
            rows += _set_figures(c, new, exact)
    tick(1.0, "compared")
    rows.append({"split": None, **compare("recipe id", c["recipe"]["id"], new["recipe"]["id"],
                                          None, True)})  # fmt: skip
    if c.get("forget_set"):
        rows.append({"split": None, **compare(
            "forget indices sha256", c["forget_set"]["indices_sha256"],
            new["forget_set"]["indices_sha256"], None, True)})  # fmt: skip
    ok = all(r["ok"] for r in rows)
    match = ("exact" if all(r["equal"] for r in rows) else "within tolerance"
             if all(r["within"] for r in rows) else "differs")  # fmt: skip
    return {"kind": c["kind"], "card_id": c.get("run_id", c.get("set_id")),
            "reproduced_id": new_id, "db": str(store.path), "device": dev,
            "mode": "exact" if exact else "tolerance", "why": why, "warnings": warnings,
            "match": match, "ok": ok, "figures": rows,
            "wall_time_s": time.perf_counter() - t0, "card": new}  # fmt: skip


def _rebuild_set(store: Store, c: dict, dev: str) -> int:
    from core.zoo.recipe import TrainConfig

    e, train = c["model_set"], TrainConfig.from_dict(c["recipe"]["config"])
    if e["kind"] == "oracle":
        fs_id, forget = _forget_set(store, c)
        return _build_set(store, e, train, dev, forget=forget, forget_set_id=fs_id)
    return _build_set(store, e, train, dev)


def _set_figures(old: dict, new: dict, exact: bool) -> list[dict]:
    e = old["model_set"]
    ds = old["dataset"]
    out = []
    for name, n in (("train_accuracy", ds["n_train"]), ("val_accuracy", ds["n_val"])):
        a = old["figures"][name]
        tol = accuracy_tolerance(a, e["n_models"] * n)
        out.append({"split": None, **compare(name, a, new["figures"][name], tol, exact)})
    return out
