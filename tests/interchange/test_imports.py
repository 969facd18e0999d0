"""Ensembles trained elsewhere imported as margins (core.interchange.imports): every malformed file is
refused with nothing stored; an import batch pairs with itself only; import → evaluate →
Compare end to end on fabricated digits-sized margins (the same code as CIFAR-10's)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.cli import main
from core.common.errors import ConfigError
from core.evaluation.compare import runs_table
from core.evaluation.run import evaluate, evaluation
from core.interchange.imports import import_forget_set, import_margins
from core.store.db import Store
from core.zoo.model_sets import get_model_set, load_correct, load_ensemble, load_margins

N_POINTS = 1347 + 450  # digits: train then val


def _fab(tmp_path, name: str, arr) -> str:
    path = tmp_path / name
    np.save(path, arr, allow_pickle=True)
    return str(path)


@pytest.fixture
def batch(tmp_path, db_path):
    """A forget set, imported originals and both imported oracle groups (rows of one file)."""
    rng = np.random.default_rng(0)
    store = Store(db_path)
    fs_id, _ = import_forget_set(store, "digits", _fab(tmp_path, "fs.npy", np.arange(0, 60, 3)))
    orig = rng.normal(size=(6, N_POINTS)).astype(np.float32)
    orig[:, :60:3] += 3.0  # the forget points: memorized by the originals
    o = import_margins(store, "digits", "original", _fab(tmp_path, "orig.npy", orig))
    oracles = _fab(tmp_path, "oracles.npy", rng.normal(size=(12, N_POINTS)))  # float64
    m = import_margins(store, "digits", "oracle", oracles, forget_set_id=fs_id, rows=(0, 6))
    f = import_margins(store, "digits", "oracle", oracles, forget_set_id=fs_id, rows=(6, 12),
                       role="floor")  # fmt: skip
    return {"store": store, "fs": fs_id, "orig": o["set_id"], "main": m["set_id"],
            "floor": f["set_id"], "rng": rng, "tmp": tmp_path}  # fmt: skip


def _nothing_stored(store: Store, n_sets: int, tmp_path) -> None:
    assert len(store.query_df("SELECT id FROM model_sets")) == n_sets
    assert len(store.query_df("SELECT set_id FROM model_chunks")) == n_sets
    folders = store.file_path("model_sets")
    stored = sorted(p.parent.name for p in folders.rglob("*.npy")) if folders.exists() else []
    assert len(set(stored)) == n_sets


BAD = {
    "object array": (np.array([[1.0, "a"]], dtype=object), "object"),
    "integers": (np.zeros((3, N_POINTS), dtype=np.int64), "dtype int64"),
    "booleans": (np.zeros((3, N_POINTS), dtype=bool), "dtype bool"),
    "complex": (np.zeros((3, N_POINTS), dtype=np.complex64), "dtype complex64"),
    "1-D": (np.zeros(N_POINTS), "must be 2-D"),
    "3-D": (np.zeros((2, 3, N_POINTS)), "must be 2-D"),
    "points of another dataset": (np.zeros((3, 60_000)), "60000 points per model"),
    "val only": (np.zeros((3, 450)), "450 points"),
    "no models": (np.zeros((0, N_POINTS)), r"0 model\(s\)"),
    "one model": (np.zeros((1, N_POINTS)), r"1 model\(s\)"),
    "NaN": (np.where(np.arange(N_POINTS) == 7, np.nan, 0.0)[None].repeat(3, 0), "point 7 is nan"),
    "inf": (np.full((3, N_POINTS), -np.inf), "is -inf"),
    "too large for float32": (np.full((3, N_POINTS), 1e300), "in float32: inf"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_margins_are_refused_with_nothing_stored(case, tmp_path, db_path):
    arr, message = BAD[case]
    store = Store(db_path)
    with pytest.raises(ConfigError, match=message):
        import_margins(store, "digits", "original", _fab(tmp_path, "bad.npy", arr))
    _nothing_stored(store, 0, tmp_path)


def test_unreadable_files_are_refused(tmp_path, db_path):
    store = Store(db_path)
    (tmp_path / "text.npy").write_text("0.5, 0.7\n")
    np.savez(tmp_path / "arch.npz", a=np.zeros((3, N_POINTS)))
    for path, message in ((tmp_path / "text.npy", "not a readable .npy"),
                          (tmp_path / "missing.npy", "no such file"),
                          (tmp_path / "arch.npz", "npz archive")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            import_margins(store, "digits", "original", path)
    ok = _fab(tmp_path, "ok.npy", np.zeros((4, N_POINTS)))
    with pytest.raises(ConfigError, match="outside the file's 4 rows"):
        import_margins(store, "digits", "original", ok, rows=(2, 9))
    with pytest.raises(ConfigError, match="need --forget-set"):
        import_margins(store, "digits", "oracle", ok)
    fs_id, _ = import_forget_set(store, "digits", _fab(tmp_path, "fs.npy", np.arange(5)))
    with pytest.raises(ConfigError, match="no imported originals"):
        import_margins(store, "digits", "unlearned", ok, forget_set_id=fs_id)
    _nothing_stored(store, 0, tmp_path)


def test_import_evaluate_audit_and_compare(batch):
    store, fs = batch["store"], batch["fs"]
    orig = get_model_set(store, batch["orig"])
    assert orig.imported and orig.recipe_id.startswith("import-") and orig.n_models == 6
    assert get_model_set(store, batch["main"]).recipe_id == orig.recipe_id
    assert get_model_set(store, batch["floor"]).base_set_id == orig.id
    assert load_margins(store, batch["main"]).dtype == np.float32
    assert load_correct(store, orig.id) is None  # unknown, not guessed from the margins
    with pytest.raises(ConfigError, match="no weights"):
        load_ensemble(store, orig.id)
    run = evaluate(store, fs, "do_nothing")  # pairs the batch by itself
    ev = evaluation(store, run)
    assert ev["evaluation"]["original_set_id"] == orig.id
    s = ev["summaries"].set_index(["split", "metric"])
    assert s.loc[("forget", "klom"), "p95"] > s.loc[("retain", "klom"), "p95"]  # memorized
    assert math.isnan(s.loc[("forget", "klom"), "accuracy"])
    # the unlearned margins of a method run elsewhere: scored like any run
    good = batch["rng"].normal(size=(6, N_POINTS)).astype(np.float16)
    path = _fab(batch["tmp"], "om.npy", good)
    out = import_margins(store, "digits", "unlearned", path, forget_set_id=fs, label="om",
                         cost=0.05)  # fmt: skip
    again = import_margins(store, "digits", "unlearned", path, forget_set_id=fs, label="om",
                           cost=0.05)  # fmt: skip
    assert again == {**out, "reused": True}
    table = runs_table(store, fs).set_index("method")
    assert list(table.index) == ["do_nothing", "imported:om"]
    assert table.loc["imported:om", "cost"] == 0.05
    assert table.loc["imported:om", "forget_p95"] < table.loc["do_nothing", "forget_p95"]
    assert not math.isnan(table.loc["imported:om", "ulira_bacc_mean"])  # audited
    assert json.loads(table.loc["imported:om", "params"])["file"] == "om.npy"
    assert evaluate(store, fs, "retrain") > out["run_id"]  # margins-only methods run


def test_an_import_batch_never_pairs_with_another(batch):
    store, fs, tmp = batch["store"], batch["fs"], batch["tmp"]
    with pytest.raises(ConfigError, match="needs the original models' weights"):
        evaluate(store, fs, "gradient_descent", budget=0.1)
    from core.evaluation.run import build_oracles

    with pytest.raises(ConfigError, match="import its oracles too"):
        build_oracles(store, fs, original_set_id=batch["orig"])
    same = _fab(tmp, "same.npy", load_margins(store, batch["orig"]))
    with pytest.raises(ConfigError, match="already stored as model set"):
        import_margins(store, "digits", "original", same)
    other = _fab(tmp, "other.npy", batch["rng"].normal(size=(4, N_POINTS)))
    second = import_margins(store, "digits", "original", other)["set_id"]  # a new batch
    four = _fab(tmp, "four.npy", batch["rng"].normal(size=(4, N_POINTS)))
    with pytest.raises(ConfigError, match="4 oracle models for 6 originals"):  # batch 1's size
        import_margins(store, "digits", "oracle", four, forget_set_id=fs,
                       original_set_id=batch["orig"])  # fmt: skip
    # its oracles are missing: batch 1's are never used for batch 2's originals
    with pytest.raises(ConfigError, match="no imported oracles of original set"):
        import_margins(store, "digits", "unlearned", other, forget_set_id=fs)
    with pytest.raises(ConfigError, match="no oracles of the recipe"):
        evaluate(store, fs, "do_nothing", original_set_id=second)
    dup = _fab(tmp, "dup.npy", batch["rng"].normal(size=(6, N_POINTS)))
    with pytest.raises(ConfigError, match="already has main oracles"):
        import_margins(store, "digits", "oracle", dup, forget_set_id=fs,
                       original_set_id=batch["orig"])  # fmt: skip
    _nothing_stored(store, 4, tmp)


def test_trained_originals_never_pair_with_imports(tmp_path, db_path):
    from tests.lab_fixtures import tiny_lab

    lab = tiny_lab(db_path, n_models=3, forget_k=10)
    store, fs = lab["store"], lab["forget_set"]
    path = _fab(tmp_path, "o.npy", np.zeros((3, N_POINTS)))
    with pytest.raises(ConfigError, match="was trained here"):
        import_margins(store, "digits", "oracle", path, forget_set_id=fs,
                       original_set_id=lab["original"])  # fmt: skip
    imported = import_margins(store, "digits", "original", path)["set_id"]
    # the newest originals are imported, but the default for training stays the trained ones
    from core.zoo.model_sets import originals_for

    assert originals_for(store, "digits") == lab["original"]
    run = evaluate(store, fs, "do_nothing")  # pairs the trained batch, not the import
    assert evaluation(store, run)["evaluation"]["original_set_id"] == lab["original"]
    with pytest.raises(ConfigError, match="no oracles of the recipe"):
        evaluate(store, fs, "do_nothing", original_set_id=imported)


def test_forget_set_files(tmp_path, db_path):
    store = Store(db_path)
    fs_id, fs = import_forget_set(
        store, "digits", _fab(tmp_path, "f.npy", np.array([[5, 3], [3, 9]]))
    )
    assert fs.indices.tolist() == [3, 5, 9] and fs.warnings and fs.kind == "upload"
    (tmp_path / "list.txt").write_text("index\n4\n8\n")
    assert import_forget_set(store, "digits", tmp_path / "list.txt")[1].indices.tolist() == [4, 8]
    for arr, message in ((np.array([1.0, 2.0]), "must be integers"),
                         (np.array([1, 1347]), "1347"),
                         (np.array([], dtype=np.int64), "no indices"),
                         (np.array([1, "a"], dtype=object), "not a readable")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            import_forget_set(store, "digits", _fab(tmp_path, "bad.npy", arr))
    assert len(store.query_df("SELECT id FROM forget_sets")) == 2
    # the forget-set command's upload kind (and the dashboard's uploader) read .npy files too
    npy = _fab(tmp_path, "ten.npy", np.arange(10, dtype=np.uint16))
    assert main(["forget-set", "create", "--kind", "upload", "--file", npy, "--json"]) == 0
    assert (
        Store(db_path).query_df("SELECT size FROM forget_sets WHERE name = 'ten'")["size"][0] == 10
    )


def test_cli_import_json_and_errors(tmp_path, db_path, capsys):
    fs = _fab(tmp_path, "fs.npy", np.arange(10))
    assert main(["import-forget-set", fs, "--name", "ten", "--json"]) == 0
    fs_id = json.loads(capsys.readouterr().out)["id"]
    orig = _fab(tmp_path, "o.npy", np.ones((3, N_POINTS), dtype=np.float32))
    assert main(["import-margins", "--kind", "original", orig, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "original" and out["recipe_id"].startswith("import-")
    bad = _fab(tmp_path, "b.npy", np.ones((3, N_POINTS), dtype=np.int32))
    assert main(["import-margins", "--kind", "oracle", "--forget-set", str(fs_id), bad]) == 2
    assert "must be floating point" in capsys.readouterr().err
    assert main(["import-margins", "--kind", "oracle", "--rows", "5", orig]) == 2
    assert "START:STOP" in capsys.readouterr().err


def test_compare_and_klom_pages_show_imported_runs(batch):
    """The dashboard reads imported runs like any other: unknown cost (NaN) and unknown
    accuracies draw, and an imported run is chosen by default like each method's best."""
    from tests.dashboard.test_dashboard_unlearn import page

    store, fs = batch["store"], batch["fs"]
    base = evaluate(store, fs, "do_nothing")
    path = _fab(batch["tmp"], "ga.npy", batch["rng"].normal(size=(6, N_POINTS)))
    run = import_margins(store, "digits", "unlearned", path, forget_set_id=fs, label="ga")["run_id"]
    at = page("compare")
    assert not at.error
    assert set(at.dataframe[0].value["method"]) == {"do_nothing", "imported:ga"}
    assert sorted(at.multiselect[0].value) == sorted([base, run])
    at = page("klom")
    assert not at.error


def test_schema_8_upgrades_a_lab_with_trained_sets(tmp_path):
    import duckdb

    from core.store.schema import MIGRATIONS

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for m in MIGRATIONS[:6]:
        m(con)
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '6')")
    con.execute(
        "INSERT INTO model_sets (kind, role, dataset, arch, n_models, chunk_size, seed, "
        "train_config, data_meta, code_version, device, status) VALUES ('original', 'main', "
        "'digits', 'mlp', 2, 2, 0, '{}', '{}', 'x', 'cpu', 'complete')"
    )
    con.execute("INSERT INTO model_chunks VALUES (1, 0, 0, 2, 'w.pt', 'm.npy', 'k.npy', 0.5, 0.5, "
                "1.0, 'cpu', current_timestamp, 'c.npy')")  # fmt: skip
    con.close()
    store = Store(path)
    with store.transaction() as c:  # any write migrates
        c.execute("SELECT 1")
    assert store.schema_version() == len(MIGRATIONS)
    assert store.query_df("SELECT weights_file FROM model_chunks")["weights_file"][0] == "w.pt"
    assert store.query_df("SELECT source FROM model_sets")["source"].isna().all()
