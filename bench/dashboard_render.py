"""Render time of the KLoM explorer through Streamlit's AppTest (server side, no browser).

    python -m core demo --db /tmp/demo.duckdb          # once: the demo data
    python bench/dashboard_render.py --db /tmp/demo.duckdb [--runs 5] [--json]

Three figures, each the median of ``--runs`` samples:

- **cold start**: a fresh Python process with Streamlit loaded renders the page once — imports
  (torch, scikit-learn, plotly), opening the store, reading the evaluation and the dataset, building every chart:
  the first visit after ``streamlit run``;
- **cold caches**: the process has rendered Home already (modules imported), then every
  Streamlit cache is cleared and the explorer renders: the first visit to this page, or the
  first after a write cleared the caches;
- **warm**: a rerun of the explorer with its caches filled (what a widget change costs at
  least).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
sys.path.insert(0, str(ROOT))

ONE_COLD = """
import time, sys
from streamlit.testing.v1 import AppTest  # a running server has streamlit loaded already
t0 = time.perf_counter()
at = AppTest.from_file(sys.argv[1], default_timeout=300)
at.switch_page("views/klom.py")
at.run()
assert not at.exception and at.title[0].value == "KLoM explorer", at.exception
print(time.perf_counter() - t0)
"""


def cold_start(db: str) -> float:
    env = {**os.environ, "LAB_DB": db}
    out = subprocess.run([sys.executable, "-c", ONE_COLD, APP], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def in_process(db: str, runs: int) -> tuple[list[float], list[float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["LAB_DB"] = db
    home = AppTest.from_file(APP, default_timeout=300)
    home.run()  # imports everything once
    cold, warm = [], []
    for _ in range(runs):
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(APP, default_timeout=300)
        at.switch_page("views/klom.py")
        t = time.perf_counter()
        at.run()
        cold.append(time.perf_counter() - t)
        assert not at.exception, at.exception
        t = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t)
    return cold, warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="a database holding the demo (python -m core demo)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(args.db).exists():
        sys.exit(f"{args.db} does not exist: run `python -m core demo --db {args.db}` first")
    starts = [cold_start(args.db) for _ in range(args.runs)]
    cold, warm = in_process(args.db, args.runs)
    res = {
        "cold_start_s": statistics.median(starts),
        "cold_caches_s": statistics.median(cold),
        "warm_s": statistics.median(warm),
        "runs": args.runs,
        "samples": {"cold_start": starts, "cold_caches": cold, "warm": warm},
    }
    if args.json:
        print(json.dumps(res))
        return
    print(f"KLoM explorer render, median of {args.runs} (AppTest, server side):")
    print(f"  cold start  (fresh process)        {res['cold_start_s']:.2f} s")
    print(f"  cold caches (modules imported)     {res['cold_caches_s']:.2f} s")
    print(f"  warm rerun                         {res['warm_s']:.2f} s")


if __name__ == "__main__":
    main()
