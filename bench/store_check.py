"""Cost of the store's integrity checks on open: header only, every block's checksum, and a
scan of every table through DuckDB (for comparison), median of several runs.

    python bench/store_check.py --db data/lab.duckdb            # an existing lab
    python bench/store_check.py --synthetic-mb 100 --db /tmp/big.duckdb   # a made-up bigger one
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from core.store import check as store_check  # noqa: E402
from core.store.db import Store  # noqa: E402


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _synthetic(path: Path, mb: int) -> None:
    """A lab whose klom_points table fills about ``mb`` MB (random values do not compress)."""
    store = Store(path).create()
    with store.transaction() as con:
        rows = mb * 1024 * 1024 // 28
        con.execute(
            "INSERT INTO klom_points SELECT i // 60000, i % 60000, 'retain', random(), random(), "
            "random() FROM range(?) r(i)",
            [rows],
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--synthetic-mb", type=int, default=0)
    a = p.parse_args()
    path = Path(a.db)
    if a.synthetic_mb and not path.exists():
        _synthetic(path, a.synthetic_mb)
    header = store_check.read_header(path)
    print(f"{path}: {header.size / 1e6:.1f} MB, {header.size // header.block_size} blocks")
    print(
        f"header check          {_median_ms(lambda: store_check.read_header(path), a.runs):8.3f} ms"
    )
    blocks = _median_ms(lambda: store_check.damaged_blocks(path, header), a.runs)
    print(f"every block checksum  {blocks:8.3f} ms")

    def scan() -> None:
        con = duckdb.connect(str(path), read_only=True)
        store_check.scan_all(con)
        con.close()

    print(f"DuckDB scan of tables {_median_ms(scan, a.runs):8.3f} ms (comparison)")
    print(
        f"plain open + close    {_median_ms(lambda: duckdb.connect(str(path), read_only=True).close(), a.runs):8.3f} ms"
    )
    print(f"Store first read      {_median_ms(lambda: Store(path).check(), a.runs):8.3f} ms")


if __name__ == "__main__":
    main()
