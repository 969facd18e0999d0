"""Security: no pickle is ever unpickled, and files the lab reads stay inside its folders.

A *malicious* file here is a real pickle whose ``__reduce__`` calls ``open(marker, "w")``: any
unpickling creates the marker file. Each test first shows that the payload is armed (plain
``pickle.loads`` does create a marker), then loads the file through the lab's own code — the
store the CLI and the dashboard's pages use — and checks that the marker never appears, that the
user gets one clear line (no traceback) and that nothing else in the store changed.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from core.common.errors import ConfigError, LabError, StoreError
from core.forget.make import make_forget_set
from core.forget.uploads import parse_upload, upload_forget_set
from core.interchange.imports import import_forget_set, import_margins
from core.store.db import Store
from core.zoo.build import build_model_set, create_model_set, load_ensemble
from core.zoo.recipe import default_train_config
from tests.conftest import ROOT
from tests.dashboard.test_probe_markdown import shown

TINY = default_train_config("digits").replace(epochs=1)


class Payload:
    """Unpickling this creates ``marker``: what an attacker's checkpoint would do."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def armed(marker) -> bytes:
    """A pickle of ``Payload``, checked to run code when unpickled the unsafe way."""
    data = pickle.dumps(Payload(marker))
    pickle.loads(data).close()  # the unsafe way, on purpose: the payload works
    assert marker.exists()
    marker.unlink()
    return data


