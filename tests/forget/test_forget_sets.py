"""Forget-set constructors, validation rules, upload parsing and the digits presets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.common.errors import ConfigError
from core.forget.sets import (
    MAX_LISTED,
    PRESET_NAMES,
    QUICK_PRESETS,
    ForgetSet,
    class_forget_set,
    digits_preset,
    digits_presets,
    knn_forget_set,
    manual_forget_set,
    random_forget_set,
    validate_indices,
)
from core.forget.uploads import parse_upload, upload_forget_set


@pytest.fixture
def digits_like():
    """Labels (300,) in 0..9 and pixels (300, 8, 8), like a small digits train set."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    rng.shuffle(labels)
    pixels = rng.integers(0, 17, size=(300, 8, 8)).astype(np.float32)
    return labels, pixels


def check_well_formed(fs: ForgetSet, n_train: int) -> None:
    idx = fs.indices
    assert idx.dtype == np.int64 and idx.ndim == 1
    assert np.all(np.diff(idx) > 0)
    assert idx[0] >= 0 and idx[-1] < n_train
    assert not idx.flags.writeable
    json.dumps(fs.to_dict())  # JSON-able
    assert ForgetSet.from_dict(json.loads(json.dumps(fs.to_dict()))) == fs


# ----------------------------------------------------------------------------- validation


def test_validate_accepts_ints_numpy_ints_and_integral_strings():
    idx, warns = validate_indices([5, np.int32(2), np.int64(9), " 7 ", "+1"], 10)
    np.testing.assert_array_equal(idx, [1, 2, 5, 7, 9])
    assert warns == ()
    idx, _ = validate_indices(np.array([3, 1], dtype=np.uint8), 10)
    np.testing.assert_array_equal(idx, [1, 3])


def test_validate_removes_duplicates_with_warning():
    idx, warns = validate_indices([3, 3, 1, 3], 10)
    np.testing.assert_array_equal(idx, [1, 3])
    assert warns == ("removed 2 duplicate indices",)
    _, warns = validate_indices([4, 4], 10)
    assert warns == ("removed 1 duplicate index",)


@pytest.mark.parametrize(
    ("raw", "msg"),
    [
        ([1, 2.5], r"item 2: 2\.5 is not an integer"),
        ([1.0], "not an integer"),
        ([True], "boolean"),
        (np.array([True, False]), "boolean"),
        (np.array([1.5]), "not an integer"),
        (["abc"], "item 1: 'abc' is not an integer"),
        ([None], "not an integer"),
        ("12", "not a single string"),
        ([], "empty"),
        ([0, 10], "index 10 is outside the training set: valid indices are 0 to 9"),
        ([-1, 3], "index -1 is outside"),
        (range(10), "whole training set"),
        (list(range(10)) * 2, "whole training set"),
    ],
)
def test_validate_rejects(raw, msg):
    with pytest.raises(ConfigError, match=msg):
        validate_indices(raw, 10)


def test_every_bad_entry_is_named():
    """Review: the error named only the first bad entry of ``1, x, 2.5, 5000, -3``. Every bad
    entry is named now, in input order, with its item number; past ``MAX_LISTED``, a count."""
    with pytest.raises(ConfigError) as err:
        validate_indices(["1", "x", "2.5", "5000", "-3", "4"], 10)
    assert str(err.value) == (
        "4 entries are not train indices (valid indices are 0 to 9): item 2: 'x' is not an "
        "integer; item 3: '2.5' is not an integer; item 4: 5000 is out of range; "
        "item 5: -3 is out of range"
    )
    with pytest.raises(ConfigError) as err:
        validate_indices(np.array([10, 3, -1]), 10)  # an integer array: the fast path
    assert str(err.value).endswith("item 1: 10 is out of range; item 3: -1 is out of range")
    with pytest.raises(ConfigError) as err:
        validate_indices([str(v) for v in range(100, 100 + MAX_LISTED + 5)], 10)
    text = str(err.value)
    assert text.startswith(f"{MAX_LISTED + 5} entries are not train indices")
    assert f"item {MAX_LISTED}: {99 + MAX_LISTED} is out of range; and 5 more" in text
    assert f"item {MAX_LISTED + 1}:" not in text


def test_validate_rejects_bad_n_train():
    with pytest.raises(ConfigError, match="n_train"):
        validate_indices([0], 0)


