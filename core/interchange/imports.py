"""Ensembles trained elsewhere, imported as their margins (no weights), and their forget sets.

Format of a margins file: a ``.npy`` array ``(n_models, n_points)`` of floats (float16/32/64,
stored as float32), one row per model, ``n_points = n_train + n_val`` of the dataset in the
lab's point order — train points ``0 … n_train−1`` (torchvision's order for CIFAR-10), then
val points. Every value finite; at least 2 models (a distribution per point, and U-LiRA holds
half of each side out). ``rows=(a, b)`` imports rows ``a … b−1`` only (e.g. an authors' file
of 200 oracles as a main group of 100 and a floor group of 100).

An *import batch* plays the role of a recipe: importing originals starts one (recipe id
``import-<sha-256 of the rows imported>[:12]``); oracle groups (role ``main`` and ``floor``)
and unlearned margins are imported against those originals and copy their recipe id, so an
evaluation pairs the sets of one batch and never an imported set with a trained one. Imported
originals and oracles are model sets whose one chunk has margins and masks but no weights and
no argmax correctness (margins do not determine it): accuracies are NaN, ``load_ensemble``
refuses them, and only margins-only methods (``evaluation.MARGINS_ONLY``) run on them.
Imported *unlearned* margins are not a model set: they become an evaluation of method
``imported`` (or ``imported:<label>``) scored against the batch's oracles like any other run,
with compute cost ``cost`` (NaN, unknown, when not given).

Every import validates everything first and stores in one transaction; files written for a
transaction that fails are removed, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np

from core import code_version
from core.common.config import check_float
from core.common.errors import ConfigError
from core.common.npy_check import check_npy_size
from core.evaluation.run import find_evaluation, store_scored
from core.forget.oracles import pair_sets
from core.forget.sets import ForgetSet, check_name, validate_indices
from core.forget.store import get_forget_set, save_forget_set
from core.forget.uploads import name_from_file, parse_upload, read_upload, utf8_text
from core.store.db import Store
from core.unlearning import UnlearnResult
from core.zoo.build import SEED_BLOCK, _free_seed, get_model_set
from core.zoo.data import Dataset, load_dataset
from core.zoo.recipe import default_train_config

KINDS = ("original", "oracle", "unlearned")
MIN_MODELS = 2
MAX_NPY_BYTES = 4 << 30  # 4 GiB: 200 models × 60,000 points of float64 take 96 MB
_LABEL_RE = re.compile(r"[A-Za-z0-9_.\-]{1,40}")


def read_margins(path: str | Path, n_points: int, rows: tuple[int, int] | None = None):
    """The checked margins of a ``.npy`` file, ``(n_models, n_points)`` float32, and the
    sha-256 of the rows imported (their float32 bytes and shape). ``ConfigError`` for a missing
    or unreadable file, a pickled/object array, a non-float dtype, a shape other than
    ``(n ≥ 2, n_points)``, rows out of range, or a value that is NaN or infinite (in float32)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: no such file (expected a .npy array of margins)")
    if p.stat().st_size > MAX_NPY_BYTES:
        raise ConfigError(f"{p.name}: larger than {MAX_NPY_BYTES >> 30} GiB")
    with open(p, "rb") as fh:  # the header's shape against the file's size, before np.load
        check_npy_size(fh, p.stat().st_size, p.name)
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as err:
        if "Object arrays" in str(err):
            raise ConfigError(f"{p.name}: an object (pickled) array; margins must be a float "
                              "array") from None  # fmt: skip
        raise ConfigError(f"{p.name}: not a readable .npy array ({err})") from None
    except (OSError, EOFError) as err:
        raise ConfigError(f"{p.name}: not a readable .npy array ({err})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise ConfigError(f"{p.name}: an .npz archive; give one .npy array")
    if arr.dtype.kind != "f":
        raise ConfigError(f"{p.name}: dtype {arr.dtype} — margins must be floating point "
                          "(float16, float32 or float64)")  # fmt: skip
    if arr.ndim != 2:
        raise ConfigError(f"{p.name}: shape {arr.shape} — margins must be 2-D "
                          f"(n_models, n_points = {n_points})")  # fmt: skip
    if rows is not None:
        a, b = rows
        if not 0 <= a < b <= arr.shape[0]:
            raise ConfigError(f"rows {a}:{b} are outside the file's {arr.shape[0]} rows")
        arr = arr[a:b]
    n_models, got = arr.shape
    if got != n_points:
        raise ConfigError(
            f"{p.name}: {got} points per model, but the dataset has {n_points} (train then "
            "val, in the lab's order); are these margins of another dataset or split?"
        )
    if n_models < MIN_MODELS:
        raise ConfigError(f"{p.name}: {n_models} model(s); at least {MIN_MODELS} are needed "
                          "(a distribution of margins per point)")  # fmt: skip
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        m, j = np.argwhere(bad)[0]
        raise ConfigError(f"{p.name}: model {m}, point {j} is {arr[m, j]} (in float32: "
                          f"{out[m, j]}); every margin must be finite")  # fmt: skip
    digest = hashlib.sha256(f"{out.shape}".encode() + out.tobytes()).hexdigest()
    return out, digest


def _same_margins(store: Store, digest: str) -> int | None:
    df = store.query_df(
        "SELECT id FROM model_sets WHERE json_extract_string(source, '$.sha256') = ? LIMIT 1",
        [digest],
    )
    return None if df.empty else int(df["id"][0])


def _imported_originals(store: Store, dataset: str, original_set_id: int | None) -> int:
    if original_set_id is None:
        df = store.query_df(
            """SELECT id FROM model_sets WHERE kind = 'original' AND dataset = ? AND
               source IS NOT NULL ORDER BY id DESC LIMIT 1""",
            [dataset],
        )
        if df.empty:
            raise ConfigError(
                f"no imported originals of {dataset}: import them first (python -m core "
                f"import-margins --dataset {dataset} --kind original FILE.npy)"
            )
        return int(df["id"][0])
    ms = get_model_set(store, original_set_id)
    if ms.kind != "original" or ms.dataset != dataset:
        raise ConfigError(f"model set {original_set_id} holds {ms.kind} models of {ms.dataset}, "
                          f"not originals of {dataset}")  # fmt: skip
    if not ms.imported:
        raise ConfigError(
            f"original set {original_set_id} was trained here: its oracles are trained too "
            "(python -m core oracles), and imported margins pair only with imported originals"
        )
    return original_set_id


def import_margins(
    store: Store,
    dataset: str,
    kind: str,
    path: str | Path,
    *,
    forget_set_id: int | None = None,
    role: str = "main",
    original_set_id: int | None = None,
    rows: tuple[int, int] | None = None,
    arch: str | None = None,
    label: str | None = None,
    cost: float | None = None,
    data: Dataset | None = None,
) -> dict:
    """Import a margins file as originals, an oracle group or unlearned margins (module doc).

    Returns ``{"kind", "set_id" | "run_id", "recipe_id", "n_models", "sha256", "reused"}``.
    Oracles and unlearned margins need ``forget_set_id`` (a forget set of ``dataset``) and pair
    with ``original_set_id`` (default: the newest imported originals of the dataset).
    """
    t0 = time.perf_counter()
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}: choose one of {', '.join(KINDS)}")
    if role not in ("main", "floor"):
        raise ConfigError(f"unknown role {role!r}: main (the oracles) or floor (the second group)")
    if role == "floor" and kind != "oracle":
        raise ConfigError("--role floor is for oracles (the noise-floor group) only")
    if kind == "original" and forget_set_id is not None:
        raise ConfigError("originals are trained on the whole train split: drop --forget-set")
    if kind != "original" and forget_set_id is None:
        raise ConfigError(f"{kind} margins need --forget-set, the forget set they leave out")
    if kind != "unlearned" and (label is not None or cost is not None):
        raise ConfigError("--label and --cost describe unlearned margins only")
    if label is not None and not _LABEL_RE.fullmatch(label):
        raise ConfigError(f"label {label!r}: 1–40 letters, digits, '_', '.' or '-'")
    if cost is not None:
        check_float("cost", cost, 0.0, 1000.0)
    cfg = default_train_config(dataset, arch)  # checks dataset and arch
    data = data or load_dataset(dataset, "cpu")
    forget = None
    if forget_set_id is not None:
        fs, fs_dataset = get_forget_set(store, forget_set_id)
        if fs_dataset != dataset:
            raise ConfigError(f"forget set {forget_set_id} is of {fs_dataset}, not {dataset}")
        forget = fs.indices
    orig = None
    if kind != "original":
        orig = get_model_set(store, _imported_originals(store, dataset, original_set_id))
    margins, digest = read_margins(path, data.n_train + data.n_val, rows)
    source = {"file": Path(path).name, "sha256": digest, "rows": list(rows) if rows else None,
              "n_models": int(margins.shape[0])}  # fmt: skip
    if kind == "unlearned":
        return _import_unlearned(store, orig, forget_set_id, forget, margins, source, label,
                                 cost, data, t0)  # fmt: skip
    same = _same_margins(store, digest)
    if same is not None:
        raise ConfigError(f"these margins are already stored as model set {same}; one file "
                          "cannot be two groups of models")  # fmt: skip
    recipe_id = "import-" + digest[:12] if orig is None else orig.recipe_id
    if orig is not None:
        if margins.shape[0] != orig.n_models:
            raise ConfigError(
                f"{margins.shape[0]} oracle models for {orig.n_models} originals (set {orig.id}):"
                " a group of oracles must match the originals' number (import a slice with "
                "--rows START:STOP)"
            )
        taken = store.query_df(
            """SELECT id FROM model_sets WHERE kind = 'oracle' AND forget_set_id = ? AND role = ?
               AND recipe_id = ?""",
            [forget_set_id, role, recipe_id],
        )
        if not taken.empty:
            raise ConfigError(
                f"forget set {forget_set_id} already has {role} oracles of this import batch "
                f"(set {int(taken['id'][0])}); delete it first (python -m core models delete ID)"
            )
    mask = np.ones(data.n_train, dtype=bool)
    if forget is not None:
        mask[forget] = False
    masks = np.broadcast_to(mask, (margins.shape[0], data.n_train))
    set_id = _store_set(store, kind, role, cfg, margins, masks, data, forget_set_id, recipe_id,
                        None if orig is None else orig.id, source, t0)  # fmt: skip
    return {"kind": kind, "set_id": set_id, "recipe_id": recipe_id, "sha256": digest,
            "n_models": int(margins.shape[0]), "reused": False}  # fmt: skip


