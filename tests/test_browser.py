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
