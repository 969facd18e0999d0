"""The whole app walked by clicks in a real headless Chromium, over one server and one store:
the linear study, the demo (its KLoM explorer's log scale and histogram, and a click on a
forget point's dot opening exactly that point), a forget set, a sweep of two methods, Compare,
a point's drill-down and Attribution — failing on any exception box, console error, failed
request or request off localhost, with a full-page screenshot of every step
(``$LAB_TEST_ARTIFACTS`` or ``test-artifacts/screenshots``).

The demo is built beforehand by the CLI at a tiny size (``demo_server``: 8 models a side,
3 epochs), since the Home button trains 100 models a side; the walk opens it from Home's link.
The datamodel for Attribution is fitted through the page's own button (M = 20 subset models)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from core.linear.runs import list_linear_runs
from core.store.db import Store
from tests.conftest import ROOT
from tests.dashboard.test_browser import (  # noqa: F401  (demo_server, page: fixtures)
    DIST_STATE,
    PICK_FORGET,
    PLOTS,
    Watch,
    _click_dot,
    _wait,
    demo_server,
    page,
)

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("LAB_TEST_ARTIFACTS") or ROOT / "test-artifacts" / "screenshots")
LONG = 180_000  # ms: a background job on a busy CPU

# the gap chart (Compare, "Over / under-unlearning"): the dot farthest (on screen) from all others
PICK_GAP = f"""() => {{
  const gd = {PLOTS}.filter(g => g.offsetParent !== null)
    .find(g => g._fullData && g._fullData.some(t => t.customdata && t.customdata.length
                                               && t.customdata[0].length === 2));
  if (!gd || !gd._fullLayout) return null;
  gd.scrollIntoView({{block: 'center'}});
  const box = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const all = [];
  gd._fullData.forEach(t => {{ if (t.customdata && t.customdata.length && t.customdata[0].length === 2)
    for (let i = 0; i < t.x.length; i++) all.push({{c: t.customdata[i],
      p: [box.left + xa._offset + xa.l2p(t.x[i]), box.top + ya._offset + ya.l2p(t.y[i])]}}); }});
  let best = null;
  for (const a of all) {{
    let d = Infinity;
    for (const b of all) if (b !== a) d = Math.min(d, Math.hypot(a.p[0] - b.p[0], a.p[1] - b.p[1]));
    if (!best || d > best.d) best = {{d, x: a.p[0], y: a.p[1], run: Number(a.c[0]), point: Number(a.c[1])}};
  }}
  return best;
}}"""
# the Compare frontier (KLoM vs cost): the first run's dot
PICK_RUN = f"""() => {{
  const gd = {PLOTS}.find(g => g._fullData && g._fullData.some(t => t.customdata
                                 && t.customdata.length && t.customdata[0].length === 1
                                 && t.mode === 'markers'));
  if (!gd || !gd._fullLayout) return null;
  gd.scrollIntoView({{block: 'center'}});
  const box = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const t = gd._fullData.find(t => t.customdata && t.customdata.length && t.mode === 'markers');
  return {{x: box.left + xa._offset + xa.l2p(t.x[0]), y: box.top + ya._offset + ya.l2p(t.y[0]),
           run: Number(t.customdata[0][0])}};
}}"""


class Walk:
    """The page, the watcher and the screenshots of one walk."""

    def __init__(self, pg, url: str):
        self.page, self.url, self.watch = pg, url, Watch(pg, url)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.step = 0

    def text(self, text: str, timeout: float = 60_000) -> None:
        self.page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)

    def nav(self, link: str, marker: str) -> None:
        """Click the sidebar's ``link`` once the current run has finished, and wait for
        ``marker``. (Clicked while a finished job's panel reran its page, a link was once lost:
        the page stayed where it was. A click that leaves the page where it was, once the page
        is idle again, is clicked once more; any other miss fails.)"""
        for attempt in range(2):
            self.idle()
            before = self.page.url
            self.page.get_by_role("link", name=link, exact=True).first.click()
            try:
                self.text(marker)
                return
            except Exception:  # noqa: BLE001
                self.idle()
                if attempt or self.page.url != before:
                    raise

    def shot(self, name: str) -> None:
        """Check the page (no exception box, nothing failed so far), then screenshot it."""
        self.idle()  # not mid-rerun, with the last run's elements greyed out
        assert self.page.locator("[data-testid='stException']").count() == 0, self.page.locator(
            "[data-testid='stException']"
        ).first.inner_text()
        self.watch.check()
        assert self.page.get_by_text(" · failed").count() == 0, "a background job failed"
        self.step += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.step:02d}-{name}.png"), full_page=True)

    def idle(self) -> None:
        """Wait until Streamlit has finished the current script run (its status widget gone)."""
        self.page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=LONG)

    def choose(self, label: str, option: str) -> None:
        """Pick ``option`` in the selectbox labelled ``label``."""
        box = self.page.locator("[data-testid='stSelectbox']").filter(
            has=self.page.get_by_text(label, exact=True)
        )
        field = box.first.locator("input").first
        field.click()
        field.press_sequentially(option)
        self.page.get_by_role("option").filter(has_text=option).first.wait_for(timeout=30_000)
        field.press("Enter")
        self.page.wait_for_function(
            "([el, o]) => el.innerText.includes(o)"
            " || Array.from(el.querySelectorAll('input')).some(i => i.value.includes(o))",
            arg=[box.first.element_handle(), option],
            timeout=60_000,
        )
        self.idle()

    def settled(self, js: str, timeout: float = 60) -> dict:
        """``js``'s target once the page has stopped moving: two reads 400 ms apart agree."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            t = self.page.evaluate(js)
            if t and last and all(t[k] == last[k] for k in t if k not in "xyd") \
                    and abs(t["x"] - last["x"]) < 0.5 and abs(t["y"] - last["y"]) < 0.5:  # fmt: skip
                return t
            last = t
            self.page.wait_for_timeout(400)
        pytest.fail(f"the chart never settled; last target {last}")


