"""Hostile forget-set input: huge files, huge or deep values, bad names; and α of GD+GA.

Each is refused with one ``ConfigError`` naming the input and what is allowed, and nothing
is stored.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from core.cli import main
from core.common.errors import ConfigError
from core.forget.make import make_forget_set
from core.forget.sets import MAX_NAME_LENGTH, check_name, manual_forget_set
from core.forget.store import list_forget_sets, save_forget_set
from core.forget.uploads import MAX_UPLOAD_BYTES, parse_upload, read_upload, upload_forget_set
from core.linear.study import LinearConfig
from core.store.db import Store

HUGE = 10**30
RANGE = "valid indices are 0 to 49999"


def test_a_50_mb_upload_is_refused_before_parsing():
    data = b"1\n" * 25_000_000
    with pytest.raises(ConfigError, match=r"50\.0 MB is too large.*at most 2 MB"):
        parse_upload(data, "big.csv")


def test_a_big_file_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:
        fh.truncate(50_000_000)  # sparse: reading it would take 50 MB
    with pytest.raises(ConfigError, match="big.csv: 50.0 MB is too large"):
        read_upload(big)
    with pytest.raises(ConfigError, match="--file must name"):
        read_upload(tmp_path / "missing.csv")


@pytest.mark.parametrize("fmt", ["csv", "csv-header", "json"])
def test_cifar_sized_upload_parses(fmt):
    idx = np.random.default_rng(0).permutation(50_000)[:49_999]
    if fmt == "json":
        data = json.dumps({"indices": idx.tolist()}).encode()
    else:
        data = ("index\n" if fmt == "csv-header" else "") + "\n".join(map(str, idx)) + "\n"
        data = data.encode()
    assert len(data) < MAX_UPLOAD_BYTES / 4
    fs = upload_forget_set(data, f"cifar.{fmt.split('-')[0]}", 50_000)
    assert fs.size == 49_999 and np.array_equal(fs.indices, np.sort(idx))


@pytest.mark.parametrize(
    "data,filename,needle",
    [
        (f"1\n2\n{HUGE}\n".encode(), "x.csv", f"row 3: index {HUGE} is outside.*{RANGE}"),
        (f"id,index\na,1\nb,{HUGE}\n".encode(), "x.csv", f"row 3: index {HUGE}.*{RANGE}"),
        (f"[1, {HUGE}]".encode(), "x.json", f"item 2: index {HUGE} is outside.*{RANGE}"),
        (b"[1, -5]", "x.json", f"item 2: index -5 is outside.*{RANGE}"),
        (b"[" * 100_000 + b"]" * 100_000, "x.json", "nested too deeply"),
        (b"[" + b"9" * 5000 + b"]", "x.json", "far too long to be a train index"),
        (b"9" * 5000 + b"\n", "x.csv", "5000-digit number is far too large"),
        (b"9" * 200_000, "x.csv", "not a readable CSV file"),
        (b"1\n2\x00\n", "x.csv", "not an integer"),
        (b"[[1, 2], 3]", "x.json", r"item 1: \[1, 2\] \(list\) is not an integer"),
    ],
    ids=["csv", "csv-column", "json", "negative", "deep", "json-digits", "csv-digits",
         "csv-field", "nul", "nested-list"],
)  # fmt: skip
def test_bad_values_in_uploads(data, filename, needle):
    with pytest.raises(ConfigError, match=needle):
        upload_forget_set(data, filename, 50_000)


@pytest.mark.parametrize("raw", [[1, HUGE], ["1", str(HUGE)], np.array([2**64 - 1], np.uint64)])
def test_huge_manual_index(raw):
    with pytest.raises(ConfigError, match="is outside the training set: valid indices are 0 to 9"):
        manual_forget_set(raw, 10)


@pytest.mark.parametrize(
    "name,needle",
    [
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH} characters, got 81"),
        ("bad\x1bname", "control or invisible characters.*U\\+001B"),
        ("tab\there", "U\\+0009"),
        ("zero\u200bwidth", "U\\+200B"),
        ("   ", "non-empty name"),
    ],
)
def test_bad_names(name, needle):
    with pytest.raises(ConfigError, match=needle):
        check_name(name)


def test_names_are_stripped_and_checked_before_saving(db_path):
    store = Store(db_path)
    save_forget_set(store, manual_forget_set([1], 10, name="  spaced  "), "digits")
    assert list_forget_sets(store)["name"].tolist() == ["spaced"]
    rows = len(list_forget_sets(store))
    with pytest.raises(ConfigError, match="at most 80"):
        save_forget_set(store, manual_forget_set([2], 10, name="y" * 200), "digits")
    with pytest.raises(ConfigError, match="control"):
        make_forget_set(store, "digits", "manual", "a\nb", indices=[1])
    assert len(list_forget_sets(store)) == rows


def test_upload_default_name_is_cleaned():
    fs = upload_forget_set(b"1\n", "odd\x1bname" + "n" * 200 + ".csv", 10)
    assert fs.name == ("oddname" + "n" * 200)[:MAX_NAME_LENGTH]
    assert check_name(fs.name) == fs.name


@pytest.mark.parametrize("value", [1e308, 1e7])
def test_ascent_weight_out_of_range(value):
    with pytest.raises(ConfigError, match="ascent_weight must be at most 1000000"):
        LinearConfig(ascent_weight=value)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["forget-set", "create", "--kind", "manual", "--indices", f"1,{HUGE}"], f"index {HUGE}"),
        (["forget-set", "create", "--kind", "manual", "--indices", "1", "--name", "x" * 99],
         "at most 80 characters"),
        (["forget-set", "create", "--kind", "upload", "--file", "{big}"], "too large"),
        (["linear", "--ascent-weight", "1e308"], "ascent_weight must be at most"),
    ],
    ids=["huge-index", "long-name", "big-upload", "ascent-weight"],
)  # fmt: skip
def test_cli_refuses_in_one_line(db_path, tmp_path, capsys, argv, needle):
    Store(db_path).create()
    before = _digest(db_path)
    big = tmp_path / "big.csv"
    big.write_bytes(b"1\n" * (MAX_UPLOAD_BYTES // 2 + 1))
    code = main([a.replace("{big}", str(big)) for a in argv] + ["--db", str(db_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and needle in err
    assert _digest(db_path) == before
