"""Issue 22, item 4: user-given strings (forget-set names, file names, messages holding them)
are shown as plain text wherever the dashboard renders Markdown."""

from __future__ import annotations

import re
import string

import pytest
from streamlit.testing.v1 import AppTest

from core.forget.sets import manual_forget_set
from core.forget.store import save_forget_set
from core.forget.uploads import upload_forget_set
from core.store.db import Store
from dashboard.components import WORD_JOINER, code, plain
from tests.conftest import ROOT

IMAGE = "![x](http://127.0.0.1:8999/t.png)"
SCRIPT = "[x](javascript:alert(1))"
HOSTILE = [IMAGE, SCRIPT, "a`b", "$x$ :red[y] <b>z</b> &amp; *e* _u_ ~s~ | #h \\ www.a.b c@d.e"]
PAGE = str(ROOT / "dashboard" / "views" / "forget_sets.py")


def shown(markdown: str) -> str:
    """What CommonMark shows for text with backslash escapes (an independent reading): a
    backslash before ASCII punctuation is dropped, the punctuation kept as a character."""
    punct = re.escape(string.punctuation)
    return re.sub(rf"\\([{punct}])", r"\1", markdown).replace(WORD_JOINER, "")


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_leaves_no_markup(text):
    out = plain(text)
    assert shown(out) == text  # shown as typed
    assert not re.search(r"(?<!\\)[\[\]`<>$*_~|#&]", out.replace("\\\\", ""))
    # nor does GFM find a bare link: its patterns, as remark-gfm's (mdast-util-gfm-autolink-
    # literal) read the text after its escapes are decoded
    text_node = re.sub(r"\\(.)", r"\1", out)
    assert not re.search(r"https?://|www\.|[-.\w+]@", text_node, re.IGNORECASE)
    assert plain("big.csv: 2.0 MB, /x/out (3 of 4); 'a' - \"b\"") == (
        "big.csv: 2.0 MB, /x/out (3 of 4); 'a' - \"b\""  # messages' usual punctuation stays
    )


def test_code_spans_hold_any_backticks():
    for text in ("a`b", "``", "x```y`", "plain"):
        out = code(text)
        fence = re.match("`+", out).group(0)
        assert out == f"{fence} {text} {fence}" and fence not in text  # the span ends at the end


def test_names_and_file_names_show_literally_on_the_forget_sets_page(db_path):
    store = Store(db_path)
    ids = [save_forget_set(store, manual_forget_set([i, i + 1], 1347, name), "digits")
           for i, name in enumerate(HOSTILE)]  # fmt: skip
    up = upload_forget_set(b"5\n6\n", "a`b ![y](http://127.0.0.1:8999/u.png).csv", 1347, "up")
    ids.append(save_forget_set(store, up, "digits"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    for fs_id, name in zip(ids, [*HOSTILE, "up"], strict=True):
        at.selectbox(key="fs_open").set_value(fs_id).run()
        assert not at.exception
        head = next(m.value for m in at.markdown if m.value.startswith("**"))
        assert head.startswith(f"**{plain(name)}** · ")
        assert shown(head.split("** · ", 1)[0][2:]) == name
    params = head.split("parameters ", 1)[1]
    assert params.startswith("`` ") and params.endswith(" ``") and "u.png" in params
    # the preview's heading and an error naming an uploaded file
    at.radio(key="fs_kind").set_value("manual").run()
    at.text_input(key="fs_name").set_value(IMAGE).run()
    at.button(key="fs_preview_btn").click().run()
    assert [h.value for h in at.subheader if h.value.startswith("Preview")] == [
        f"Preview: {plain(IMAGE)} — 3 points"
    ]
    at.radio(key="fs_kind").set_value("upload").run()
    at.file_uploader(key="fs_upload").set_value((f"{SCRIPT}.npy", b"nope", "x/y")).run()
    at.button(key="fs_preview_btn").click().run()
    assert len(at.error) == 1 and plain(SCRIPT) in at.error[0].value
    assert SCRIPT not in at.error[0].value