@pytest.mark.timeout(1200)  # ~3 min on a quiet 2-core machine; room for one 4x slower
def test_walk_every_page(demo_server, page, db_path):  # noqa: F811
    w = Walk(page, demo_server)
    try:
        _walk(w, page, demo_server, db_path)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / f"{w.step + 1:02d}-FAILED.png"), full_page=True)
        raise


def _walk(w: Walk, page, url: str, db_path) -> None:  # noqa: F811
    """The steps of the walk, in order; ``w`` checks and screenshots each."""
    page.goto(url, wait_until="domcontentloaded")
    w.text("Machine unlearning")
    w.text("Open the KLoM explorer")
    w.shot("home")
    # the linear study, run from its page
    w.nav("Linear model", "why matching converges")
    page.get_by_role("button", name="Run").click()
    w.text("stored", LONG)
    page.locator(".js-plotly-plot text", has_text="diverged at step").first.wait_for(timeout=60_000)
    runs = list_linear_runs(Store(db_path))
    assert len(runs) == 1 and runs["steps"][0] == 1000
    w.shot("linear")
    # the demo, opened from Home
    w.nav("Home", "Machine unlearning")
    page.get_by_role("link", name="Open the KLoM explorer").first.click()
    w.text("Summary per split")
    page.locator(".js-plotly-plot >> visible=true").nth(1).wait_for(timeout=60_000)
    _klom_views_and_exact_drill_down(w)
    w.shot("klom-demo")
    w.nav("Models", "Build original models")
    w.shot("models")
    # a forget set, hand-picked, previewed and saved
    w.nav("Forget sets", "Saved forget sets")
    page.get_by_text("Hand-picked", exact=True).click()
    box = page.get_by_label("train indices, comma-separated")
    box.fill("3, 4, 5, 6")
    box.press("Enter")
    page.get_by_label("name (optional)").fill("walk")
    page.get_by_label("name (optional)").press("Enter")
    w.idle()
    page.get_by_role("button", name="Preview").click()
    w.text("Preview: walk")
    w.idle()
    page.get_by_role("button", name="Save forget set").click()
    w.text("Saved as forget set")
    w.shot("forget-sets")
    # a sweep of two methods on the demo's first forget set, two budgets each
    w.nav("Unlearn", "Pick a forget set and a method")
    w.choose("forget set", "random-10")
    # noisy descent (issue 24): its form too is clicked in a browser (the paper path runs GD)
    for n, method in enumerate(("noisy_descent", "oracle_matching")):
        w.choose("method", method)
        budgets = page.get_by_label("budgets (shares of retraining, comma-separated)")
        budgets.fill("0.05,0.1")
        budgets.press("Enter")
        page.get_by_role("button", name="Run in the background").click()
        page.get_by_role("link", name="Compare the runs", exact=True).nth(n).wait_for(timeout=LONG)
    w.shot("unlearn")
    # Compare: a click on a run's dot picks it; a dot of the gap view opens that point
    w.nav("Compare", "Lines join each")
    w.choose("forget set", "random-10")
    target = w.settled(PICK_RUN)
    page.mouse.click(target["x"], target["y"])
    page.get_by_role("link", name=f"Run {target['run']} in the KLoM explorer").wait_for(
        timeout=60_000
    )
    page.get_by_role("tab", name="Over / under-unlearning").click()
    dot = w.settled(PICK_GAP)
    page.mouse.click(dot["x"], dot["y"])
    link = page.get_by_role("link", name=f"Point {dot['point']} of run {dot['run']} in the")
    link.wait_for(timeout=60_000)
    w.shot("compare")
    link.click()
    w.text(f"point {dot['point']} · split forget")
    assert f"point={dot['point']}" in page.url and f"run={dot['run']}" in page.url
    w.shot("klom-drill-down")
    # Attribution: fit a datamodel from the page, then open it
    w.nav("Attribution", "Attribution")
    m = page.get_by_label("subset models M")
    m.fill("20")
    m.press("Enter")
    w.idle()
    page.get_by_text("margin (this page)", exact=True).click()  # one job: the page reads it
    w.idle()
    page.get_by_role("button", name="Fit a datamodel").click()
    page.get_by_role("link", name="on Attribution").first.wait_for(timeout=LONG)
    page.get_by_role("link", name="on Attribution").first.click()
    w.text("Hard to unlearn?")
    page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=60_000)
    w.shot("attribution")


