"""Forget sets from uploaded files: a CSV column, a JSON list or a ``.npy`` array of train indices.

Bounded and linear: at most ``MAX_UPLOAD_BYTES`` (a forget set is never larger than the train
split, and 50,000 CIFAR-10 indices as CSV take under 300 KB), read in one pass that keeps only
the integers; with ``n_train`` every value is range-checked as it is read, so a bad file is
refused at its first bad row. Problems raise ``ConfigError`` saying what and where.
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from pathlib import Path, PurePath

from core.common.errors import ConfigError
from core.common.npy_check import check_npy_size
from core.forget.sets import (
    _INT_RE,
    INDEX_COLUMNS,
    MAX_NAME_LENGTH,
    ForgetSet,
    _as_int,
    _outside,
    _short,
    validate_indices,
)

# An index file is at most this big: 50,000 CIFAR-10 indices as CSV take under 300 KB. Keep it
# at or below the dashboard's ``server.maxUploadSize`` (.streamlit/config.toml, in MB).
MAX_UPLOAD_BYTES = 2_000_000


def _checked(value: int, where: str, n_train: int | None) -> int:
    if n_train is not None and not 0 <= value < n_train:
        raise ConfigError(f"{where}: {_outside(value, n_train)}")
    return value


def _parse_json(text: str, n_train: int | None) -> list[int]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"not valid JSON: {err.msg} at line {err.lineno}") from None
    except RecursionError:
        raise ConfigError("the JSON is nested too deeply: give a flat list of integers") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise ConfigError("the JSON holds a number far too long to be a train index") from None
    if isinstance(obj, dict):
        key = next((c for c in INDEX_COLUMNS if c in obj), None)
        if key is None:
            raise ConfigError('JSON object must have an "indices" list, e.g. {"indices": [1, 2]}')
        obj = obj[key]
    if not isinstance(obj, list):
        raise ConfigError('JSON must be a list of integers or {"indices": [...]}')
    if all(type(v) is int for v in obj) and _in_range(obj, n_train):
        return obj  # the common case; otherwise item by item, for the message
    out = []
    for i, v in enumerate(obj):
        if isinstance(v, str):
            raise ConfigError(f"item {i + 1}: {_short(v)} is a string, not an integer")
        out.append(_checked(_as_int(v, f"item {i + 1}"), f"item {i + 1}", n_train))
    return out


def _in_range(values: list[int], n_train: int | None) -> bool:
    return n_train is None or not values or (min(values) >= 0 and max(values) < n_train)


def _plain_column(text: str, n_train: int | None) -> list[int] | None:
    """One integer per line (after an optional header) at C speed; None if anything else
    (``int`` also reads non-ASCII digits such as "٣" or "３": such text takes the slow path)."""
    if not text.isascii() or any(c in text for c in ',"_ \t'):
        return None
    tokens = text.split()
    start = 1 if tokens and tokens[0].lower() in INDEX_COLUMNS else 0
    try:
        values = list(map(int, tokens[start:]))
    except ValueError:
        return None
    return values if _in_range(values, n_train) else None


def _parse_csv(text: str, n_train: int | None) -> list[int]:
    """One pass over the rows, keeping only the integers (memory: the values, not the rows)."""
    fast = _plain_column(text, n_train)
    if fast is not None:
        return fast
    col: int | None = None
    out: list[int] = []
    try:
        for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue  # blank line
            if col is None:  # the first row: a header naming the column, or the first value
                if not all(_INT_RE.fullmatch(c) for c in cells):
                    names = [c.lower() for c in cells]
                    hit = next((c for c in INDEX_COLUMNS if c in names), None)
                    if hit is None:
                        bad = next(c for c in cells if not _INT_RE.fullmatch(c))
                        raise ConfigError(
                            f"row {n}: {_short(bad)} is not an integer (a header must name the "
                            f"column {', '.join(repr(c) for c in INDEX_COLUMNS)})"
                        )
                    col = names.index(hit)
                    continue
                if len(cells) > 1:
                    raise ConfigError(
                        f"row {n} has {len(cells)} columns: without a header naming the 'index' "
                        "column, put one integer per line"
                    )
                col = 0
            if col >= len(cells) or not cells[col]:
                raise ConfigError(f"row {n}: missing value in the index column")
            if not _INT_RE.fullmatch(cells[col]):
                raise ConfigError(f"row {n}: {_short(cells[col])} is not an integer")
            out.append(_checked(_as_int(cells[col], f"row {n}"), f"row {n}", n_train))
    except csv.Error as err:
        raise ConfigError(f"not a readable CSV file: {err}") from None
    return out


def parse_upload(data: bytes, filename: str, n_train: int | None = None) -> list[int]:
    """Raw indices from an uploaded file (range-checked only when ``n_train`` is given).

    CSV (``.csv``/``.txt``): one integer per line, or a column named index/indices/idx under a
    header. JSON (``.json``): a list of integers or ``{"indices": [...]}``. NumPy (``.npy``): an
    integer array, read flat (``allow_pickle=False``). Other names are
    sniffed: text starting with ``[`` or ``{`` is JSON. At most ``MAX_UPLOAD_BYTES``; one pass,
    linear in the size. Malformed input → ``ConfigError`` saying what and where.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ConfigError(
            f"{filename}: {len(data) / 1e6:.1f} MB is too large for a list of indices "
            f"(at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB; 50,000 indices take about 0.3 MB)"
        )
    if PurePath(filename).suffix.lower() == ".npy":
        return _parse_npy(data, filename, n_train)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{filename}: not UTF-8 text (expected a CSV or JSON file)") from None
    if not text.strip():
        raise ConfigError(f"{filename}: the file is empty")
    suffix = PurePath(filename).suffix.lower()
    is_json = suffix == ".json" or (
        suffix not in (".csv", ".txt") and text.lstrip()[:1] in ("[", "{")
    )
    values = _parse_json(text, n_train) if is_json else _parse_csv(text, n_train)
    if not values:
        raise ConfigError(f"{filename}: no indices found")
    return values


def _parse_npy(data: bytes, filename: str, n_train: int | None) -> list[int]:
    """A NumPy ``.npy`` array of integers (any shape, read flat; never unpickled)."""
    import numpy as np

    check_npy_size(io.BytesIO(data), len(data), filename)  # before NumPy allocates the array
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ConfigError(f"{filename}: not a readable .npy array of indices ({err})") from None
    if arr.dtype.kind not in "iu":
        raise ConfigError(f"{filename}: dtype {arr.dtype} — indices must be integers")
    values = arr.reshape(-1).tolist()
    if not values:
        raise ConfigError(f"{filename}: no indices found")
    if not _in_range(values, n_train):
        bad = next(v for v in values if not 0 <= v < n_train)
        raise ConfigError(f"{filename}: {_outside(bad, n_train)}")
    return values


def read_upload(path: str | os.PathLike) -> tuple[bytes, str]:
    """The bytes and name of an index file on disk, refused by size before it is read."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"--file must name a CSV, JSON or .npy file of indices, got {str(path)!r}"
        )
    size = p.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise ConfigError(
            f"{p.name}: {size / 1e6:.1f} MB is too large for a list of indices "
            f"(at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB; 50,000 indices take about 0.3 MB)"
        )
    return p.read_bytes(), p.name


def upload_forget_set(
    data: bytes, filename: str, n_train: int, name: str | None = None
) -> ForgetSet:
    """Parse an uploaded CSV/JSON file and validate it into a forget set.

    Without a ``name`` the file's name is used, cleaned of control characters and shortened.
    """
    idx, warns = validate_indices(parse_upload(data, filename, n_train), n_train)
    params = {"n_train": n_train, "filename": filename}
    if name is None:
        name = name_from_file(filename, "upload")
    return ForgetSet(name, "upload", params, idx, warns)


def utf8_text(text: str) -> str:
    """``text`` as valid UTF-8: undecodable bytes (lone surrogates, as Python keeps them from
    file names and argv) become U+FFFD, which the database (and its JSON) can store."""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def name_from_file(filename: str, fallback: str) -> str:
    """A forget-set name from a file's name: its stem without control characters or undecodable
    bytes (category C), stripped and shortened; ``fallback`` if nothing is left."""
    stem = "".join(c for c in PurePath(filename).stem if unicodedata.category(c)[0] != "C")
    return stem.strip()[:MAX_NAME_LENGTH].strip() or fallback
