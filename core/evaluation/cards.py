"""Reproducibility cards: everything needed to rebuild a run (or a model set) from nothing.

A *run card* holds, for one evaluation: the dataset's identity (name and the sha-256 of its
arrays), the recipe and its id, every model set the run read or made (originals, oracles, the
noise-floor group, the unlearned models, Oracle Matching's held-out group, a datamodel's subset
models) with its seed range ``[seed, seed + n_models − 1]``, chunk size and the sha-256 of its
training masks, the forget set (its indices, their sha-256 and how it was made), the code
version, the method and all its hyperparameters (budget included), its costs (spent: its
example-gradients over retraining's; consumed: what else it used, in retrainings per model),
the device and threads, and its headline figures per split (KLoM P50 / P95 / P99, the floor's
P95, accuracies). A *model-set card* holds the same for one set, its figures being its mean
argmax accuracies on train and val and the sha-256 of its margins. ``core.evaluation.reproduce`` rebuilds
a card in a fresh lab and compares figure by figure. ``markdown`` writes a card for a paper's
appendix. Never imports streamlit.

Hashes: ``sha256`` of arrays is over each array's dtype, shape and C-order bytes, in order.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__, code_version
from core.common.errors import ConfigError, NotFoundError
from core.store.db import Store

CARD_FORMAT = "unlearning-lab card"
CARD_VERSION = 1
SPLITS = ("forget", "retain", "val")
FIGURES = ("klom_p50", "klom_p95", "klom_p99", "floor_p95", "accuracy", "floor_accuracy")


def sha256_arrays(*arrays: Any) -> str:
    """sha-256 over each array's dtype, shape and C-order bytes, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@functools.cache
def dataset_identity(name: str) -> dict:
    """Name, sizes and the sha-256 of a dataset's arrays as the lab trains on them
    (``x_train, y_train, x_val, y_val``: standardized float32 inputs and int64 labels)."""
    from core.zoo.data import load_dataset

    d = load_dataset(name, "cpu")
    digest = sha256_arrays(*(t.cpu().numpy() for t in (d.x_train, d.y_train, d.x_val, d.y_val)))
    return {"name": name, "sha256": digest, "n_train": d.n_train, "n_val": d.n_val,
            "num_classes": d.num_classes}  # fmt: skip


@functools.cache
def core_sha256() -> str:
    """sha-256 of the engine's sources: every ``core/**/*.py`` by relative path and bytes."""
    root = Path(__file__).resolve().parent.parent  # core/
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def code_identity() -> dict:
    """This code: ``version`` (package version + git commit when known, ``-dirty`` for local
    changes), whether git named it, and the sha-256 of ``core/``'s sources."""
    v = code_version()
    return {"version": v, "git": v != __version__, "core_sha256": core_sha256()}


def _set_entry(store: Store, set_id: int, first: int | None = None) -> dict:
    """One model set as a card holds it: kind, role, size, seed range, chunking, device, code,
    recipe id, the sha-256 of its masks and of its margins, and its mean argmax accuracies.
    ``first``: only the set's first models (a datamodel's M subset models), as if it held those."""
    from core.zoo.model_sets import _chunk_rows, get_model_set, load_margins, load_masks

    ms = get_model_set(store, set_id)
    n_models = ms.n_models if first is None else min(int(first), ms.n_models)
    rows = _chunk_rows(store, set_id)
    rows = rows[rows["first_model"] < n_models]
    n = rows["n_models"].astype(float)
    code = store.query_df("SELECT code_version FROM model_sets WHERE id = ?", [set_id])
    return {
        "id": ms.id, "kind": ms.kind, "role": ms.role, "n_models": n_models,
        "seed_first": ms.seed, "seed_last": ms.seed + n_models - 1,
        "chunk_size": ms.chunk_size, "fraction": ms.fraction, "forget_set_id": ms.forget_set_id,
        "recipe_id": ms.recipe_id, "device": ms.device,
        "code_version": str(code["code_version"][0]), "imported": ms.imported,
        "masks_sha256": sha256_arrays(load_masks(store, set_id)[:n_models]),
        "margins_sha256": sha256_arrays(load_margins(store, set_id)[:n_models]),
        "train_accuracy": float((rows["train_acc"] * n).sum() / n.sum()),
        "val_accuracy": float((rows["val_acc"] * n).sum() / n.sum()),
        "wall_time_s": float(rows["wall_time_s"].sum()),
    }  # fmt: skip