def _klom_views_and_exact_drill_down(w: Walk) -> None:
    """On the demo's KLoM explorer: the log scale and the histogram draw what they claim, and a
    click on a forget point's dot opens exactly that point."""
    pg = w.page
    _wait(pg, DIST_STATE, lambda s: s["type"] == "linear")
    # log scale: plotly takes log10 of a log axis's range, so it must end near log10(12)
    pg.get_by_text("log scale", exact=True).click()
    state = _wait(pg, DIST_STATE, lambda s: s["type"] == "log")
    assert -3.5 < state["range"][0] < state["range"][1] < 2, state["range"]
    for line, label in zip(state["lines"], state["labels"], strict=True):  # labels on their lines
        assert abs(label - math.log10(line)) < 1e-6, (state["lines"], state["labels"])
    # histogram: the method and the floor are counted on the same bins
    pg.get_by_text("histogram", exact=True).click()
    state = _wait(pg, DIST_STATE, lambda s: s["kinds"][:2] == ["bar", "bar"])
    assert state["xs"][0] == state["xs"][1] and len(state["xs"][0]) == 40
    pg.get_by_text("log scale", exact=True).click()
    _wait(pg, DIST_STATE, lambda s: s["type"] == "linear")
    w.idle()
    # a click on a forget point opens exactly that point
    box = pg.get_by_label("point index", exact=False)
    target = _click_dot(pg, box, lambda: pg.evaluate(PICK_FORGET))
    assert target["split"] == "forget"
    w.text(f"point {target['point']} · split forget")
    assert int(box.input_value()) == target["point"]
