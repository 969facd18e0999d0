"""EasyDUB's dataset directory imported (core.interchange.easydub): a tiny directory in EasyDUB's exact
layout (fabricated margins, a CIFAR-format data/ of 20 + 4 images) is imported as one batch;
``evaluate --json`` equals KLoM computed straight from the files by an independent numpy
implementation; every bad input is refused with one line naming the file, nothing stored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.common.errors import ConfigError
from core.interchange.easydub import import_easydub, rel_forget, rel_margins
from core.store.db import Store
from tests.cifar_fixtures import fabricate_cifar

N_TRAIN, N_VAL = 20, 4
FORGET = {1: np.array([17, 3, 11]), 2: np.array([0, 5])}  # file order, not sorted


def write_easydub(root, n: int = 3, extra_oracles: int = 1, seed: int = 0) -> dict:
    """EasyDUB's layout under ``root``: ``n`` pretrained models, ``2n + extra_oracles`` oracles
    per forget set; returns the per-model arrays as written (full train / val vectors)."""
    rng = np.random.default_rng(seed)
    out = {"pre": [], "oracle": {}}

    def save(rel, arr):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / rel, arr)

    for k, idx in FORGET.items():
        save(rel_forget("cifar10", k), idx)
    for m in range(n):
        tr = rng.normal(size=N_TRAIN).astype(np.float32) + 2.0  # memorized train points
        va = rng.normal(size=N_VAL).astype(np.float32)
        out["pre"].append((tr, va))
        save(rel_margins("cifar10", "pretrain", "retain", None, m), tr)
        save(rel_margins("cifar10", "pretrain", "val", None, m), va)
        for k, idx in FORGET.items():
            save(rel_margins("cifar10", "pretrain", "forget", k, m), tr[idx])
    for k, idx in FORGET.items():
        keep = np.setdiff1d(np.arange(N_TRAIN), idx)  # index order
        out["oracle"][k] = []
        for m in range(2 * n + extra_oracles):
            tr = rng.normal(size=N_TRAIN).astype(np.float64)
            tr[keep] += 2.0
            va = rng.normal(size=N_VAL).astype(np.float64)
            out["oracle"][k].append((tr, va))
            save(rel_margins("cifar10", "oracle", "retain", k, m), tr[keep])
            save(rel_margins("cifar10", "oracle", "forget", k, m), tr[idx])
            save(rel_margins("cifar10", "oracle", "val", k, m), va)
    return out


@pytest.fixture
def easydub(tmp_path, monkeypatch):
    root = tmp_path / "EasyDUB-dataset"
    fabricate_cifar(root / "data", monkeypatch)
    return root, write_easydub(root)


def klom_np(p: np.ndarray, q: np.ndarray) -> float:
    """The lab's KLoM of one point, written afresh: clip ±100, 20 bins over the joint range
    (np.histogram: last bin closed), q floored at 1e-5 where p > 0 and renormalized."""
    p, q = np.clip(p, -100, 100), np.clip(q, -100, 100)
    lo, hi = min(p.min(), q.min()), max(p.max(), q.max())
    if lo == hi:
        return 0.0
    cp = np.histogram(p, bins=20, range=(lo, hi))[0] / p.size
    cq = np.histogram(q, bins=20, range=(lo, hi))[0] / q.size
    cq = np.where(cp > 0, np.maximum(cq, 1e-5), cq)
    cq = cq / cq.sum()
    nz = cp > 0
    return float(np.sum(cp[nz] * np.log(cp[nz] / cq[nz])))


def _run(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_import_then_evaluate_equals_klom_from_the_files(easydub, db_path, capsys):
    root, arrays = easydub
    out = _run(capsys, "import-easydub", str(root))
    assert out["n_models"] == 3  # 3 pretrained, 7 oracles per forget set: N = min(3, 7 // 2)
    assert [f["k"] for f in out["forget_sets"]] == [1, 2]
    assert all(f["pretrain_forget_gap"] == 0.0 for f in out["forget_sets"])
    for f in out["forget_sets"]:
        k, fs = f["k"], f["id"]
        ev = _run(capsys, "evaluate", "--forget-set", str(fs))
        pre = np.stack([np.concatenate(a) for a in arrays["pre"]]).astype(np.float64)
        orc = np.stack([np.concatenate(a) for a in arrays["oracle"][k][:3]])
        floor = np.stack([np.concatenate(a) for a in arrays["oracle"][k][3:6]])
        forget = np.zeros(N_TRAIN + N_VAL, bool)
        forget[FORGET[k]] = True
        splits = {"forget": forget, "retain": ~forget & (np.arange(24) < N_TRAIN),
                  "val": np.arange(24) >= N_TRAIN}  # fmt: skip
        klom = np.array([klom_np(pre[:, j], orc[:, j]) for j in range(24)])
        fl = np.array([klom_np(floor[:, j], orc[:, j]) for j in range(24)])
        for split, where in splits.items():
            s = ev["summaries"][f"{split}/klom"]
            assert s["count"] == where.sum()
            assert s["p95"] == pytest.approx(np.percentile(klom[where], 95), rel=1e-5, abs=1e-7)
            floor_p95 = ev["summaries"][f"{split}/floor"]["p95"]  # KL(floor ‖ oracles)
            assert floor_p95 == pytest.approx(np.percentile(fl[where], 95), rel=1e-5, abs=1e-7)
        assert klom[forget].mean() > 1.0  # the originals differ from the oracles on F


def test_default_and_chosen_forget_sets_and_models(easydub, db_path):
    root, _ = easydub
    store = Store(db_path)
    out = import_easydub(store, root, forget_sets=[2], n_models=2)
    assert out["n_models"] == 2 and [f["k"] for f in out["forget_sets"]] == [2]
    sets = store.query_df("SELECT kind, role, n_models, recipe_id FROM model_sets ORDER BY id")
    assert sets[["kind", "role"]].values.tolist() == [["original", "main"], ["oracle", "main"],
                                                      ["oracle", "floor"]]  # fmt: skip
    assert set(sets["recipe_id"]) == {out["recipe_id"]} and (sets["n_models"] == 2).all()
    with pytest.raises(ConfigError, match="already imported"):
        import_easydub(store, root, forget_sets=[2], n_models=2)
    with pytest.raises(ConfigError, match=r"retain/resnet9/id_3_epoch_23.npy: missing; 4 mod"):
        import_easydub(store, root, forget_sets=[1], n_models=4)  # 3 pretrained
    for m in (5, 6):
        (root / rel_margins("cifar10", "oracle", "retain", 1, m)).unlink()
    with pytest.raises(ConfigError, match=r"forget_1/retain/resnet9/id_5_epoch_23.npy: missing"):
        import_easydub(store, root, forget_sets=[1], n_models=3)  # 5 oracles: 2 + 2 at most
    assert import_easydub(store, root, forget_sets=[1])["n_models"] == 2  # the default


def _stored(store: Store) -> tuple[int, int, int]:
    files = list(store.file_path("model_sets").rglob("*.npy")) if store.file_path(
        "model_sets").exists() else []  # fmt: skip
    return (len(store.query_df("SELECT id FROM model_sets")),
            len(store.query_df("SELECT id FROM forget_sets")), len(files))  # fmt: skip


ORACLE_1 = rel_margins("cifar10", "oracle", "forget", 1, 4)
BAD = {
    "missing file": (ORACLE_1, None, "missing from the EasyDUB directory"),
    "wrong shape": (ORACLE_1, np.zeros(4), "shape (4,), expected (3,)"),
    "NaN": (ORACLE_1, np.array([0.0, np.nan, 1.0]), "point 1 is nan"),
    "integers": (ORACLE_1, np.zeros(3, dtype=np.int64), "dtype int64"),
    "pickle": (ORACLE_1, np.array([1.0, "a", None], dtype=object), "pickled"),
    "garbage": (ORACLE_1, b"not an array", "not a readable .npy"),
    "truncated": (ORACLE_1, "truncate", "holds only"),
    "forget out of range": (rel_forget("cifar10", 2), np.array([0, 20]), "outside the train"),
    "forget repeated": (rel_forget("cifar10", 2), np.array([5, 5]), "repeated indices"),
    "forget floats": (rel_forget("cifar10", 2), np.array([0.0, 5.0]), "expected 1-D integers"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_naming_the_file_nothing_stored(easydub, db_path, capsys, case):
    root, _ = easydub
    rel, value, message = BAD[case]
    path = root / rel
    if value is None:
        path.unlink()
    elif isinstance(value, bytes):
        path.write_bytes(value)
    elif isinstance(value, str):
        path.write_bytes(path.read_bytes()[:-4])
    else:
        np.save(path, value, allow_pickle=True)
    assert main(["import-easydub", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and rel in err and message in err, err
    assert _stored(Store(db_path)) == (0, 0, 0)


def test_a_directory_without_files_or_data(tmp_path, easydub, db_path, capsys):
    root, _ = easydub
    assert main(["import-easydub", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (root / "forget_sets" / "cifar10" / "forget_set_1.npy").unlink()
    (root / "forget_sets" / "cifar10" / "forget_set_2.npy").unlink()
    assert main(["import-easydub", str(root)]) == 2
    assert "no forget_set_K.npy" in capsys.readouterr().err
    assert main(["import-easydub", str(root), "--forget-sets", "x"]) == 2
    assert _stored(Store(db_path)) == (0, 0, 0)


def test_a_failure_while_storing_leaves_nothing(easydub, db_path, monkeypatch):
    """The last set's insert fails: the forget sets, the sets before it and their files go."""
    import core.interchange.easydub as mod

    root, _ = easydub
    calls = {"n": 0}
    real = mod.insert_set

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # originals, main + floor of set 1, main of set 2, then floor
            raise OSError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(mod, "insert_set", failing)
    store = Store(db_path)
    with pytest.raises(OSError):
        import_easydub(store, root)
    assert _stored(store) == (0, 0, 0)


