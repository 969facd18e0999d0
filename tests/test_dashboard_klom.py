"""AppTest of the Models, Forget sets and KLoM explorer pages on a tiny lab."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from core.evaluation import evaluate, evaluation
from core.forget_store import list_forget_sets
from core.store import Store
from tests.conftest import ROOT
from tests.lab_fixtures import tiny_lab

APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory):
    lab = tiny_lab(tmp_path_factory.mktemp("tpl") / "lab.duckdb")
    lab["run_id"] = evaluate(lab["store"], lab["forget_set"], "do_nothing")
    return lab


@pytest.fixture
def lab(lab_template, tmp_path, monkeypatch):
    """A private copy of the template lab, exported as LAB_DB."""
    src = lab_template["store"]
    shutil.copy(src.path, tmp_path / "lab.duckdb")
    shutil.copytree(src.files_dir, tmp_path / "lab.files")
    monkeypatch.setenv("LAB_DB", str(tmp_path / "lab.duckdb"))
    return {**lab_template, "store": Store(tmp_path / "lab.duckdb")}


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def test_models_page_lists_sets_and_starts_a_build(lab):
    at = page("models")
    table = at.dataframe[0].value
    assert len(table) == 3 and set(table["kind"]) == {"original", "oracle"}
    at.number_input(key="ms_models").set_value(2)
    at.button[0].click().run()
    assert not at.exception and not at.error
    df = jobs.list_jobs(lab["store"])
    assert df["kind"].tolist()[0] == "build_models"
    job_id = int(df["id"][0])
    from tests.test_jobs import wait_for

    wait_for(lambda: jobs.get_job(lab["store"], job_id)["status"] in jobs.FINAL)
    assert jobs.get_job(lab["store"], job_id)["status"] == "done"


def test_forget_sets_page_preview_save_and_refuse(lab):
    at = page("forget_sets")
    at.radio(key="fs_kind").set_value("random").run()
    at.number_input(key="fs_k").set_value(12)
    at.text_input(key="fs_name").set_value("my-dozen")
    at.button(key="fs_preview_btn").click().run()
    assert not at.exception and not at.error
    assert "12 points" in at.subheader[0].value
    assert len(at.get("image")) >= 12  # the gallery: one image per point
    at.button(key="fs_save").click().run()
    assert "Saved as forget set" in at.success[0].value
    assert "my-dozen" in list_forget_sets(lab["store"])["name"].tolist()
    # bad input: a non-integer and an out-of-range index, and a whole-train-set request
    at.radio(key="fs_kind").set_value("manual").run()
    at.text_input(key="fs_manual").set_value("3, abc").run()
    at.button(key="fs_preview_btn").click().run()
    assert "not an integer" in at.error[0].value
    at.text_input(key="fs_manual").set_value("3, 99999").run()
    at.button(key="fs_preview_btn").click().run()
    assert "99999" in at.error[0].value
    at.radio(key="fs_kind").set_value("random").run()
    at.number_input(key="fs_k").set_value(1347)
    at.button(key="fs_preview_btn").click().run()
    assert at.error and "k must be at most" in at.error[0].value
    assert len(list_forget_sets(lab["store"])) == 2  # nothing else was saved


def test_klom_explorer_with_drill_down(lab):
    at = page("klom")
    assert at.selectbox(key="klom_eval").value == lab["run_id"]
    assert len(at.tabs) == 3
    at.radio(key="klom_mode").set_value("histogram").run()
    at.toggle(key="klom_log").set_value(True).run()
    assert not at.exception
    point = int(lab["forget"][3])
    at.number_input(key="klom_point").set_value(point).run()
    assert not at.exception
    pts = evaluation(lab["store"], lab["run_id"])["points"].set_index("point")
    text = "\n".join(m.value for m in at.markdown)
    assert f"**point {point}** · split **forget**" in text
    assert f"KLoM **{pts.loc[point, 'klom']:.3f}**" in text
    at.number_input(key="klom_point").set_value(5000).run()
    assert "does not exist" in at.error[0].value


def test_home_demo_button_starts_a_job(lab):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.button(key="home_demo").click().run()
    assert not at.exception
    df = jobs.list_jobs(lab["store"])
    assert df["kind"].tolist()[0] == "demo"
    jobs.cancel(lab["store"], int(df["id"][0]))
