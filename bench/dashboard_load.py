"""Page renders while a job trains, and ten browser sessions at once, in headless Chromium.

    python bench/dashboard_load.py [--reps 3] [--sessions 10] [--visits 4] [--json]

Builds a small demo lab (``python -m core demo --models 8 --epochs 3``) in a temporary folder,
starts ``streamlit run`` on a free 127.0.0.1 port and:

1. **renders**: for every page, the time from ``page.goto`` until the page's title (``h1``) is
   shown and the script is idle (``data-test-script-state`` is ``notRunning`` and no running
   indicator), median of ``--reps`` fresh tabs — first with nothing running, then while a
   ``build_models`` job (many models, CPU) trains in its worker process, started through the
   lab's own job path (``core.jobs.queue.start``, as the Models page does); the job is cancelled after.
2. **load**: ``--sessions`` browser contexts at once, each visiting the result pages (Compare,
   KLoM explorer, Models, Forget sets) ``--visits`` times in turn; counts exception boxes,
   console errors, page errors, failed requests, HTTP ≥ 400 and requests off localhost; reports
   the latency percentiles of a visit.

Only localhost is contacted; every loop is bounded in count and every wait in time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]  # fmt: skip
# url path → title (h1) of every page
PAGES = {
    "": "Unlearning Lab",
    "models": "Model zoo",
    "forget-sets": "Forget sets",
    "klom": "KLoM explorer",
    "unlearn": "Unlearn",
    "compare": "Compare methods",
    "attribution": "Attribution",
    "linear": "Linear model: why matching converges",
}
RESULT_PAGES = ["compare", "klom", "models", "forget-sets"]
# the page shows its title and its script has finished (no running indicator)
IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!document.querySelector('h1') && !!app
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stStatusWidget"] button');
}"""
EXCEPTION = "[data-testid='stException']"
# Streamlit's client, opened on a page's own URL (/compare), first looks for its server one
# level down (/compare/_stcore/health, …/host-config: 404), then at the root: benign, counted
# apart. So are requests cut off by the next navigation (net::ERR_ABORTED).
PROBE = re.compile(r"/[^/]+/_stcore/(health|host-config)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(db: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """``streamlit run`` on a free local port; returns the process and its URL once healthy."""
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115  (the server's stdout for its whole life)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1"],
        cwd=ROOT, env={**os.environ, "LAB_DB": db}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not start:\n" + log_path.read_text())


def build_demo(db: str, models: int = 8, epochs: int = 3) -> None:
    subprocess.run(
        [sys.executable, "-m", "core", "demo", "--models", str(models), "--epochs", str(epochs),
         "--db", db], cwd=ROOT, check=True, capture_output=True, timeout=600,
    )  # fmt: skip


def start_training(db: str, n_models: int = 5000) -> int:
    """A ``build_models`` job of ``n_models`` digits originals on the CPU, through the job path
    the Models page uses; returns its id once its worker reports progress."""
    from core.jobs import queue as jobs
    from core.store.db import Store
    from core.zoo.build import create_model_set
    from core.zoo.recipe import default_train_config

    store = Store(db)
    set_id = create_model_set(store, "original", default_train_config("digits"), n_models,
                              device="cpu", chunk_size=8)  # fmt: skip
    job_id = jobs.start(store, "build_models", {"set_id": set_id, "device": "cpu"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and jobs.get_job(store, job_id)["status"] != "running":
        time.sleep(0.2)
    return job_id


def job_status(db: str, job_id: int) -> dict:
    from core.jobs import queue as jobs
    from core.store.db import Store

    return jobs.get_job(Store(db), job_id)


def stop_job(db: str, job_id: int) -> None:
    from core.jobs import queue as jobs
    from core.store.db import Store

    store = Store(db)
    jobs.cancel(store, job_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and jobs.get_job(store, job_id)["status"] not in jobs.FINAL:
        time.sleep(0.3)


class Watch:
    """Console errors, page errors, failed requests, HTTP ≥ 400 and requests off localhost."""

    def __init__(self, page):
        self.counts = {"console_errors": 0, "page_errors": 0, "failed_requests": 0,
                       "http_errors": 0, "off_localhost": 0, "benign": 0}  # fmt: skip
        self.examples: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self._add("page_errors", str(e)))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("request", self._request)

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        probe = PROBE.search(urllib.parse.urlsplit(msg.location.get("url", "")).path)
        self._add("benign" if probe else "console_errors", msg.text)

    def _failed(self, request) -> None:
        aborted = "ERR_ABORTED" in (request.failure or "")
        self._add("benign" if aborted else "failed_requests", f"{request.url} {request.failure}")

    def _response(self, response) -> None:
        if response.status >= 400:
            probe = PROBE.search(urllib.parse.urlsplit(response.url).path)
            self._add("benign" if probe else "http_errors", f"{response.status} {response.url}")

    def _add(self, key: str, what: str) -> None:
        self.counts[key] += 1
        if key != "benign" and len(self.examples) < 10:
            self.examples.append(f"{key}: {what}")

    def _request(self, request) -> None:
        parts = urllib.parse.urlsplit(request.url)
        if parts.scheme not in ("data", "blob") and parts.hostname not in (
            "127.0.0.1",
            "localhost",
        ):
            self._add("off_localhost", request.url)


def render(page, url: str, path: str, timeout_ms: int = 120_000) -> tuple[float, int]:
    """Seconds from navigation to the idle, titled page; and its number of exception boxes."""
    t = time.perf_counter()
    page.goto(f"{url}/{path}", wait_until="commit", timeout=timeout_ms)
    page.get_by_role("heading", name=PAGES[path]).first.wait_for(timeout=timeout_ms)
    page.wait_for_function(IDLE, timeout=timeout_ms, polling=50)
    return time.perf_counter() - t, page.locator(EXCEPTION).count()


def render_round(browser, url: str, reps: int) -> dict[str, list[float]]:
    """``reps`` renders of every page, each in a fresh tab of one context (HTTP cache warm)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    render(ctx.new_page(), url, "")  # the page's JavaScript in the cache, the server warm
    out: dict[str, list[float]] = {p: [] for p in PAGES}
    for _ in range(reps):
        for path in PAGES:
            page = ctx.new_page()
            secs, boxes = render(page, url, path)
            assert boxes == 0, f"exception box on /{path}"
            out[path].append(secs)
            page.close()
    ctx.close()
    return out


def load(
    browser, url: str, sessions: int, visits: int, budget_s: float = 300, wait_s: float = 120
) -> dict:
    """``sessions`` contexts at once, each visiting ``RESULT_PAGES`` in turn ``visits`` times;
    a page not titled and idle ``wait_s`` after its wait began counts as a timeout.

    Playwright's sync API is not thread-safe, so the sessions are interleaved on this thread:
    each round starts a navigation in every session, then waits for each page to settle.
    """
    pages, watches = [], []
    for _ in range(sessions):
        ctx = browser.new_context(viewport={"width": 1200, "height": 900})
        pg = ctx.new_page()
        pages.append(pg)
        watches.append(Watch(pg))
    latencies: list[float] = []
    boxes = errors = 0
    t_end = time.monotonic() + budget_s
    for v in range(visits):
        if time.monotonic() > t_end:
            break
        starts = []
        for i, pg in enumerate(pages):  # all sessions navigate at once
            path = RESULT_PAGES[(v + i) % len(RESULT_PAGES)]
            starts.append((path, time.perf_counter()))
            pg.goto(f"{url}/{path}", wait_until="commit", timeout=wait_s * 1e3)
        for pg, (path, t0) in zip(pages, starts, strict=True):
            try:
                pg.get_by_role("heading", name=PAGES[path]).first.wait_for(timeout=wait_s * 1e3)
                pg.wait_for_function(IDLE, timeout=wait_s * 1e3, polling=100)
                latencies.append(time.perf_counter() - t0)
                boxes += pg.locator(EXCEPTION).count()
            except Exception as err:  # noqa: BLE001  (a timeout is counted, not fatal)
                errors += 1
                watches[0].examples.append(f"timeout on /{path}: {err}")
    for pg in pages:
        pg.context.close()
    counts = {k: sum(w.counts[k] for w in watches) for k in watches[0].counts}
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {"sessions": sessions, "visits": len(latencies), "exception_boxes": boxes,
            "timeouts": errors, **counts, "p50_s": pct(0.5), "p90_s": pct(0.9), "max_s": pct(1.0),
            "examples": [e for w in watches for e in w.examples][:10]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--visits", type=int, default=4)
    ap.add_argument("--job-models", type=int, default=5000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="lab-load-"))
    db = str(tmp / "lab.duckdb")
    build_demo(db)
    server, url = serve(db, tmp / "server.log")
    res: dict = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            idle = render_round(browser, url, args.reps)
            res["load_idle"] = load(browser, url, args.sessions, args.visits)
            job_id = start_training(db, args.job_models)
            try:
                busy = render_round(browser, url, args.reps)
                res["job_during"] = job_status(db, job_id)["status"]
            finally:
                stop_job(db, job_id)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    res["renders"] = {
        p or "home": {"idle_s": statistics.median(idle[p]), "during_run_s": statistics.median(busy[p]),
                      "ratio": statistics.median(busy[p]) / statistics.median(idle[p])}
        for p in PAGES
    }  # fmt: skip
    res["samples"] = {"idle": idle, "during_run": busy}
    if args.json:
        print(json.dumps(res))
        return
    print(f"Page render (goto → title shown and script idle), median of {args.reps}:")
    print(f"  {'page':<14}{'idle':>8}{'during run':>12}{'ratio':>7}")
    for p, r in res["renders"].items():
        print(f"  {p:<14}{r['idle_s']:>7.2f}s{r['during_run_s']:>11.2f}s{r['ratio']:>7.2f}")
    print(f"  (job status at the end of the busy round: {res['job_during']})")
    ld = res["load_idle"]
    print(f"Load: {ld['sessions']} sessions, {ld['visits']} page visits: "
          f"p50 {ld['p50_s']:.2f} s, p90 {ld['p90_s']:.2f} s, max {ld['max_s']:.2f} s")  # fmt: skip
    print("  " + ", ".join(f"{k} {ld[k]}" for k in ("exception_boxes", "timeouts", "console_errors",
          "page_errors", "failed_requests", "http_errors", "off_localhost", "benign")))  # fmt: skip
    for e in ld["examples"]:
        print("   ", e)


if __name__ == "__main__":
    main()
