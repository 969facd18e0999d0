"""The dashboard through Streamlit's AppTest: pages render and the Linear page runs the study."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.linear.runs import linear_curves, list_linear_runs
from core.store.db import Store
from tests.conftest import ROOT

APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture
def app(db_path) -> AppTest:
    return AppTest.from_file(APP, default_timeout=120)


def test_home_renders(app):
    app.run()
    assert not app.exception
    assert "Unlearning Lab" in app.title[0].value
    assert any("oracle" in m.value for m in app.markdown)


def test_linear_page_runs_the_study_into_duckdb(app, db_path):
    app.switch_page("views/linear.py").run()
    assert not app.exception
    assert any("No runs yet" in i.value for i in app.info)
    app.number_input(key="steps").set_value(300)
    app.button[0].click().run()
    assert not app.exception and not app.error
    assert "stored" in app.success[0].value
    runs = list_linear_runs(Store(db_path))
    assert len(runs) == 1 and runs["steps"][0] == 300
    assert len(linear_curves(Store(db_path), int(runs["id"][0]))) > 4 * 100
    assert len(app.dataframe) == 1 and app.dataframe[0].value.shape[0] == 4
    assert app.selectbox(key="run_pick").value == int(runs["id"][0])


def test_linear_page_rejects_bad_input(app, db_path):
    app.switch_page("views/linear.py").run()
    app.number_input(key="forget").set_value(100)
    app.button[0].click().run()
    assert "smaller than n" in app.error[0].value
    assert list_linear_runs(Store(db_path)).empty


def test_corrupt_database_message(app, db_path):
    db_path.write_text("not a database")
    app.switch_page("views/linear.py").run()
    assert not app.exception
    assert "not a DuckDB database" in app.error[0].value
    assert db_path.read_text() == "not a database"
