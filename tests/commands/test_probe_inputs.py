"""Issue 22 (second outside probe): inputs that got past their checks — undecodable names,
crafted ``.npy`` headers, non-ASCII digits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core import cli
from core.common.errors import ConfigError
from core.forget.sets import check_name
from core.forget.store import get_forget_set, list_forget_sets
from core.store.db import Store
from tests.conftest import ROOT
from tests.store.test_store_errors import _failing_command


def run_cli(*args) -> subprocess.CompletedProcess:
    """The CLI in a real process; ``args`` may hold bytes (a shell passes any bytes)."""
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True,
                          timeout=120)  # fmt: skip


def test_an_undecodable_name_is_one_clear_line(db_path):
    """``--name $'\\xff\\xfe'`` (bytes that are not UTF-8) reached DuckDB, which failed, and the
    error logger then failed writing the command line: exit 1 with two tracebacks."""
    res = run_cli("forget-set", "create", "--db", str(db_path), "--kind", "random", "--k", "5",
                  "--name", b"\xff\xfe")  # fmt: skip
    err = res.stderr.decode("utf-8", "backslashreplace")
    assert res.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: a forget-set name must be UTF-8 text")
    assert list_forget_sets(Store(db_path)).empty
    with pytest.raises(ConfigError, match="UTF-8"):
        check_name("ok\udcffname")
    assert check_name(" naïve ✓ ") == "naïve ✓"  # real non-ASCII text is fine


def test_a_file_name_with_undecodable_bytes_names_the_set_without_them(db_path, tmp_path):
    path = tmp_path.as_posix().encode() + b"/r\xffx.csv"
    with open(path, "wb") as fh:
        fh.write(b"1\n2\n3\n")
    res = run_cli("import-forget-set", path, "--db", str(db_path))
    assert res.returncode == 0, res.stderr.decode("utf-8", "backslashreplace")
    sets = list_forget_sets(Store(db_path))
    assert sets["name"].tolist() == ["rx"]  # the name: the stem without the byte
    fs, _ = get_forget_set(Store(db_path), int(sets["id"].item()))
    assert fs.params["filename"] == "r\ufffdx.csv" and fs.indices.tolist() == [1, 2, 3]


def test_the_error_log_takes_undecodable_arguments(db_path, tmp_path, monkeypatch, capsys):
    log = tmp_path / "errors.log"
    monkeypatch.setenv("LAB_LOG", str(log))
    monkeypatch.setattr(sys, "argv", ["core", "models", "--name", "\udcff\udcfe", "\ud800"])
    _failing_command(monkeypatch, KeyError("oops"))
    Store(db_path).create()
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(log) in err and "Traceback" not in err
    text = log.read_text(encoding="utf-8")
    assert "--name \\udcff\\udcfe \\ud800" in text and "KeyError: 'oops'" in text


def crafted_npy(path, shape=(10**9, 1797), descr="<f8", size=1024) -> None:
    """A ``size``-byte ``.npy`` whose header declares ``shape``: about 14 TB of float64."""
    import io

    from numpy.lib import format as npf

    buf = io.BytesIO()
    npf.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    path.write_bytes(buf.getvalue().ljust(size, b"\0"))


def test_a_crafted_npy_header_is_refused_before_numpy_allocates(db_path, tmp_path):
    """A 1 KB file declaring shape (10⁹, 1797) got "out of memory … try smaller settings" after
    NumPy tried to allocate ~14 TB; it is refused by its header, naming the file."""
    big = tmp_path / "huge.npy"
    crafted_npy(big)
    for args in (["import-margins", "--kind", "original", str(big)],
                 ["import-forget-set", str(big)]):  # fmt: skip
        res = run_cli(*args, "--db", str(db_path))
        err = res.stderr.decode()
        assert res.returncode == 2 and err.count("\n") == 1, err
        assert err.startswith("error: huge.npy: its header declares an array of shape "
                              "(1000000000, 1797) and dtype float64 (14.4 TB)")  # fmt: skip
        assert "out of memory" not in err
    assert list_forget_sets(Store(db_path)).empty


def test_npy_size_check_passes_whole_files_and_names_short_ones(tmp_path):
    import io

    import numpy as np

    from core.common.npy_check import check_npy_size
    from core.forget.uploads import parse_upload
    from core.interchange.imports import read_margins

    for arr in (np.zeros((3, 1797), np.float32), np.zeros((0,), np.int64), np.float64(2.0)):
        buf = io.BytesIO()
        np.save(buf, arr)
        data = buf.getvalue()
        check_npy_size(io.BytesIO(data), len(data), "ok.npy")  # exactly its data: accepted
        with (
            pytest.raises(ConfigError, match=r"ok\.npy: its header declares")
            if arr.size
            else (_nothing())
        ):
            check_npy_size(io.BytesIO(data[:-1]), len(data) - 1, "ok.npy")  # one byte short
    np.save(tmp_path / "m.npy", np.ones((2, 1797), np.float16))
    assert read_margins(tmp_path / "m.npy", 1797)[0].shape == (2, 1797)
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=np.uint8))
    assert parse_upload(buf.getvalue(), "i.npy", 1347) == [0, 1, 2, 3]
    crafted_npy(tmp_path / "two.npy", shape=(2, 1797), descr="<f4", size=200)
    with pytest.raises(ConfigError, match=r"two\.npy: .*\(14\.4 KB\), but the file holds only"):
        read_margins(tmp_path / "two.npy", 1797)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.parametrize("digit", ["٣", "３", "۳", "𝟑", "³"])
def test_only_ascii_digits_are_indices(digit):
    """Python's ``int`` reads "٣" (Arabic-Indic) and "３" (full-width) as 3: such an index was
    stored as 3. Indices are ASCII digits only, in the index box, --indices and uploads."""
    from core.forget.sets import manual_forget_set
    from core.forget.uploads import parse_upload

    with pytest.raises(ConfigError, match=f"item 1: '{digit}' is not an integer"):
        manual_forget_set([digit], 1347)
    for data, name, where in ((f"{digit}\n", "one.csv", "row 1"),
                              (f"index\n1\n{digit}\n", "col.csv", "row 3"),
                              (f"5,{digit}\n", "row.csv", "row 1"),
                              (f'["{digit}"]', "list.json", "item 1")):  # fmt: skip
        with pytest.raises(ConfigError, match=f"{where}: '{digit}' is (a string, )?not an integer"):
            parse_upload(data.encode(), name, 1347)
    assert manual_forget_set(["3", " +4 "], 1347).indices.tolist() == [3, 4]
    assert parse_upload(b"3\n4\n", "ok.csv", 1347) == [3, 4]


def test_cli_indices_refuse_a_non_ascii_digit(db_path):
    res = run_cli("forget-set", "create", "--kind", "manual", "--indices", "1,３",
                  "--db", str(db_path))  # fmt: skip
    err = res.stderr.decode()
    assert res.returncode == 2 and "'３' is not an integer" in err, err
    assert list_forget_sets(Store(db_path)).empty
