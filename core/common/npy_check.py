"""A ``.npy`` file's header checked against the file's size before NumPy reads the array.

``np.load`` allocates the array its header declares before it reads a byte of data, so a 1 KB
file declaring shape (10⁹, 1797) of float64 made it ask for about 14 TB and fail with
``MemoryError``. The data of an array of shape s and dtype d takes Π s · d.itemsize bytes right
after the header; a file shorter than header + data cannot hold the array it declares and is
refused here, naming the file, with nothing allocated.
"""

from __future__ import annotations

import math
from typing import BinaryIO

from core.common.errors import ConfigError


def check_npy_size(fh: BinaryIO, size: int, name: str) -> None:
    """Raise ``ConfigError`` if the ``.npy`` in ``fh`` (``size`` bytes from its current position)
    declares more data than it holds. A header NumPy cannot read is left for ``np.load`` to
    report; ``fh`` is returned to where it was."""
    from numpy.lib import format as npf

    start = fh.tell()
    try:
        version = npf.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npf.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):  # 3.0: the 2.0 header in UTF-8; the same fields
            shape, _, dtype = npf.read_array_header_2_0(fh)
        else:
            return
        data = size - (fh.tell() - start)
    except (ValueError, OSError, EOFError, UnicodeDecodeError):
        return  # not a header NumPy reads: np.load says why
    finally:
        fh.seek(start)
    need = math.prod(int(n) for n in shape) * dtype.itemsize
    if not dtype.hasobject and need > data:
        raise ConfigError(
            f"{name}: its header declares an array of shape {tuple(shape)} and dtype {dtype} "
            f"({_bytes(need)}), but the file holds only {_bytes(max(data, 0))} of data: "
            "a damaged or crafted .npy file"
        )


def _bytes(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
