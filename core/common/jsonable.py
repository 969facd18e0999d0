"""Values made JSON-safe for the CLI's ``--json`` and the run cards (strict JSON: no NaN)."""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Mapping
from typing import Any


def plain(value: Any) -> Any:
    """``value`` made of JSON types only: NaN and ±inf → None, timestamps → ISO 8601 strings,
    NumPy scalars → numbers, arrays, tuples and sets → lists, anything else → its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # NumPy scalars and arrays
        return plain(value.tolist())
    pd = sys.modules.get("pandas")  # loaded whenever a value can be one of its missing markers
    if pd is not None and (value is pd.NaT or value is pd.NA):
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):  # pandas' Timestamp included
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)
