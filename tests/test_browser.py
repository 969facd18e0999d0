"""The whole app in a real headless Chromium: start the server, click through, check DuckDB."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from core.linear_runs import list_linear_runs
from core.store import Store
from tests.conftest import ROOT

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
)
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip(
        "Chromium is not installed (scripts/install_browser.sh installs it)",
        allow_module_level=True,
    )

playwright_api = pytest.importorskip("playwright.sync_api")

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(db_path, tmp_path):
    yield from _serve(db_path, tmp_path)


@pytest.fixture
def lab_server(db_path, tmp_path):
    """A server over a tiny lab: originals, a forget set, oracles and a do-nothing evaluation."""
    from core.evaluation import evaluate
    from tests.lab_fixtures import tiny_lab

    lab = tiny_lab(db_path)
    lab["run_id"] = evaluate(lab["store"], lab["forget_set"], "do_nothing")
    for url in _serve(db_path, tmp_path):
        yield url, lab


def _serve(db_path, tmp_path):
    port = _free_port()
    env = {**os.environ, "LAB_DB": str(db_path)}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115  (closed after the server stops)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start:\n" + (tmp_path / "server.log").read_text())
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture
def page(tmp_path):
    assert CHROMIUM, "Chromium is required for the browser tests in CI"
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield pg
        browser.close()


def test_whole_app_linear_study(server, page, db_path, tmp_path):
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_text("Machine unlearning", exact=False).first.wait_for(timeout=60_000)
    page.get_by_role("link", name="Linear model").first.click()
    page.get_by_text("why matching converges", exact=False).first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("stored", exact=False).first.wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    page.screenshot(path=str(tmp_path / "linear.png"), full_page=True)
    runs = list_linear_runs(Store(db_path))
    assert len(runs) == 1 and runs["steps"][0] == 1000


def test_whole_app_klom_explorer_drill_down(lab_server, page, tmp_path):
    url, lab = lab_server
    page.goto(url + "/models", wait_until="domcontentloaded")
    page.get_by_text("Model zoo").first.wait_for(timeout=60_000)
    page.get_by_text("Build original models").first.wait_for(timeout=30_000)
    page.goto(url + "/klom", wait_until="domcontentloaded")
    page.get_by_text("KLoM explorer").first.wait_for(timeout=60_000)
    page.get_by_text("Drill down to a point").first.wait_for(timeout=60_000)
    # the distribution in the open tab, and the per-point chart
    page.locator(".js-plotly-plot >> visible=true").nth(1).wait_for(timeout=60_000)
    # a click on a dot in the per-point chart (Streamlit's selection event) moves the drill-down
    box = page.get_by_label("point index", exact=False)
    before = int(box.input_value())
    scatter = page.locator(".js-plotly-plot >> visible=true").nth(1)
    dot = scatter.locator(".scatterlayer .trace").last.locator("path.point").first  # a forget dot
    dot.scroll_into_view_if_needed()
    where = dot.bounding_box()  # plotly listens on its drag layer: click at the dot's position
    page.mouse.click(where["x"] + where["width"] / 2, where["y"] + where["height"] / 2)
    deadline = time.monotonic() + 60
    while int(box.input_value()) == before and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    clicked = int(box.input_value())
    assert clicked != before
    page.get_by_text(f"point {clicked} · split", exact=False).first.wait_for(timeout=60_000)
    # … and so does typing an index
    point = int(lab["forget"][0])
    box.fill(str(point))
    box.press("Enter")
    page.get_by_text(f"point {point}", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("split forget", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(tmp_path / "klom.png"), full_page=True)
