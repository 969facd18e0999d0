"""EasyDUB's dataset directory (the seed paper's CIFAR-10 / ResNet-9 setting) as one import batch.

The directory's layout (``DS`` is ``cifar10`` in EasyDUB's own files; an export from the lab
writes the lab's dataset name there), every array 1-D, one file per model ``m``:

- ``forget_sets/DS/forget_set_{k}.npy``: forget set k, ``(|F_k|,)`` train indices;
- ``margins/DS/pretrain/retain/resnet9/id_{m}_epoch_23.npy``: ``(n_train,)``, every train point;
- ``margins/DS/pretrain/val/resnet9/id_{m}_epoch_23.npy``: ``(n_val,)``, the test split;
- ``margins/DS/pretrain/forget_{k}/resnet9/id_{m}_epoch_23.npy``: ``(|F_k|,)``, the forget
  points in ``forget_set_{k}.npy``'s order (the same models as ``retain``: checked, not stored);
- ``margins/DS/oracle/forget_{k}/{retain,forget,val}/resnet9/id_{m}_epoch_23.npy``: a model
  retrained without F_k, on the ``n_train − |F_k|`` retained points in index order, on F_k in
  the file's order, and on the val split;
- ``models/DS/pretrain/resnet9/id_{m}_epoch_23.pt``: the pretrained state dicts;
- ``data/cifar-10-batches-py/``: CIFAR-10 in torchvision's format.

A margin is ``z_y − logsumexp_{j≠y} z_j`` there as here. The import assembles each model's
margins into the lab's point order (train ``0 … n_train−1``, then val) and stores, in one
transaction: the forget sets; pretrained models ``0 … N−1`` as the originals; for each forget
set, oracles ``0 … N−1`` as the evaluation group (role ``main``) and ``N … 2N−1`` as the
noise-floor group. The batch's recipe id, ``import-easydub-<sha-256 of every array>[:12]``,
is its own, so an evaluation pairs these sets with each other only. Every file is read and
checked before anything is written; a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.common.errors import ConfigError
from core.common.npy_check import check_npy_size
from core.forget.sets import ForgetSet, check_name
from core.interchange.easydub_weights import ARCH, load_stacked
from core.interchange.imports import MAX_NPY_BYTES, MIN_MODELS, insert_set
from core.store.db import Store
from core.zoo.data import Dataset, load_dataset
from core.zoo.recipe import TrainConfig, default_train_config

EPOCH_TAG = "epoch_23"  # EasyDUB's files are the models after their 24th (last) epoch
ARCH_DIR = "resnet9"
Progress = Callable[[int, int], None]  # (files read, files to read)


def rel_forget(ds: str, k: int) -> str:
    return f"forget_sets/{ds}/forget_set_{k}.npy"


def rel_margins(ds: str, kind: str, split: str, k: int | None, m: int) -> str:
    """Relative path of one model's margins: ``kind`` pretrain or oracle; ``split`` retain,
    forget or val (pretrain forget and every oracle file need the forget set ``k``)."""
    base = f"margins/{ds}/{kind}"
    if kind == "pretrain":
        base += f"/forget_{k}" if split == "forget" else f"/{split}"
    else:
        base += f"/forget_{k}/{split}"
    return f"{base}/{ARCH_DIR}/id_{m}_{EPOCH_TAG}.npy"


def rel_weights(ds: str, m: int) -> str:
    return f"models/{ds}/pretrain/{ARCH_DIR}/id_{m}_{EPOCH_TAG}.pt"


def read_npy(root: Path, rel: str) -> np.ndarray:
    """One ``.npy`` array of the directory, never unpickled; ``ConfigError`` naming ``rel``
    for a missing file, a header larger than the file, a pickle, an archive or garbage."""
    p = root / rel
    if not p.is_file():
        raise ConfigError(f"{rel}: missing from the EasyDUB directory {root}")
    size = p.stat().st_size
    if size > MAX_NPY_BYTES:
        raise ConfigError(f"{rel}: larger than {MAX_NPY_BYTES >> 30} GiB")
    with open(p, "rb") as fh:
        check_npy_size(fh, size, rel)
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as err:
        if "Object arrays" in str(err):
            raise ConfigError(f"{rel}: a pickled (object) array where numbers belong") from None
        raise ConfigError(f"{rel}: not a readable .npy array ({err})") from None
    except (OSError, EOFError) as err:
        raise ConfigError(f"{rel}: not a readable .npy array ({err})") from None
    if not isinstance(arr, np.ndarray):
        raise ConfigError(f"{rel}: an .npz archive where one .npy array belongs")
    return arr


def read_vector(root: Path, rel: str, n: int) -> np.ndarray:
    """A file of margins: float, shape ``(n,)``, every value finite in float32 → float32."""
    arr = read_npy(root, rel)
    if arr.dtype.kind != "f":
        raise ConfigError(f"{rel}: dtype {arr.dtype}; margins are floating point")
    if arr.shape != (n,):
        raise ConfigError(f"{rel}: shape {arr.shape}, expected ({n},)")
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ConfigError(f"{rel}: point {bad[0]} is {arr[bad[0]]}; every margin must be finite")
    return out


def read_forget(root: Path, ds: str, k: int, n_train: int) -> np.ndarray:
    """Forget set k in its file's order: ``(|F|,)`` distinct int64 train indices."""
    rel = rel_forget(ds, k)
    arr = read_npy(root, rel)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise ConfigError(f"{rel}: {arr.dtype} of shape {arr.shape}; expected 1-D integers")
    if arr.size == 0 or arr.size >= n_train:
        raise ConfigError(f"{rel}: {arr.size} indices; a forget set has 1 … {n_train - 1}")
    if arr.min() < 0 or arr.max() >= n_train:
        raise ConfigError(f"{rel}: indices outside the train split [0, {n_train})")
    idx = arr.astype(np.int64)
    if np.unique(idx).size != idx.size:
        raise ConfigError(f"{rel}: repeated indices")
    return idx