def _store_set(store, kind, role, cfg, margins, masks, data, fs_id, recipe_id, base, source, t0):
    """The set's row and its one chunk, in one transaction; its files go if that fails."""
    files: list[str] = []
    try:
        with store.transaction() as con:
            set_id = insert_set(con, store, files, kind, role, cfg, margins, masks, data.meta(),
                                fs_id, recipe_id, base, source, time.perf_counter() - t0)  # fmt: skip
    except BaseException:
        for f in files:
            store.file_path(f).unlink(missing_ok=True)
        raise
    return set_id


def insert_set(con, store, files, kind, role, cfg, margins, masks, data_meta, fs_id, recipe_id,
               base, source, wall_s, weights=None) -> int:  # fmt: skip
    """Insert an imported set (row and one chunk) on the open transaction ``con``; its array
    files are appended to ``files`` as they are written, for the caller to remove on failure.
    ``margins``: ``(n_models, n_train + n_val)``; ``masks``: ``(n_models, n_train)``;
    ``weights``: the stacked state of the models, when imported with them (``core.interchange.easydub``)."""
    n, nan = int(margins.shape[0]), float("nan")  # accuracies: unknown from margins
    set_id = int(con.execute("SELECT nextval('model_set_id_seq')").fetchone()[0])
    seed = _free_seed(con, set_id * SEED_BLOCK, n)  # reserved: the true seeds are unknown
    stem = f"model_sets/{set_id}/chunk00000"
    files.append(store.save_array(f"{stem}.margins.npy", margins))
    files.append(store.save_array(f"{stem}.masks.npy", np.ascontiguousarray(masks)))
    names = {"margins": files[-2], "masks": files[-1], "weights": None}
    if weights is not None:
        files.append(store.save_tensors(f"{stem}.weights.pt", weights))
        names["weights"] = files[-1]
    con.execute(
        """INSERT INTO model_sets (id, kind, role, dataset, arch, n_models, chunk_size,
           seed, fraction, forget_set_id, train_config, data_meta, code_version, device,
           status, recipe_id, base_set_id, source)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, 'import', 'complete', ?, ?, ?)""",
        [set_id, kind, role, cfg.dataset, cfg.arch, n, n, seed, fs_id, cfg.to_json(),
         json.dumps(data_meta), code_version(), recipe_id, base, json.dumps(source)],
    )  # fmt: skip
    con.execute(
        """INSERT INTO model_chunks (set_id, chunk, first_model, n_models, weights_file,
           margins_file, masks_file, train_acc, val_acc, wall_time_s, device,
           correct_file) VALUES (?, 0, 0, ?, ?, ?, ?, ?, ?, ?, 'import', NULL)""",
        [set_id, n, names["weights"], names["margins"], names["masks"], nan, nan, wall_s],
    )
    return set_id