def test_forget_set_rejects_unsorted_or_unknown_kind():
    with pytest.raises(ConfigError, match="sorted"):
        ForgetSet("x", "manual", {}, np.array([3, 1]))
    with pytest.raises(ConfigError, match="kind"):
        ForgetSet("x", "magic", {}, np.array([1]))
    with pytest.raises(ConfigError, match="name"):
        ForgetSet(" ", "manual", {}, np.array([1]))


# ----------------------------------------------------------------------------- constructors


def test_random_forget_set_deterministic_by_seed():
    a = random_forget_set(1000, 50, seed=4)
    b = random_forget_set(1000, 50, seed=4)
    c = random_forget_set(1000, 50, seed=5)
    assert a == b and a != c
    assert a.size == 50 and a.kind == "random"
    assert a.params == {"n_train": 1000, "k": 50, "seed": 4}
    check_well_formed(a, 1000)


@pytest.mark.parametrize(
    ("k", "seed", "msg"), [(0, 0, "k"), (1000, 0, "k"), (5, -1, "seed"), (2.0, 0, "k")]
)
def test_random_forget_set_rejects(k, seed, msg):
    with pytest.raises(ConfigError, match=msg):
        random_forget_set(1000, k, seed=seed)


def test_class_forget_set(digits_like):
    labels, _ = digits_like
    fs = class_forget_set(labels, 3, fraction=0.5, seed=0)
    assert fs.size == 15 and np.all(labels[fs.indices] == 3)
    assert fs.params["fraction"] == 0.5 and fs.kind == "class"
    check_well_formed(fs, 300)
    assert class_forget_set(labels, 3, fraction=0.5, seed=0) == fs
    whole = class_forget_set(labels, 7, k=30)
    np.testing.assert_array_equal(whole.indices, np.flatnonzero(labels == 7))
    assert class_forget_set(labels, 2, fraction=0.01).size == 1  # at least one point


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"cls": 3}, "exactly one"),
        ({"cls": 3, "k": 2, "fraction": 0.5}, "exactly one"),
        ({"cls": 3, "k": 31}, "more than class 3 has"),
        ({"cls": 3, "fraction": 1.5}, "fraction"),
        ({"cls": 3, "fraction": 0.0}, "fraction"),
        ({"cls": 11, "k": 1}, "class 11 has no training points"),
    ],
)
def test_class_forget_set_rejects(digits_like, kw, msg):
    labels, _ = digits_like
    with pytest.raises(ConfigError, match=msg):
        class_forget_set(labels, **kw)


def brute_force_knn(points: np.ndarray, anchor: int, k: int) -> list[int]:
    dist = [float(np.sum((points[i] - points[anchor]) ** 2)) for i in range(len(points))]
    others = sorted((d, i) for i, d in enumerate(dist) if i != anchor)
    return sorted([anchor] + [i for _, i in others[: k - 1]])


@pytest.mark.parametrize(("anchor", "k"), [(0, 20), (17, 5), (299, 1), (150, 40)])
def test_knn_matches_brute_force(digits_like, anchor, k):
    _, pixels = digits_like
    flat = pixels.reshape(300, -1)
    fs = knn_forget_set(flat, anchor, k, space="pixel")
    assert fs.indices.tolist() == brute_force_knn(flat.astype(np.float64), anchor, k)
    assert fs.kind == "knn_pixel" and anchor in fs.indices
    check_well_formed(fs, 300)


def test_knn_ties_by_index_and_duplicate_anchor():
    points = np.array([[0.0], [1.0], [-1.0], [1.0], [0.0], [5.0]])  # (6, 1)
    # anchor 4 has an exact duplicate at 0; then 1, 2, 3 all at distance 1
    assert knn_forget_set(points, 4, 1, space="feature").indices.tolist() == [4]
    assert knn_forget_set(points, 4, 2, space="feature").indices.tolist() == [0, 4]
    assert knn_forget_set(points, 4, 4, space="feature").indices.tolist() == [0, 1, 2, 4]
    assert knn_forget_set(points, 4, 4, space="feature").kind == "knn_feature"


@pytest.mark.parametrize(
    ("anchor", "k", "space", "msg"),
    [
        (300, 5, "pixel", "anchor"),
        (0, 0, "pixel", "k"),
        (0, 300, "pixel", "k"),
        (0, 5, "x", "space"),
    ],
)
def test_knn_rejects(digits_like, anchor, k, space, msg):
    _, pixels = digits_like
    with pytest.raises(ConfigError, match=msg):
        knn_forget_set(pixels.reshape(300, -1), anchor, k, space=space)