def found_forget_sets(root: Path, ds: str) -> list[int]:
    """The ids k of ``forget_sets/DS/forget_set_{k}.npy`` present, in increasing order."""
    pat = re.compile(r"forget_set_(\d+)\.npy")
    folder = root / "forget_sets" / ds
    ks = [int(m.group(1)) for p in folder.glob("forget_set_*.npy") if (m := pat.fullmatch(p.name))]
    if not ks:
        raise ConfigError(f"forget_sets/{ds}/: no forget_set_K.npy in {root}")
    return sorted(ks)


def _count(root: Path, rel_of: Callable[[int], str]) -> int:
    """How many consecutive model ids 0, 1, … have a file."""
    m = 0
    while (root / rel_of(m)).is_file():
        m += 1
    return m


@dataclass
class Batch:
    """Everything read from the directory, in the lab's point order (train then val).

    ``originals``: ``(N, n_train + n_val)``; ``forget[k]``: indices in the file's order;
    ``oracles[k]``: ``(2N, n_train + n_val)`` (rows ``0 … N−1`` main, ``N … 2N−1`` floor)."""

    n_models: int
    originals: np.ndarray
    forget: dict[int, np.ndarray] = field(default_factory=dict)
    oracles: dict[int, np.ndarray] = field(default_factory=dict)
    pretrain_forget_gap: dict[int, float] = field(default_factory=dict)

    def digest(self) -> str:
        h = hashlib.sha256(self.originals.tobytes())
        for k in sorted(self.forget):
            h.update(f"{k}:".encode() + self.forget[k].tobytes() + self.oracles[k].tobytes())
        return h.hexdigest()


