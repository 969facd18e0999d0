"""The Forget sets page refuses bad input with one message, and the app's error settings."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from core.forget.store import list_forget_sets
from core.forget.uploads import MAX_UPLOAD_BYTES
from core.store.db import Store
from tests.conftest import ROOT


@pytest.fixture
def page(db_path) -> AppTest:
    # the view itself: AppTest.switch_page finds pages by file stem, and this one's url_path
    # ("forget-sets") differs from it
    app = AppTest.from_file(
        str(ROOT / "dashboard" / "views" / "forget_sets.py"), default_timeout=120
    )
    app.run()
    assert not app.exception
    return app


@pytest.mark.parametrize(
    "indices,name,needle",
    [
        (f"1, {10**30}", "", f"index {10**30} is outside the training set: valid indices are 0 to"),
        ("9" * 5000, "", "far too large to be a train index"),
        (
            "3, x, 5000, 7, -2",
            "",
            "3 entries are not train indices (valid indices are 0 to "
            "1346): item 2: 'x' is not an integer; item 3: 5000 is out of range; item 5: -2 is "
            "out of range",
        ),  # fmt: skip
        ("1, 2", "bad\x1bname", "control or invisible characters"),
        ("1, 2", "n" * 81, "at most 80 characters"),
    ],
    ids=["huge-index", "5000-digits", "every-bad-entry", "control-char-name", "long-name"],
)
def test_manual_input_errors_are_one_message(page, db_path, indices, name, needle):
    page.radio(key="fs_kind").set_value("manual").run()
    page.text_input(key="fs_manual").set_value(indices)
    page.text_input(key="fs_name").set_value(name)
    page.button(key="fs_preview_btn").click().run()
    assert not page.exception
    assert len(page.error) == 1 and needle in page.error[0].value
    assert list_forget_sets(Store(db_path)).empty


def test_streamlit_settings_hide_tracebacks_and_bound_uploads():
    text = (ROOT / ".streamlit" / "config.toml").read_text()  # (no tomllib on Python 3.10)
    client = text.split("[client]", 1)[1].split("\n[", 1)[0]
    server = text.split("[server]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^showErrorDetails = "none"$', client, re.M)
    mb = int(re.search(r"^maxUploadSize = (\d+)$", server, re.M).group(1))
    assert 1 <= mb <= 5 and mb * 1_000_000 >= MAX_UPLOAD_BYTES


def test_the_name_box_is_emptied_after_a_save(page, db_path):
    """Review: after a save the name box still held the saved set's name, so the next set
    would be saved under it again. A successful save empties it."""
    page.radio(key="fs_kind").set_value("manual").run()
    page.text_input(key="fs_manual").set_value("3, 4, 5").run()
    page.text_input(key="fs_name").set_value("mine").run()
    page.button(key="fs_preview_btn").click().run()
    page.button(key="fs_save").click().run()
    assert not page.exception
    assert [s.value for s in page.success] == ["Saved as forget set 1."]
    assert page.text_input(key="fs_name").value == ""
    assert list_forget_sets(Store(db_path))["name"].tolist() == ["mine"]
    page.run()  # the next run (any click) keeps it empty, and the note is gone
    assert page.text_input(key="fs_name").value == "" and not page.success