def test_manual_forget_set():
    fs = manual_forget_set([9, 2, 2], 10, name="mine")
    assert fs.name == "mine" and fs.kind == "manual" and fs.indices.tolist() == [2, 9]
    assert fs.warnings == ("removed 1 duplicate index",)
    check_well_formed(fs, 10)


# ----------------------------------------------------------------------------- uploads


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"3\n1\n\n2\n", "f.csv", [3, 1, 2]),
        (b"index\n5\n6\n", "f.csv", [5, 6]),
        (b"\xef\xbb\xbfidx\r\n5\r\n6\r\n", "f.csv", [5, 6]),  # BOM, CRLF
        (b"name,Indices\na,4\nb, 7\n", "f.csv", [4, 7]),
        (b"4\n", "f.txt", [4]),
        (b"[1, 2, 3]", "f.json", [1, 2, 3]),
        (b'{"indices": [8, 9]}', "f.json", [8, 9]),
        (b" [1, 2]", "upload", [1, 2]),  # sniffed
        (b"1\n2\n", "upload", [1, 2]),
    ],
)
def test_parse_upload_good(data, filename, expected):
    assert parse_upload(data, filename) == expected


@pytest.mark.parametrize(
    ("data", "filename", "msg"),
    [
        (b"1\n2\nabc\n", "f.csv", "row 3: 'abc' is not an integer"),
        (b"1\n2.5\n", "f.csv", r"row 2: '2\.5' is not an integer"),
        (b"name\nx\n", "f.csv", "row 1: 'name' is not an integer.*'index'"),
        (b"1,2\n3,4\n", "f.csv", "row 1 has 2 columns"),
        (b"name,index\na,\n", "f.csv", "row 2: missing value"),
        (b"name,index\na\n", "f.csv", "row 2: missing value"),
        (b"index\n", "f.csv", "no indices found"),
        (b"", "f.csv", "empty"),
        (b"  \n", "f.json", "empty"),
        (b"\xff\xfe\x00", "f.csv", "not UTF-8"),
        (b"[1, 2", "f.json", "not valid JSON"),
        (b'{"rows": [1]}', "f.json", '"indices"'),
        (b'"12"', "f.json", "list of integers"),
        (b"[1, 2.5]", "f.json", r"item 2: 2\.5 is not an integer"),
        (b'[1, "2"]', "f.json", "item 2: '2' is a string"),
        (b"[true]", "f.json", "boolean"),
        (b"[]", "f.json", "no indices found"),
    ],
)
def test_parse_upload_bad(data, filename, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_upload(data, filename)


def test_upload_forget_set():
    fs = upload_forget_set(b"index\n4\n2\n4\n", "hard_points.csv", 10)
    assert fs.name == "hard_points" and fs.kind == "upload"
    assert fs.indices.tolist() == [2, 4] and fs.warnings == ("removed 1 duplicate index",)
    assert fs.params == {"n_train": 10, "filename": "hard_points.csv"}
    check_well_formed(fs, 10)
    with pytest.raises(ConfigError, match="index 10 is outside"):
        upload_forget_set(b"[1, 10]", "x.json", 10)


def test_from_dict_rejects_corrupt_records():
    with pytest.raises(ConfigError, match="missing field"):
        ForgetSet.from_dict({"name": "x"})
    good = manual_forget_set([1, 2], 10).to_dict()
    with pytest.raises(ConfigError, match="outside"):
        ForgetSet.from_dict({**good, "indices": [1, 20]})


# ----------------------------------------------------------------------------- presets


def test_digits_presets(digits_like):
    labels, pixels = digits_like
    presets = digits_presets(labels, pixels)
    assert tuple(fs.name for fs in presets) == PRESET_NAMES
    assert set(QUICK_PRESETS) <= set(PRESET_NAMES) and len(QUICK_PRESETS) == 3
    by_name = {fs.name: fs for fs in presets}
    assert [by_name[f"random-{k}"].size for k in (10, 50, 200)] == [10, 50, 200]
    assert np.all(labels[by_name["class3-half"].indices] == 3)
    assert by_name["class3-half"].size == 15
    assert by_name["knn-pixel-20"].size == 20 and by_name["knn-pixel-20"].kind == "knn_pixel"
    for fs in presets:
        check_well_formed(fs, 300)
    again = digits_presets(labels, pixels)
    assert all(a == b for a, b in zip(presets, again, strict=True))  # deterministic
    assert digits_preset("class3-half", labels, pixels) == by_name["class3-half"]
    with pytest.raises(ConfigError, match="unknown preset"):
        digits_preset("random-7", labels, pixels)
