"""Issue 22, item 4 in a real browser: a forget-set name written as Markdown (a remote image, a
javascript: link) shows as the text it is, and the page fetches nothing it names."""

from __future__ import annotations

import pytest

from core.forget.sets import manual_forget_set
from core.forget.store import save_forget_set
from core.store.db import Store
from dashboard.components import WORD_JOINER
from tests.dashboard.test_browser import _serve, page  # noqa: F401  (page: a fixture)
from tests.dashboard.test_probe_markdown import IMAGE, SCRIPT

pytestmark = pytest.mark.browser
NAME = f"{IMAGE} {SCRIPT} a`b"


@pytest.fixture
def names_server(db_path, tmp_path):
    save_forget_set(Store(db_path), manual_forget_set([1, 2], 1347, NAME), "digits")
    yield from _serve(db_path, tmp_path)


def test_a_markdown_name_is_plain_text_in_the_browser(names_server, page):  # noqa: F811
    url = names_server
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url + "/forget-sets", wait_until="domcontentloaded")
    shown = page.locator("[data-testid='stMarkdown']", has_text="alert(1)")
    shown.first.wait_for(timeout=60_000)  # the set's heading line
    # the name as typed (U+2060, invisible, keeps GFM from finding a bare link in it)
    assert NAME in shown.first.inner_text().replace(WORD_JOINER, "")
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=60_000)
    page.wait_for_timeout(1000)  # time for an image to be requested, were there one
    assert not [r for r in requests if ":8999" in r], requests
    assert page.locator("img[src*='8999']").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert shown.first.locator("a, img").count() == 0, shown.first.inner_html()  # no link, no image
    assert not errors, errors
