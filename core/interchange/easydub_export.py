"""A lab's evaluation setting written in EasyDUB's directory layout (``core.interchange.easydub``), so that
EasyDUB's own scripts can score the lab's models, and ``import-easydub`` reads it back.

For forget set ``k`` (the lab's id) of dataset ``DS``, the sets an evaluation pairs
(``oracles.pair_sets``: N originals, N oracles, N noise-floor oracles) are written as

- ``OUT/forget_sets/DS/forget_set_{k}.npy``: the indices, sorted (int64);
- ``OUT/margins/DS/pretrain/{retain,val}/resnet9/id_{m}_epoch_23.npy`` and
  ``…/pretrain/forget_{k}/resnet9/…``: original m, ``m < N`` (float32);
- ``OUT/margins/DS/oracle/forget_{k}/{retain,forget,val}/resnet9/id_{m}_epoch_23.npy``: the
  oracles, ``m < N``, then the floor group as ids ``N … 2N−1`` (so an import of OUT pairs
  them as here);
- ``OUT/unlearned/run_{id}/``: each stored run of that pairing as a directory of the same
  layout whose ``pretrain`` models are the run's unlearned models; its ``forget_sets`` and
  ``margins/DS/oracle`` are relative links to OUT's, so EasyDUB's ``eval_pretrain.py
  --data-dir OUT/unlearned/run_{id} --forget-set k`` scores the run (and ``run.json`` names
  its method and options);
- ``OUT/data``: for cifar10, a link to the lab's CIFAR-10 folder (and one in each run's).

The directory is written under ``OUT.partial`` and renamed to ``OUT`` at the end; ``OUT``
must not exist yet (nothing is overwritten, and a failed export leaves no ``OUT``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from core.common.errors import ConfigError
from core.evaluation.run import evaluation_margins
from core.forget.oracles import pair_sets
from core.forget.store import get_forget_set
from core.interchange.easydub import rel_forget, rel_margins
from core.store.db import Store
from core.zoo.data import CIFAR_DIR, data_root
from core.zoo.model_sets import load_margins


def _write_models(out: Path, ds: str, kind: str, k: int, margins: np.ndarray, first: int,
                  forget: np.ndarray, n_train: int) -> None:  # fmt: skip
    """Rows of ``margins`` ``(n, n_train + n_val)`` as model ids ``first …``, split by file."""
    keep = np.ones(n_train, dtype=bool)
    keep[forget] = False
    for i, row in enumerate(np.asarray(margins, dtype=np.float32)):
        m = first + i
        if kind == "pretrain":
            parts = {("retain", None): row[:n_train], ("forget", k): row[forget]}
        else:
            parts = {("retain", k): row[:n_train][keep], ("forget", k): row[forget]}
        parts[("val", None if kind == "pretrain" else k)] = row[n_train:]
        for (split, kk), arr in parts.items():
            p = out / rel_margins(ds, kind, split, kk, m)
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, np.ascontiguousarray(arr), allow_pickle=False)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


def export_easydub(store: Store, forget_set_id: int, out: str | Path) -> dict:
    """Write forget set ``forget_set_id``'s originals, oracles, floor group and unlearned runs
    in EasyDUB's layout under ``out`` (module doc); returns what was written."""
    out = Path(out).expanduser()
    if out.exists() or out.is_symlink():
        raise ConfigError(f"{out}: already exists; export into a new directory")
    fs, ds = get_forget_set(store, forget_set_id)
    orig_id, main_id, floor_id = pair_sets(store, forget_set_id)
    orig, main, floor = (load_margins(store, i) for i in (orig_id, main_id, floor_id))
    if not orig.shape[0] == main.shape[0] == floor.shape[0]:
        raise ConfigError(f"forget set {forget_set_id}: {orig.shape[0]} originals, "
                          f"{main.shape[0]} oracles and {floor.shape[0]} floor models; EasyDUB's "
                          "layout needs as many of each")  # fmt: skip
    meta = store.query_df("SELECT data_meta FROM model_sets WHERE id = ?", [orig_id])
    n_train = int(json.loads(meta["data_meta"][0])["n_train"])
    k, idx = int(forget_set_id), np.asarray(fs.indices, dtype=np.int64)
    runs = store.query_df(
        """SELECT run_id, method FROM evaluations WHERE forget_set_id = ? AND original_set_id = ?
           AND oracle_set_id = ? AND floor_set_id = ? ORDER BY run_id""",
        [k, orig_id, main_id, floor_id],
    )
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / rel_forget(ds, k)).parent.mkdir(parents=True)
        np.save(tmp / rel_forget(ds, k), idx, allow_pickle=False)
        _write_models(tmp, ds, "pretrain", k, orig, 0, idx, n_train)
        _write_models(tmp, ds, "oracle", k, main, 0, idx, n_train)
        _write_models(tmp, ds, "oracle", k, floor, main.shape[0], idx, n_train)
        if ds == "cifar10":
            (tmp / "data").mkdir()
            (tmp / "data" / CIFAR_DIR).symlink_to(data_root().resolve() / CIFAR_DIR)
        written = []
        for r in runs.itertuples():
            run_dir = tmp / "unlearned" / f"run_{int(r.run_id)}"
            unlearned, _ = evaluation_margins(store, int(r.run_id))
            _write_models(run_dir, ds, "pretrain", k, unlearned, 0, idx, n_train)
            _link(tmp / "forget_sets", run_dir / "forget_sets")
            _link(tmp / "margins" / ds / "oracle", run_dir / "margins" / ds / "oracle")
            if ds == "cifar10":
                _link(tmp / "data", run_dir / "data")
            config = store.run(int(r.run_id))["config"]
            (run_dir / "run.json").write_text(json.dumps(
                {"run_id": int(r.run_id), "method": r.method, "options": config.get("options"),
                 "forget_set": k, "n_models": int(unlearned.shape[0])}, indent=2))  # fmt: skip
            written.append({"run_id": int(r.run_id), "method": r.method})
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "dataset": ds, "forget_set": k, "n_models": int(orig.shape[0]),
            "original_set_id": orig_id, "oracle_set_id": main_id, "floor_set_id": floor_id,
            "runs": written}  # fmt: skip