def read_batch(
    root: Path, ds: str, ks: list[int], n_models: int | None, n_train: int, n_val: int,
    progress: Progress | None = None,
) -> Batch:  # fmt: skip
    """Read and check every file of forget sets ``ks`` and N models (default: the most the
    directory holds, N pretrained and 2N oracles of every forget set)."""
    forget = {k: read_forget(root, ds, k, n_train) for k in ks}
    have_orig = _count(root, lambda m: rel_margins(ds, "pretrain", "retain", None, m))
    have_orac = min(_count(root, lambda m, k=k: rel_margins(ds, "oracle", "retain", k, m))
                    for k in ks)  # fmt: skip
    n = min(have_orig, have_orac // 2) if n_models is None else int(n_models)
    if have_orig < n:
        raise ConfigError(f"{rel_margins(ds, 'pretrain', 'retain', None, have_orig)}: missing; "
                          f"{n} models need pretrained ids 0 … {n - 1}")  # fmt: skip
    for k in ks:
        have = _count(root, lambda m, k=k: rel_margins(ds, "oracle", "retain", k, m))
        if have < 2 * n:
            raise ConfigError(
                f"{rel_margins(ds, 'oracle', 'retain', k, have)}: missing; {n} models need "
                f"oracle ids 0 … {2 * n - 1} (N evaluated, N more for the noise floor)"
            )
    if n < MIN_MODELS:
        raise ConfigError(
            f"{root}: {have_orig} pretrained models and {have_orac} oracles per forget set; at "
            f"least {MIN_MODELS} originals and {2 * MIN_MODELS} oracles (two groups) are needed"
        )
    total, done = n * 2 + sum(n * 2 * 3 + n for _ in ks), 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None and done % max(1, total // 100) == 0:
            progress(done, total)

    P = n_train + n_val
    originals = np.empty((n, P), dtype=np.float32)  # (N, n_train + n_val)
    for m in range(n):
        originals[m, :n_train] = read_vector(root, rel_margins(ds, "pretrain", "retain", None, m),
                                             n_train)  # fmt: skip
        tick()
        originals[m, n_train:] = read_vector(root, rel_margins(ds, "pretrain", "val", None, m),
                                             n_val)  # fmt: skip
        tick()
    batch = Batch(n, originals)
    for k, idx in forget.items():
        keep = np.ones(n_train, dtype=bool)
        keep[idx] = False
        retained = np.flatnonzero(keep)  # the oracles' retain files follow index order
        gap = 0.0
        for m in range(n):
            f = read_vector(root, rel_margins(ds, "pretrain", "forget", k, m), idx.size)
            gap = max(gap, float(np.abs(f - originals[m, idx]).max()))
            tick()
        rows = np.empty((2 * n, P), dtype=np.float32)  # (2N, n_train + n_val)
        for m in range(2 * n):
            parts = (("retain", retained), ("forget", idx), ("val", None))
            for split, where in parts:
                size = n_val if where is None else where.size
                v = read_vector(root, rel_margins(ds, "oracle", split, k, m), size)
                if where is None:
                    rows[m, n_train:] = v
                else:
                    rows[m, where] = v
                tick()
        batch.forget[k], batch.oracles[k], batch.pretrain_forget_gap[k] = idx, rows, gap
    return batch


def easydub_recipe(dataset: str, n_train: int) -> TrainConfig:
    """The recipe stored with the batch: EasyDUB's training (``resnet9_easydub``, 24 epochs of
    batch 256, SGD momentum 0.9 without Nesterov, weight decay 5e-4, lr 0.4 reached linearly at
    epoch 5 then linearly to 0, no augmentation, no label smoothing). It sets what fine-tuning
    methods start from and what "one retraining" costs (compute cost = gradient evaluations /
    (n_train × 24)); the batch is capped at the train split (tiny test data). Another dataset
    (a lab export read back) keeps the lab's default recipe."""
    if dataset != "cifar10":
        return default_train_config(dataset)
    return default_train_config(dataset, ARCH).replace(
        epochs=24, batch_size=min(256, n_train), lr=0.4, nesterov=False, warmup=5 / 24,
        label_smoothing=0.0, augment=False,
    )  # fmt: skip


def forget_set_name(k: int) -> str:
    return f"easydub-forget-{k}"


def import_easydub(
    store: Store, root: str | Path, *, forget_sets: list[int] | None = None,
    n_models: int | None = None, dataset: str = "cifar10", data: Dataset | None = None,
    weights: bool = False, progress: Progress | None = None,
) -> dict:  # fmt: skip
    """Import an EasyDUB directory as one batch (module doc). ``weights``: the pretrained
    checkpoints too, loaded into ``resnet9_easydub`` (``core.interchange.easydub_weights``), so that the
    originals run every unlearning method; else margins only. Returns the ids stored:
    ``{"recipe_id", "n_models", "original_set_id", "forget_sets": [{"k", "id", "size",
    "main_set_id", "floor_set_id", "pretrain_forget_gap"}]}``."""
    t0 = time.perf_counter()
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory (an EasyDUB dataset directory)")
    if n_models is not None and (isinstance(n_models, bool) or n_models < MIN_MODELS):
        raise ConfigError(f"--models {n_models}: at least {MIN_MODELS}")
    if weights and dataset != "cifar10":
        raise ConfigError("--weights: EasyDUB's checkpoints are ResNet-9s of cifar10")
    data = data or load_dataset(dataset, "cpu", root=root / "data")
    cfg = easydub_recipe(dataset, data.n_train)
    ks = forget_sets or found_forget_sets(root, dataset)
    batch = read_batch(root, dataset, sorted(set(ks)), n_models, data.n_train, data.n_val,
                       progress)  # fmt: skip
    state = None
    if weights:
        paths = [(root / rel_weights(dataset, m), rel_weights(dataset, m))
                 for m in range(batch.n_models)]  # fmt: skip
        state = load_stacked(paths, data.input_shape, data.num_classes)
    digest = batch.digest()
    recipe_id = "import-easydub-" + digest[:12]
    n, meta = batch.n_models, data.meta()
    src = {"easydub": str(root), "sha256": digest, "n_models": n, "weights": False}
    files: list[str] = []
    out: dict = {"recipe_id": recipe_id, "n_models": n, "weights": weights, "forget_sets": []}
    try:
        with store.transaction() as con:
            same = con.execute(
                "SELECT id FROM model_sets WHERE recipe_id = ? LIMIT 1", [recipe_id]
            ).fetchone()
            if same:
                raise ConfigError(f"{root}: these files are already imported (model set "
                                  f"{same[0]}, recipe {recipe_id})")  # fmt: skip
            full = np.ones((n, data.n_train), dtype=bool)
            wall = time.perf_counter() - t0
            s = {**src, "file": "pretrain", "weights": state is not None}
            orig = insert_set(con, store, files, "original", "main", cfg, batch.originals, full,
                              meta, None, recipe_id, None, s, wall, state)  # fmt: skip
            out["original_set_id"] = orig
            for k, idx in batch.forget.items():
                fs_id = _insert_forget_set(con, dataset, k, idx, data.n_train, str(root))
                mask = np.ones(data.n_train, dtype=bool)
                mask[idx] = False
                masks = np.broadcast_to(mask, (n, data.n_train))
                ids = []
                for role, rows in (("main", slice(0, n)), ("floor", slice(n, 2 * n))):
                    s = {**src, "file": f"oracle/forget_{k}", "rows": [rows.start, rows.stop]}
                    ids.append(insert_set(con, store, files, "oracle", role, cfg,
                                          batch.oracles[k][rows], masks, meta, fs_id, recipe_id,
                                          orig, s, wall))  # fmt: skip
                out["forget_sets"].append({
                    "k": k, "id": fs_id, "size": int(idx.size), "main_set_id": ids[0],
                    "floor_set_id": ids[1], "pretrain_forget_gap": batch.pretrain_forget_gap[k],
                })  # fmt: skip
    except BaseException:
        for f in files:
            store.file_path(f).unlink(missing_ok=True)
        raise
    return out


def _insert_forget_set(con, dataset: str, k: int, idx: np.ndarray, n_train: int, root: str) -> int:
    """Forget set k on the open transaction, stored as the lab stores one (sorted indices)."""
    name = check_name(forget_set_name(k))
    taken = con.execute(
        "SELECT id FROM forget_sets WHERE dataset = ? AND name = ?", [dataset, name]
    ).fetchone()
    if taken:
        raise ConfigError(f"a forget set named {name!r} already exists for {dataset} (id "
                          f"{taken[0]}): this directory's forget set {k} is imported already")  # fmt: skip
    fs = ForgetSet(name, "upload", {"n_train": n_train, "easydub": k, "imported": True},
                   np.sort(idx))  # fmt: skip
    row = con.execute(
        """INSERT INTO forget_sets (name, dataset, kind, params, indices, size, warnings)
           VALUES (?, ?, ?, ?, ?, ?, '[]') RETURNING id""",
        [name, dataset, fs.kind, json.dumps(fs.params), [int(i) for i in fs.indices], fs.size],
    ).fetchone()
    return int(row[0])