def _forget_entry(store: Store, forget_set_id: int) -> dict:
    from core.forget.store import get_forget_set

    fs, dataset = get_forget_set(store, forget_set_id)
    return {"id": forget_set_id, "name": fs.name, "dataset": dataset, "kind": fs.kind,
            "params": fs.params, "size": fs.size, "warnings": list(fs.warnings),
            "indices_sha256": sha256_arrays(fs.indices.astype(np.int64)),
            "indices": [int(i) for i in fs.indices]}  # fmt: skip


def _datamodel_entry(store: Store, datamodel_id: int) -> dict:
    from core.attribution.datamodels import get_datamodel

    dm = get_datamodel(store, datamodel_id)
    return {"id": dm.id, "kind": dm.kind, "target": dm.target, "n_models": dm.n_models,
            "n_fit": dm.n_fit, "n_heldout": dm.n_heldout, "fraction": dm.fraction,
            "holdout": dm.config.get("holdout"), "lam": dm.lam, "lds_train": dm.lds_train,
            "lds_val": dm.lds_val,
            "subset_set": _set_entry(store, dm.subset_set_id, first=dm.n_models)}  # fmt: skip


def _figures(summaries) -> dict:
    """Per split: KLoM P50/P95/P99 and the accuracy of the scored models, the floor's P95 and
    accuracy (the second oracle group's), and what the accuracy counts."""
    s = summaries.set_index(["split", "metric"])
    out = {}
    for split in SPLITS:
        k, f = s.loc[(split, "klom")], s.loc[(split, "floor")]
        out[split] = {"klom_p50": k["p50"], "klom_p95": k["p95"], "klom_p99": k["p99"],
                      "floor_p95": f["p95"], "accuracy": k["accuracy"],
                      "floor_accuracy": f["accuracy"], "accuracy_kind": k["accuracy_kind"],
                      "count": int(k["count"])}  # fmt: skip
    return {sp: {k: _num(v) for k, v in d.items()} for sp, d in out.items()}


def _num(v):
    if isinstance(v, str | int) or v is None:
        return v
    v = float(v)
    return v if np.isfinite(v) else None


def _heldout_set(store: Store, run: dict, forget_set_id: int) -> int | None:
    """Oracle Matching's held-out group for the run: the newest of its originals' recipe and
    size for the forget set stored before the run (the one its method read)."""
    from core.zoo.model_sets import get_model_set

    orig = get_model_set(store, run["config"]["original_set_id"])
    df = store.query_df(
        """SELECT id FROM model_sets WHERE kind = 'oracle' AND role = 'heldout' AND status =
           'complete' AND forget_set_id = ? AND recipe_id = ? AND n_models = ? AND created_at
           <= ? ORDER BY id DESC LIMIT 1""",
        [forget_set_id, orig.recipe_id, orig.n_models, run["created_at"]],
    )
    return None if df.empty else int(df["id"][0])