def fingerprint(store: Store, skip: str | None = None) -> dict:
    """Every table's rows and every file's sha-256 (but ``skip``): the whole store's state."""
    out = {}
    with store.connect(read_only=True) as con:
        tables = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        for (t,) in tables:  # names read from the database itself, not from a user
            out[t] = con.execute(f'SELECT * FROM "{t}"').df().to_csv(index=False)
    for f in sorted(store.files_dir.rglob("*")):
        if f.is_file() and str(f) != skip and not f.name.endswith(".log"):
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A store with one tiny set of 2 original models (built once for this module)."""
    path = tmp_path_factory.mktemp("sec") / "lab.duckdb"
    store = Store(path)
    ms = create_model_set(store, "original", TINY, 2, seed=0, chunk_size=2)
    build_model_set(store, ms)
    return path


@pytest.fixture
def poisoned(lab, tmp_path):
    """A copy of the lab whose weights file (the path the store names) is a malicious pickle."""
    import shutil

    db = tmp_path / "lab.duckdb"
    shutil.copy(lab, db)
    shutil.copytree(lab.with_name("lab.files"), tmp_path / "lab.files")
    store = Store(db)
    rel = store.query_df("SELECT weights_file FROM model_chunks")["weights_file"][0]
    return store, store.file_path(rel), tmp_path / "PWNED"


def assert_refused(text: str, path, form: str = "torch.save zip") -> None:
    """One clear line naming the file; a zip holding objects is named a pickle that runs code
    (a bare pickle is not even the archive the lab writes: torch stops at its first byte)."""
    assert str(path) in text and "it was not loaded" in text and "Traceback" not in text
    if form == "torch.save zip":
        assert "refused to load the weights file" in text and "pickle that could run code" in text
    else:
        assert "not the archive of tensors the lab writes" in text


@pytest.mark.parametrize("form", ["raw pickle", "torch.save zip"])
def test_malicious_checkpoint_refused_by_engine(poisoned, form) -> None:
    store, weights, marker = poisoned
    payload = armed(marker)
    if form == "raw pickle":
        weights.write_bytes(payload)
    else:
        torch.save(Payload(marker), weights)  # a zip container whose data.pkl runs code
    before = fingerprint(store, skip=str(weights))
    with pytest.raises(StoreError) as err:
        load_ensemble(store, 1, "cpu")
    assert_refused(str(err.value), weights, form)
    with pytest.raises(StoreError) as err:  # what the Forget sets page calls (knn, features)
        make_forget_set(store, "digits", "knn", None, space="feature", anchor=0, k=5)
    assert_refused(str(err.value), weights, form)
    assert not marker.exists()
    assert fingerprint(store, skip=str(weights)) == before


def test_malicious_checkpoint_refused_by_cli(poisoned) -> None:
    store, weights, marker = poisoned
    armed(marker)
    torch.save(Payload(marker), weights)
    before = fingerprint(store, skip=str(weights))
    cmd = [sys.executable, "-m", "core", "forget-set", "create", "--db", str(store.path),
           "--kind", "knn", "--space", "feature", "--anchor", "0", "--k", "5"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert_refused(proc.stderr, weights)
    assert not marker.exists()
    assert fingerprint(store, skip=str(weights)) == before


def test_malicious_checkpoint_refused_on_the_page(poisoned, monkeypatch) -> None:
    """The Forget sets page, nearest neighbours in feature space (it loads the weights)."""
    from streamlit.testing.v1 import AppTest

    store, weights, marker = poisoned
    armed(marker)
    torch.save(Payload(marker), weights)
    before = fingerprint(store, skip=str(weights))
    monkeypatch.setenv("LAB_DB", str(store.path))
    at = AppTest.from_file(
        str(ROOT / "dashboard" / "views" / "forget_sets.py"), default_timeout=120
    )
    at.run()
    at.radio(key="fs_kind").set_value("knn").run()
    at.radio(key="fs_space").set_value("feature").run()
    at.button(key="fs_preview_btn").click().run()
    assert not at.exception and len(at.error) == 1
    assert_refused(shown(at.error[0].value), weights)  # (the page escapes its Markdown)
    assert not marker.exists()
    assert fingerprint(store, skip=str(weights)) == before


def test_malicious_array_file_refused(poisoned) -> None:
    store, _, marker = poisoned
    rel = store.query_df("SELECT margins_file FROM model_chunks")["margins_file"][0]
    path = store.file_path(rel)
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(StoreError, match="refused to load the array file") as err:
        store.load_array(rel)
    assert "pickle that could run code" in str(err.value)
    assert not marker.exists()


def object_npy(marker) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker), 1], dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_malicious_npy_upload_refused(tmp_path) -> None:
    marker = tmp_path / "PWNED"
    armed(marker)
    data = object_npy(marker)
    for call in (
        lambda: parse_upload(data, "evil.npy", 1347),
        lambda: upload_forget_set(data, "evil.npy", 1347),
    ):
        with pytest.raises(ConfigError, match="evil.npy: not a readable .npy array"):
            call()
    assert not marker.exists()


def test_malicious_npy_import_refused(db_path, tmp_path) -> None:
    marker = tmp_path / "PWNED"
    armed(marker)
    evil = tmp_path / "evil.npy"
    evil.write_bytes(object_npy(marker))
    store = Store(db_path)
    before = fingerprint(store)
    with pytest.raises(ConfigError, match="an object .pickled. array"):
        import_margins(store, "digits", "original", evil)
    with pytest.raises(ConfigError, match="evil.npy: not a readable .npy array"):
        import_forget_set(store, "digits", evil)
    for args in (["import-margins", "--kind", "original"], ["import-forget-set"]):
        proc = subprocess.run([sys.executable, "-m", "core", *args, str(evil)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
        assert "Traceback" not in proc.stderr
    assert not marker.exists()
    assert fingerprint(store) == before


def test_malicious_cifar_batch_refused(tmp_path, monkeypatch) -> None:
    """CIFAR-10's batches are pickles; torchvision unpickles one only after its MD5 matches the
    published file, so a planted batch is refused as corrupt and never unpickled."""
    from core.zoo.data import CIFAR_DIR, CIFAR_FILES, clear_cache, load_dataset

    marker = tmp_path / "PWNED"
    folder = tmp_path / "root" / CIFAR_DIR
    folder.mkdir(parents=True)
    for name in CIFAR_FILES:
        (folder / name).write_bytes(armed(marker))
    clear_cache()
    with pytest.raises(LabError, match="incomplete or corrupt"):
        load_dataset("cifar10", "cpu", root=tmp_path / "root")
    assert not marker.exists()


def test_store_never_follows_a_path_out_of_its_folder(db_path, tmp_path) -> None:
    """A row naming ``../``, an absolute path or a symlink out of the files folder is refused
    before anything is read, written or deleted there."""
    store = Store(db_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.npy"
    np.save(secret, np.arange(3))
    store.files_dir.mkdir(parents=True, exist_ok=True)
    (store.files_dir / "link").symlink_to(outside, target_is_directory=True)
    (store.files_dir / "inside").mkdir()
    np.save(store.files_dir / "inside" / "ok.npy", np.arange(2))
    bad = ["../outside/secret.npy", str(secret), "link/secret.npy", "inside/../../outside",
           "link"]  # fmt: skip
    calls = (store.load_array, store.load_tensors, store.remove_files,
             lambda rel: store.save_array(rel, np.zeros(1)))  # fmt: skip
    for rel in bad:
        for call in calls:
            with pytest.raises(StoreError, match="leads outside the store's files folder"):
                call(rel)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.npy"]
    assert np.load(secret).tolist() == [0, 1, 2]
    assert store.load_array("inside/ok.npy").tolist() == [0, 1]  # inside: still fine


def test_query_params_parsed_strictly() -> None:
    """``?run=²`` passed ``str.isdigit`` and then stopped the page in ``int``."""
    from dashboard.components import query_int

    assert [query_int(v) for v in ("7", "007", "123456789012345678")] == [7, 7, 123456789012345678]
    for v in (None, "", "²", "١٢", "-1", "1.0", " 1", "1e3", "9" * 19, "9" * 5000, "../x"):
        assert query_int(v) is None
