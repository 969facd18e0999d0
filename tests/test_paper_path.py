"""The seed paper's whole path by clicks only, in a real headless Chromium over a real server and
an empty lab in a temporary folder (issue 21): build a small demo from Home, make a forget set,
build its oracles, run gradient descent and Oracle Matching from Unlearn, run DMM — whose
logits datamodel the Unlearn page fits first, as a job chain — then find the three runs on
Compare and open a forget point's drill-down from there.

Fails on any exception box, console error, failed request, request off localhost or failed job
(``Walk.shot``). A screenshot per step goes to ``$LAB_TEST_ARTIFACTS`` (or
``test-artifacts/screenshots``), prefixed ``paper-``.

The demo is tiny (8 models a side, 3 epochs) so that the test stays quick: with 8 models a side
KLoM saturates near its ceiling on every split and the noise floor is of the same size, so the
three methods' scores are not resolved. The test checks the order the paper reports (DMM
between gradient descent and Oracle Matching) when the scores are resolved, and otherwise that
Compare says they are not, and why.
"""

from __future__ import annotations

import pytest

from core.evaluation.compare import runs_table
from core.store.db import Store
from tests.dashboard.test_browser import (  # noqa: F401  (page: a fixture)
    _free_port,
    _serve,
    page,
)
from tests.dashboard.test_browser_walk import ARTIFACTS, PICK_GAP, Walk

pytestmark = pytest.mark.browser

LONG = 300_000  # ms: a chain of background jobs on a busy CPU
METHODS = ("gradient_descent", "oracle_matching", "dm_matching")


@pytest.fixture
def empty_server(db_path, tmp_path):
    yield from _serve(db_path, tmp_path)


@pytest.mark.timeout(1500)  # ~200 s on a quiet 2-core machine; room for one 4x slower
def test_the_seed_papers_path_by_clicks(empty_server, page, db_path):  # noqa: F811
    w = Walk(page, empty_server)
    try:
        _path(w, db_path)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / f"paper-{w.step + 1:02d}-FAILED.png"), full_page=True)
        raise


def _fill(w: Walk, label: str, value: str) -> None:
    box = w.page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    w.idle()


def _path(w: Walk, db_path) -> None:
    pg = w.page
    pg.goto(w.url, wait_until="domcontentloaded")
    w.text("A guided tour")
    # 1. the demo, small, from Home
    _fill(w, "models per side", "8")
    _fill(w, "epochs", "3")
    pg.get_by_role("button", name="Run the quick demo").click()
    pg.get_by_role("link", name="Open the demo in the KLoM explorer").wait_for(timeout=LONG)
    w.shot("paper-home-demo")
    # 2. a forget set, saved, and its oracles
    w.nav("Forget sets", "Saved forget sets")
    pg.get_by_text("Random", exact=True).click()
    w.idle()
    _fill(w, "points", "10")
    _fill(w, "seed", "7")
    _fill(w, "name (optional)", "paper")
    pg.get_by_role("button", name="Preview").click()
    w.text("Preview: paper")
    w.idle()
    pg.get_by_role("button", name="Save forget set").click()
    w.text("Saved as forget set")
    store = Store(db_path)
    fs_id = int(store.query_df("SELECT id FROM forget_sets WHERE name = 'paper'")["id"][0])
    w.choose("open a forget set", "paper")
    pg.get_by_role("button", name="Build its oracles").click()
    w.text(f"Build oracles · for forget set #{fs_id} paper · done", LONG)
    w.text("Oracles of these originals built")
    w.shot("paper-forget-set")
    # 3. gradient descent, Oracle Matching, then DMM (its datamodel is built first)
    w.nav("Unlearn", "Pick a forget set and a method")
    w.choose("forget set", "paper")
    for method in METHODS:
        w.choose("method", method)
        _fill(w, "budgets (shares of retraining, comma-separated)", "0.1")
        button = "Run in the background"
        if method == "dm_matching":
            w.text("dm_matching needs a logits datamodel")
            _fill(w, "subset models M for the datamodel", "20")
            button = "Build what is missing, then run"
        pg.get_by_role("button", name=button).click()
        w.text(f"Unlearn · {method} on forget set #{fs_id} paper · 1 run · done", LONG)
    w.shot("paper-unlearn")
    table = runs_table(store, fs_id).set_index("method")
    assert set(METHODS) <= set(table.index)
    # 4. Compare: the three runs, their order or the reason it is not resolved
    w.nav("Compare", "Lines join each")
    w.choose("forget set", "paper")
    for method in METHODS:
        pg.locator(".legendtext", has_text=method).first.wait_for(timeout=60_000)
    score = {m: float(table.loc[m, "klom_p99_avg"]) for m in METHODS}
    floor, worst = table["klom_floor_p99_avg"].max(), table["klom_p99_avg"].max()
    if floor >= 0.5 * worst:  # saturated (8 models a side): the page says so, and why
        w.text("The order of these runs is not resolved: with 8 models a side")
    else:  # resolved: the paper's order, DMM between gradient descent and Oracle Matching
        gd, om, dmm = (score[m] for m in METHODS)
        assert min(gd, om) <= dmm <= max(gd, om), score
        assert w.page.get_by_text("is not resolved").count() == 0
    w.shot("paper-compare")
    # 5. a forget point's drill-down, opened from Compare's point-by-point view
    pg.get_by_role("tab", name="Over / under-unlearning").click()
    dot = w.settled(PICK_GAP)
    pg.mouse.click(dot["x"], dot["y"])
    link = pg.get_by_role("link", name=f"Point {dot['point']} of run {dot['run']} in the")
    link.wait_for(timeout=60_000)
    link.click()
    w.text(f"point {dot['point']} · split forget")
    w.shot("paper-drill-down")