def card(store: Store, run_id: int) -> dict:
    """The reproducibility card of evaluation ``run_id`` (a JSON-able dict; see the module)."""
    from core.evaluation.run import evaluation
    from core.unlearning import METHODS
    from core.zoo.model_sets import get_model_set

    ev = evaluation(store, run_id)  # NotFoundError for an unknown id
    row, run = ev["evaluation"], store.run(run_id)
    config = run["config"]
    method, fs_id = str(row["method"]), int(row["forget_set_id"])
    orig = get_model_set(store, int(row["original_set_id"]))
    sets = {"originals": int(row["original_set_id"]), "oracles": int(row["oracle_set_id"]),
            "floor": int(row["floor_set_id"])}  # fmt: skip
    if row["unlearned_set_id"] is not None and not _isnan(row["unlearned_set_id"]):
        sets["unlearned"] = int(row["unlearned_set_id"])
    if getattr(METHODS.get(method), "needs_heldout", False):
        held = _heldout_set(store, run, fs_id)
        if held is not None:
            sets["heldout"] = held
    info = config.get("info") or {}
    options = dict(config.get("options") or {})
    return {
        "card": CARD_FORMAT, "card_version": CARD_VERSION, "kind": "run", "run_id": run_id,
        "created_at": str(run["created_at"]),
        "dataset": dataset_identity(orig.dataset),
        "recipe": {"id": orig.recipe_id, "config": orig.train.to_dict(),
                   "describe": orig.train.describe()},
        "code": {"version": run["code_version"], "exported_with": code_identity()},
        "forget_set": _forget_entry(store, fs_id),
        "model_sets": {role: _set_entry(store, sid) for role, sid in sets.items()},
        "datamodel": (_datamodel_entry(store, int(info["datamodel_id"]))
                      if "datamodel_id" in info else None),
        "method": {"name": method, "budget": options.pop("budget", None), "params": options},
        "costs": {"spent": float(row["compute_cost"]),
                  "consumed": float(config.get("consumed_cost") or 0.0),
                  "wall_time_s": float(run["wall_time_s"]), "info": info},
        "environment": {"device": run["device"], "threads": config.get("threads"),
                        "lab_threads": config.get("lab_threads")},
        "figures": _figures(ev["summaries"]),
    }  # fmt: skip


def _isnan(v) -> bool:
    return isinstance(v, float) and not np.isfinite(v)


def model_set_card(store: Store, set_id: int) -> dict:
    """The reproducibility card of model set ``set_id``: dataset, recipe, code, the set (seed
    range, chunking, masks and margins hashes), its forget set when it has one, and its figures
    (mean argmax accuracy on train and val)."""
    from core.zoo.model_sets import get_model_set

    ms = get_model_set(store, set_id)
    if ms.status != "complete":
        raise ConfigError(f"model set {set_id} is unfinished; a card needs a complete set")
    if ms.imported:
        raise ConfigError(f"model set {set_id} was imported ({ms.source.get('file')}); it has "
                          "no recipe to rebuild it by, so no card")  # fmt: skip
    entry = _set_entry(store, set_id)
    return {
        "card": CARD_FORMAT, "card_version": CARD_VERSION, "kind": "model_set", "set_id": set_id,
        "dataset": dataset_identity(ms.dataset),
        "recipe": {"id": ms.recipe_id, "config": ms.train.to_dict(),
                   "describe": ms.train.describe()},
        "code": {"version": entry["code_version"], "exported_with": code_identity()},
        "forget_set": (_forget_entry(store, ms.forget_set_id)
                       if ms.forget_set_id is not None else None),
        "model_set": entry,
        "environment": {"device": ms.device, "threads": None, "lab_threads": None},
        "figures": {"train_accuracy": entry["train_accuracy"],
                    "val_accuracy": entry["val_accuracy"]},
    }  # fmt: skip


def card_of(store: Store, run_id: int | None = None, set_id: int | None = None) -> dict:
    """``card`` of a run or ``model_set_card`` of a set (exactly one of the two ids)."""
    if (run_id is None) == (set_id is None):
        raise ConfigError("name a run id, or a model set with --set ID")
    if set_id is not None:
        return model_set_card(store, set_id)
    found = store.query_df("SELECT 1 FROM evaluations WHERE run_id = ?", [run_id])
    if found.empty:
        raise NotFoundError(f"there is no evaluation run with id {run_id}")
    return card(store, run_id)


