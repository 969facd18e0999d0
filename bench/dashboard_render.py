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

``--browser`` also measures it in headless Chromium (``/usr/bin/chromium``) against a real
``streamlit run`` server: for a fresh browser context (no HTTP cache: the page's JavaScript,
about 5 MB of it plotly, is fetched and parsed every time) the time to the first text of the
page and to the drill-down's chart, on a just-started server (first sample) and on a warm one
(the others); and the time of a rerun, from a click on "log scale" to the redrawn axis.
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


LOG_AXIS = (
    "() => [...document.querySelectorAll('.js-plotly-plot')]"
    ".some(g => g._fullLayout && g._fullLayout.xaxis.type === 'log')"
)


def in_browser(db: str, runs: int) -> dict:
    import socket
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "streamlit", "run", APP, "--server.port", str(port),
           "--server.headless", "true", "--server.address", "127.0.0.1"]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "LAB_DB": db},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        out: dict = {"first_text": [], "drill_down": [], "rerun": []}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            for _ in range(runs + 1):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t = time.perf_counter()
                page.goto(url, wait_until="commit")  # from Home, as a visitor, then the link
                page.get_by_role("link", name="KLoM explorer").first.click(timeout=120_000)
                page.get_by_text("distribution", exact=True).first.wait_for(timeout=120_000)
                out["first_text"].append(time.perf_counter() - t)
                page.get_by_text("margins of point").first.wait_for(timeout=120_000)
                out["drill_down"].append(time.perf_counter() - t)
                t = time.perf_counter()
                page.get_by_text("log scale", exact=True).click()
                page.wait_for_function(LOG_AXIS, timeout=120_000)
                out["rerun"].append(time.perf_counter() - t)
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "just_started_first_text_s": out["first_text"][0],
        "just_started_drill_down_s": out["drill_down"][0],
        "warm_first_text_s": statistics.median(out["first_text"][1:]),
        "warm_drill_down_s": statistics.median(out["drill_down"][1:]),
        "rerun_s": statistics.median(out["rerun"]),
        "samples": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="a database holding the demo (python -m core demo)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--browser", action="store_true", help="also time it in headless Chromium")
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
    if args.browser:
        res["browser"] = in_browser(args.db, args.runs)
    if args.json:
        print(json.dumps(res))
        return
    print(f"KLoM explorer render, median of {args.runs} (AppTest, server side):")
    print(f"  cold start  (fresh process)        {res['cold_start_s']:.2f} s")
    print(f"  cold caches (modules imported)     {res['cold_caches_s']:.2f} s")
    print(f"  warm rerun                         {res['warm_s']:.2f} s")
    if args.browser:
        b = res["browser"]
        print("In headless Chromium, fresh browser context (no HTTP cache), Home → KLoM explorer:")
        print(f"  just-started server: first text {b['just_started_first_text_s']:.2f} s, "
              f"drill-down chart {b['just_started_drill_down_s']:.2f} s")  # fmt: skip
        print(f"  warm server (median): first text {b['warm_first_text_s']:.2f} s, "
              f"drill-down chart {b['warm_drill_down_s']:.2f} s")  # fmt: skip
        print(f"  rerun (log scale click → redrawn axis, median): {b['rerun_s']:.2f} s")


if __name__ == "__main__":
    main()
