"""Load against a real server: ten browser sessions at once, and pages while a job trains.

The three tests share one tiny lab, one server and one Chromium (an xdist group keeps them on
one worker, in this order); each job test stops its job, so the next one starts idle."""

from __future__ import annotations

import pytest

from bench.dashboard_load import (
    PAGES,
    RESULT_PAGES,
    Watch,
    load,
    render,
    start_training,
    stop_job,
)  # fmt: skip
from tests.dashboard import test_browser
from tests.dashboard.test_browser import CHROMIUM, FLAGS, playwright_api

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("load")]
# the jobs panel's line of job ``id`` while it runs, or null
RUNNING_LINE = (
    "(id) => (document.body.innerText.split('\\n')"
    ".find(l => l.includes(`job ${id} · `) && l.includes(' · running')) || null)"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(url, db_path)``: a server over a tiny lab (originals, a forget set, oracles and a
    do-nothing evaluation), shared by this module's tests."""
    from core.evaluation.run import evaluate
    from tests.lab_fixtures import tiny_lab

    tmp = tmp_path_factory.mktemp("load")
    lab = tiny_lab(tmp / "lab.duckdb")
    evaluate(lab["store"], lab["forget_set"], "do_nothing")
    for url in test_browser._serve(tmp / "lab.duckdb", tmp):
        yield url, tmp / "lab.duckdb"


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "Chromium is required for the browser tests in CI"
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def test_ten_sessions_reading_results_see_no_errors(served, browser):
    """Ten contexts at once open Compare, KLoM explorer, Models and Forget sets (one visit
    each, the pages spread over the sessions; ``bench/dashboard_load.py`` runs more): no
    exception box, console or page error, failed request, HTTP ≥ 400 or timeout.

    Each page may take up to five minutes here: this test looks for errors and hangs, and the
    bench measures speed. (With ``yes`` beside the suite on a loaded 2-core machine, a Models
    page once took more than the bench's two minutes to settle, and it had no error.)"""
    url, _ = served
    res = load(browser, url, sessions=10, visits=1, budget_s=300, wait_s=300)
    assert res["visits"] == 10, res
    bad = {k: res[k] for k in ("exception_boxes", "timeouts", "console_errors", "page_errors",
                               "failed_requests", "http_errors", "off_localhost")}  # fmt: skip
    assert not any(bad.values()), (bad, res["examples"])


def test_pages_render_while_a_job_trains(served, browser):
    """A build_models job trains in its worker: every result page renders without an error,
    and the Models page shows the job running, its progress moving."""
    url, db_path = served
    job_id = start_training(str(db_path), n_models=5000)
    try:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        watch = Watch(page)
        for path in [*RESULT_PAGES, ""]:
            _, boxes = render(page, url, path)
            assert boxes == 0, f"exception box on /{path or 'home'}"
        render(page, url, "models")
        assert page.get_by_role("heading", name=PAGES["models"]).count() == 1
        page.wait_for_function(RUNNING_LINE, arg=job_id, timeout=30_000)
        first = page.evaluate(RUNNING_LINE, job_id)
        page.wait_for_function(  # the panel refreshes itself: the line changes while training
            f"([id, t]) => {{ const l = ({RUNNING_LINE})(id); return l !== null && l !== t; }}",
            arg=[job_id, first],
            timeout=30_000,
        )
        bad = {k: v for k, v in watch.counts.items() if v and k != "benign"}
        assert not bad, (bad, watch.examples)
        ctx.close()
    finally:
        stop_job(str(db_path), job_id)


RUNS_IN = """async (ms) => {  // script runs begun within ms milliseconds, sampled every 50 ms
  const app = document.querySelector('[data-testid="stApp"]');
  let runs = 0, last = app.getAttribute('data-test-script-state');
  for (const end = Date.now() + ms; Date.now() < end; ) {
    await new Promise(r => setTimeout(r, 50));
    const now = app.getAttribute('data-test-script-state');
    if (now === 'running' && last !== 'running') runs++;
    last = now;
  }
  return runs;
}"""


def test_an_idle_page_stays_idle_and_a_job_started_elsewhere_appears(served, browser):
    """The jobs panel reran its page every 2 s with no job at all, so ten sessions on a busy
    machine never saw a page idle. Now it refreshes every ``SLOW_S`` (15 s) with no active job,
    and every ``FAST_S`` (2 s) once a job started elsewhere (here: as the CLI would) appears."""
    from dashboard.jobs_panel import FAST_S, SLOW_S

    url, db_path = served
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    render(page, url, "models")
    assert page.evaluate(RUNS_IN, 8_000) <= 1  # 2 s refreshes: 4 runs; 15 s: 1 at most
    job_id = start_training(str(db_path), n_models=5000)
    try:
        page.wait_for_function(RUNNING_LINE, arg=job_id, timeout=(SLOW_S + 60) * 1000)
        assert page.evaluate(RUNS_IN, int(4 * FAST_S * 1000)) >= 2  # refreshes fast now
    finally:
        stop_job(str(db_path), job_id)
    ctx.close()