def test_export_then_import_round_trips(easydub, db_path, tmp_path, capsys):
    """Import → two runs (do_nothing, imported unlearned margins) → export-easydub → import
    the export into fresh stores: the same forget set, originals, oracles and floor; a run's
    directory imports as a batch whose originals are the run's models."""
    from core.zoo.model_sets import load_margins

    root, _ = easydub
    out = _run(capsys, "import-easydub", str(root), "--forget-sets", "1")
    fs = out["forget_sets"][0]["id"]
    np.save(tmp_path / "um.npy", np.random.default_rng(5).normal(size=(3, 24)))
    um = _run(capsys, "import-margins", "--dataset", "cifar10", "--kind", "unlearned",
              "--forget-set", str(fs), "--label", "x", str(tmp_path / "um.npy"))  # fmt: skip
    base = _run(capsys, "evaluate", "--forget-set", str(fs))
    exp = _run(capsys, "export-easydub", "--forget-set", str(fs), str(tmp_path / "out"))
    assert sorted(r["run_id"] for r in exp["runs"]) == sorted([um["run_id"], base["run_id"]])
    assert not (tmp_path / "out.partial").exists()
    assert main(["export-easydub", "--forget-set", str(fs), str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
    store = Store(db_path)
    sets = {"orig": out["original_set_id"], "main": out["forget_sets"][0]["main_set_id"],
            "floor": out["forget_sets"][0]["floor_set_id"]}  # fmt: skip
    other = Store(tmp_path / "other.duckdb")
    back = import_easydub(other, tmp_path / "out")
    (f,) = back["forget_sets"]
    assert f["k"] == fs and back["n_models"] == 3
    got = {"orig": back["original_set_id"], "main": f["main_set_id"], "floor": f["floor_set_id"]}
    for role, set_id in sets.items():
        np.testing.assert_array_equal(load_margins(other, got[role]), load_margins(store, set_id))
    idx = other.query_df("SELECT indices FROM forget_sets")["indices"][0]
    assert list(idx) == sorted(FORGET[1].tolist())
    third = Store(tmp_path / "third.duckdb")
    run = import_easydub(third, tmp_path / "out" / "unlearned" / f"run_{um['run_id']}")
    np.testing.assert_array_equal(load_margins(third, run["original_set_id"]),
                                  np.load(tmp_path / "um.npy").astype(np.float32))  # fmt: skip
    np.testing.assert_array_equal(load_margins(third, run["forget_sets"][0]["main_set_id"]),
                                  load_margins(store, sets["main"]))  # fmt: skip


def _digits_batch(store: Store, tmp_path) -> tuple[int, int, int]:
    """A digits import batch (import-margins): forget set, 2 originals, 2 + 2 oracles."""
    from core.interchange.imports import import_forget_set, import_margins

    rng, n = np.random.default_rng(1), 1347 + 450
    np.save(tmp_path / "fs.npy", np.arange(0, 40, 4))
    fs, _ = import_forget_set(store, "digits", tmp_path / "fs.npy")
    np.save(tmp_path / "o.npy", rng.normal(size=(2, n)))
    np.save(tmp_path / "q.npy", rng.normal(size=(4, n)))
    o = import_margins(store, "digits", "original", tmp_path / "o.npy")["set_id"]
    m = import_margins(store, "digits", "oracle", tmp_path / "q.npy", forget_set_id=fs,
                       rows=(0, 2))["set_id"]  # fmt: skip
    import_margins(store, "digits", "oracle", tmp_path / "q.npy", forget_set_id=fs, rows=(2, 4),
                   role="floor")  # fmt: skip
    return fs, o, m


def test_export_of_digits_round_trips(db_path, tmp_path):
    """A digits batch (import-margins) exported with the lab's dataset name in the paths."""
    from core.interchange.easydub_export import export_easydub
    from core.zoo.model_sets import load_margins

    store = Store(db_path)
    fs, o, m = _digits_batch(store, tmp_path)
    export_easydub(store, fs, tmp_path / "out")
    assert (tmp_path / "out" / rel_margins("digits", "oracle", "retain", fs, 3)).is_file()
    assert np.load(tmp_path / "out" / rel_margins("digits", "oracle", "retain", fs, 3)).shape == (
        1347 - 10,
    )
    other = Store(tmp_path / "b.duckdb")
    back = import_easydub(other, tmp_path / "out", dataset="digits")
    np.testing.assert_array_equal(load_margins(other, back["original_set_id"]),
                                  load_margins(store, o))  # fmt: skip
    np.testing.assert_array_equal(load_margins(other, back["forget_sets"][0]["main_set_id"]),
                                  load_margins(store, m))  # fmt: skip


def test_a_failed_export_leaves_no_directory(easydub, db_path, tmp_path, monkeypatch):
    import core.interchange.easydub_export as exp

    root, _ = easydub
    store = Store(db_path)
    fs = import_easydub(store, root, forget_sets=[2])["forget_sets"][0]["id"]
    from core.evaluation.run import evaluate

    evaluate(store, fs, "do_nothing")

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(exp, "evaluation_margins", broken)
    with pytest.raises(OSError):
        exp.export_easydub(store, fs, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_the_import_as_a_background_job(easydub, db_path):
    """The dashboard's way in: a job ``import_easydub`` with progress; bad params refused
    before a row is written."""
    from core.jobs import queue as jobs

    root, _ = easydub
    store = Store(db_path)
    for bad, needle in (({"dir": str(root / "nowhere")}, "not a directory"),
                        ({"dir": str(root), "forget_sets": "1"}, "list of forget-set ids"),
                        ({"dir": str(root), "weights": "yes"}, "true or false"),
                        ({}, "needs the parameter 'dir'")):  # fmt: skip
        with pytest.raises(ConfigError, match=needle):
            jobs.submit(store, "import_easydub", bad)
    job = jobs.submit(store, "import_easydub", {"dir": str(root), "forget_sets": [2]})
    assert jobs.run_job(store, job) == "done"
    got = jobs.get_job(store, job)
    assert got["progress"] == pytest.approx(1.0)
    assert [f["k"] for f in got["result"]["forget_sets"]] == [2]
    assert _stored(store)[:2] == (3, 1)


def test_the_dashboard_imports_a_directory_as_a_job(db_path, tmp_path):
    """Models page → "Import the paper's setting": a job that imports (here a digits export,
    read by the worker process; CIFAR-10's fabricated files pass torchvision's check only in
    this process)."""
    from streamlit.testing.v1 import AppTest

    from core.interchange.easydub_export import export_easydub
    from core.jobs import queue as jobs
    from tests.conftest import ROOT
    from tests.jobs.test_jobs import wait_for

    src = Store(tmp_path / "src.duckdb")
    fs, _, _ = _digits_batch(src, tmp_path)
    export_easydub(src, fs, tmp_path / "out")
    store = Store(db_path)
    store.create()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/models.py").run()
    at.text_input(key="ed_dir").set_value(str(tmp_path / "out"))
    at.selectbox(key="ed_dataset").set_value("digits")
    next(b for b in at.button if b.label == "Import in the background").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    df = jobs.list_jobs(store)
    assert df["kind"].tolist()[0] == "import_easydub"
    job_id = int(df["id"][0])
    wait_for(lambda: jobs.get_job(store, job_id)["status"] in jobs.FINAL)
    job = jobs.get_job(store, job_id)
    assert job["status"] == "done", job["message"]
    assert _stored(store)[:2] == (3, 1)