def dumps(c: dict) -> str:
    """The card as strict JSON (NaN and infinities as null), indented."""
    from core.common.jsonable import plain

    return json.dumps(plain(c), indent=2, allow_nan=False)


def _f(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _seeds(e: dict) -> str:
    return (
        f"{e['seed_first']}–{e['seed_last']} ({e['n_models']} models, chunks of {e['chunk_size']})"
    )


def markdown(c: dict) -> str:
    """The card as Markdown for a paper's appendix: identity, seeds, method, costs, figures."""
    ds, rc, code = c["dataset"], c["recipe"], c["code"]
    head = (
        f"Run {c['run_id']}: {c['method']['name']}"
        if c["kind"] == "run"
        else f"Model set {c['set_id']}: {c['model_set']['kind']} ({c['model_set']['role']})"
    )
    lines = [
        f"### Reproducibility card — {head}", "",
        f"- **Dataset**: {ds['name']} ({ds['n_train']} train / {ds['n_val']} val, "
        f"{ds['num_classes']} classes), arrays sha-256 `{ds['sha256'][:16]}…`",
        f"- **Recipe** `{rc['id']}`: {rc['describe']}",
        f"- **Code**: `{code['version']}` (exported with `{code['exported_with']['version']}`, "
        f"core/ sha-256 `{code['exported_with']['core_sha256'][:16]}…`)",
    ]  # fmt: skip
    fs = c.get("forget_set")
    if fs:
        params = ", ".join(f"{k}={v}" for k, v in fs["params"].items())
        lines.append(f"- **Forget set** {fs['name']!r}: {fs['kind']} ({params}), {fs['size']} "
                     f"points, indices sha-256 `{fs['indices_sha256'][:16]}…`")  # fmt: skip
    env = c["environment"]
    lines.append(
        f"- **Device**: {env['device']}; threads: {_f(env['threads'])} "
        f"(training: {_f(env['lab_threads']) if env['lab_threads'] else 'per chunk'})"
    )
    lines += ["", "| models | kind | seeds | masks sha-256 |", "|---|---|---|---|"]
    sets = c["model_sets"] if c["kind"] == "run" else {"set": c["model_set"]}
    if c.get("datamodel"):
        sets = {**sets, "subset models (datamodel)": c["datamodel"]["subset_set"]}
    for role, e in sets.items():
        lines.append(f"| {role} | {e['kind']}/{e['role']} | {_seeds(e)} | "
                     f"`{e['masks_sha256'][:16]}…` |")  # fmt: skip
    if c["kind"] == "model_set":
        fg = c["figures"]
        lines += ["", f"Argmax accuracy: train {_f(fg['train_accuracy'])}, val "
                      f"{_f(fg['val_accuracy'])}."]  # fmt: skip
        return "\n".join(lines) + "\n"
    m, cost = c["method"], c["costs"]
    params = ", ".join(f"{k}={v}" for k, v in m["params"].items()) or "none"
    lines += ["", f"**Method** `{m['name']}`, budget {_f(m['budget'])}, hyperparameters: {params}.",
              f"**Cost**: spent {_f(cost['spent'])} of a retraining's example-gradients; "
              f"consumed {_f(cost['consumed'])} retrainings per model."]  # fmt: skip
    dm = c.get("datamodel")
    if dm:
        lines.append(
            f"**Datamodel** {dm['kind']} on {dm['target']}, M = {dm['n_models']} "
            f"subset models (α = {dm['fraction']}), LDS val {_f(dm['lds_val'], 3)}."
        )
    lines += ["", "| split | KLoM P50 | KLoM P95 | KLoM P99 | floor P95 | accuracy | floor acc. |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for split, f in c["figures"].items():
        lines.append(f"| {split} | " + " | ".join(_f(f[k]) for k in FIGURES) + " |")
    kind = c["figures"]["forget"]["accuracy_kind"]
    lines += ["", f"Accuracy: {kind}; floor: the second oracle group (argmax)."]
    return "\n".join(lines) + "\n"
