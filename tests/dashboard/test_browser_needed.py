"""The KLoM explorer's "How many models a verdict needs" in a real headless Chromium: the button
computes the curve and the chart appears (fixtures from ``tests.dashboard.test_browser``)."""

from __future__ import annotations

import pytest

from tests.dashboard.test_browser import PLOTS, _wait, lab_server, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

# the curve's chart: its panels' titles and the names of its traces, once drawn
NEEDED = f"""() => {{
  const gd = {PLOTS}.find(g => g.data && g.data.some(t => t.name === 'noise floor P95'));
  if (!gd || !gd._fullLayout) return null;
  return {{names: gd._fullData.map(t => t.name),
           titles: (gd.layout.annotations || []).map(a => a.text),
           xs: gd._fullData.filter(t => t.mode === 'lines+markers').map(t => Array.from(t.x))}};
}}"""


def test_klom_explorer_draws_how_many_models_a_verdict_needs(lab_server, page, tmp_path):  # noqa: F811
    url, lab = lab_server
    page.goto(url + "/klom", wait_until="domcontentloaded")
    page.get_by_text("How many models a verdict needs").first.wait_for(timeout=60_000)
    assert page.evaluate(NEEDED) is None  # nothing computed before the button
    button = page.get_by_role("button", name="Compute the curve", exact=False)
    button.scroll_into_view_if_needed()
    button.click()
    state = _wait(page, NEEDED, lambda s: len(s["names"]) == 12, timeout=120)
    assert state["names"][:4] == ["noise floor P95 ± 2 sd", "noise floor P95",
                                  f"do_nothing P95 (run {lab['run_id']}) ± 2 sd",
                                  f"do_nothing P95 (run {lab['run_id']})"], state["names"]  # fmt: skip
    assert state["titles"][:3] == ["Forget", "Retain", "Val"], state["titles"]
    assert state["xs"] == [[5, 6]] * 6, state["xs"]  # the default grid of 6 stored models
    page.get_by_text("gap to the floor is resolved", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("How many models a verdict needs").first.scroll_into_view_if_needed()
    page.mouse.wheel(0, 150)
    page.wait_for_timeout(300)
    page.screenshot(path=str(tmp_path / "needed.png"))
