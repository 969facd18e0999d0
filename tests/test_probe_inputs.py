"""Issue 22 (second outside probe): inputs that got past their checks — undecodable names,
crafted ``.npy`` headers, non-ASCII digits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core import cli
from core.errors import ConfigError
from core.forget_sets import check_name
from core.forget_store import get_forget_set, list_forget_sets
from core.store import Store
from tests.conftest import ROOT
from tests.test_store_errors import _failing_command


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