def _import_unlearned(store, orig, fs_id, forget, margins, source, label, cost, data, t0):
    """Score imported unlearned margins as an evaluation of method ``imported[:label]``."""
    try:
        ids = pair_sets(store, fs_id, orig.id)
    except ConfigError:
        raise ConfigError(
            f"forget set {fs_id} has no imported oracles of original set {orig.id}'s batch: "
            f"import its main and floor groups first (python -m core import-margins --kind "
            f"oracle --forget-set {fs_id} [--role floor] FILE.npy)"
        ) from None
    method = "imported" if label is None else f"imported:{label}"
    options = {"file": source["file"], "sha256": source["sha256"], "rows": source["rows"]}
    found = find_evaluation(store, fs_id, method, ids, options)
    if found is not None:
        return {"kind": "unlearned", "run_id": found, "recipe_id": orig.recipe_id,
                "sha256": source["sha256"], "n_models": source["n_models"], "reused": True}  # fmt: skip
    result = UnlearnResult(
        margins, None, float("nan") if cost is None else float(cost), info={"imported": source}
    )
    config = {"method": method, "forget_set_id": fs_id, "options": options,
              "original_set_id": ids[0], "oracle_set_id": ids[1], "floor_set_id": ids[2]}  # fmt: skip
    run_id = store_scored(store, config, result, fs_id, method, (data.n_train, data.n_val),
                          forget, "import", t0)  # fmt: skip
    return {"kind": "unlearned", "run_id": run_id, "recipe_id": orig.recipe_id,
            "sha256": source["sha256"], "n_models": source["n_models"], "reused": False}  # fmt: skip


def read_index_file(path: str | Path, n_train: int) -> tuple[list[int], str]:
    """Raw train indices of a forget-set file and its name: a ``.npy`` array of integers
    (read flat, never unpickled), or a text / CSV / JSON list (``core.forget.uploads``)."""
    data, name = read_upload(path)
    return parse_upload(data, name, n_train), name


def import_forget_set(
    store: Store, dataset: str, path: str | Path, name: str | None = None,
    data: Dataset | None = None,
) -> tuple[int, ForgetSet]:  # fmt: skip
    """Store a forget set read from an index file (``read_index_file``): kind ``upload``,
    indices checked against the train split (duplicates dropped with a warning); its id."""
    data = data or load_dataset(dataset, "cpu")
    raw, filename = read_index_file(path, data.n_train)
    idx, warns = validate_indices(raw, data.n_train)
    name = check_name(name) if name else name_from_file(filename, "import")
    params = {"n_train": data.n_train, "filename": utf8_text(filename), "imported": True}
    fs = ForgetSet(name, "upload", params, idx, warns)
    return save_forget_set(store, fs, dataset), fs
