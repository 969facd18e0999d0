"""The Compare page's collateral-forgetting chart in a real headless Chromium: a click on a bar
lists that decile's points, and the link below opens one of them in the KLoM explorer."""

from __future__ import annotations

import re

import pytest

from tests.dashboard.test_browser import PLOTS, Watch, _serve, _wait, page  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def coll_server(db_path, tmp_path):
    """A server over a tiny lab (4 models a side) with a do-nothing and a gradient-descent run."""
    from core.evaluation.run import evaluate
    from tests.lab_fixtures import tiny_lab

    lab = tiny_lab(db_path, n_models=4)
    lab["runs"] = [evaluate(lab["store"], lab["forget_set"], "do_nothing"),
                   evaluate(lab["store"], lab["forget_set"], "gradient_descent", budget=0.05)]  # fmt: skip
    for url in _serve(db_path, tmp_path):
        yield url, lab


# the collateral chart's tallest bar of run `run`: its centre on screen and its [run, decile]
PICK_BAR = f"""(run) => {{
  const gd = {PLOTS}.find(g => g.layout && g.layout.xaxis && g.layout.xaxis.title &&
    String(g.layout.xaxis.title.text).includes('proximity to the forget set'));
  if (!gd || !gd._fullLayout || gd.offsetParent === null) return null;
  gd.scrollIntoView({{block: 'center'}});
  const box = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  let best = null;
  gd._fullData.forEach(t => {{
    if (t.type !== 'bar') return;
    for (let i = 0; i < t.x.length; i++) {{
      if (Number(t.customdata[i][0]) !== run) continue;
      const h = ya.l2p(0) - ya.l2p(t.y[i]);
      if (!best || h > best.h) best = {{h, x: box.left + xa._offset + xa.l2p(t.x[i]),
        y: box.top + ya._offset + ya.l2p(t.y[i] / 2), decile: Number(t.customdata[i][1])}};
    }}
  }});
  return best;
}}"""


def test_a_click_on_a_collateral_bar_lists_its_points(coll_server, page, tmp_path):  # noqa: F811
    url, lab = coll_server
    watch = Watch(page, url)
    run = lab["runs"][1]  # gradient descent: the second run, not the one shown at first
    page.goto(url, wait_until="domcontentloaded")  # from Home (a deep URL probes /compare/_stcore)
    page.get_by_role("link", name="Compare").first.click(timeout=120_000)
    page.get_by_role("tab", name="Collateral forgetting").click(timeout=120_000)
    page.get_by_text("Decile 1 of retain · run", exact=False).first.wait_for(timeout=60_000)
    bar = _wait(page, f"() => ({PICK_BAR})({run})", lambda b: b["h"] > 8)
    page.wait_for_timeout(500)  # the tab's chart has settled where it was read
    bar = page.evaluate(f"() => ({PICK_BAR})({run})")
    page.mouse.click(bar["x"], bar["y"])
    head = f"Decile {bar['decile']} of retain · run {run}"
    page.get_by_text(head, exact=False).first.wait_for(timeout=60_000)
    link = page.get_by_role("link", name=f"of run {run} in the KLoM explorer")
    label = link.inner_text()  # "Point P of run R in the KLoM explorer": the decile's worst
    point = int(re.search(r"Point (\d+) of run", label).group(1))
    link.click()
    page.get_by_text(f"point {point} · split retain", exact=False).first.wait_for(timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(tmp_path / "collateral.png"), full_page=True)
    watch.check()
