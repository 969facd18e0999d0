"""AppTest of the Models, Forget sets and KLoM explorer pages on a tiny lab."""

from __future__ import annotations

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.run import evaluate, evaluation
from core.forget.store import list_forget_sets
from core.jobs import queue as jobs
from core.store.db import Store
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
    from tests.jobs.test_jobs import wait_for

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
    gallery = [m.value for m in at.markdown if "data:image/png;base64" in m.value]
    assert gallery and gallery[0].count("<img") == 12  # the gallery: one inline image per point
    assert not at.get("image")  # no media-endpoint images (a rerun dropped them: 404s)
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


def test_tables_and_links_are_readable_in_full(lab):
    """Review: cells and links were cut off. The audits' long figures wrap (rows over 64 px,
    narrow name and number columns) and lose the audit's name they repeated; the Attribution
    link left the drill-down's narrow image column; the Models and Forget sets tables keep
    their short columns narrow and their dates short."""
    at = page("klom")
    audits = at.dataframe[1]
    cfg = json.loads(audits.proto.columns)
    assert cfg["figure"]["width"] == "large"
    assert {cfg[k]["width"] for k in ("audit", "method", "floor")} == {"small"}
    assert audits.proto.row_height > 64  # Streamlit wraps text only in rows taller than 4rem
    assert not audits.value["figure"].str.startswith(("U-LiRA", "population MIA")).any()
    point = at.number_input(key="klom_point").value
    labels = [link.proto.label for link in at.get("page_link")]
    assert labels == [f"Point {point}'s training influencers (Attribution)"]
    assert not any(col.get("page_link") for col in at.columns)
    models = json.loads(page("models").dataframe[0].proto.columns)
    assert models["id"]["pinned"] and models["kind"]["width"] == "small"
    assert (
        models["mean_val_acc"]["label"] == "val acc. %"
        and "argmax" in models["mean_val_acc"]["help"]
    )
    assert models["created_at"]["type_config"]["format"] == "YYYY-MM-DD HH:mm"
    sets = json.loads(page("forget_sets").dataframe[0].proto.columns)
    assert sets["name"]["width"] == "medium" and sets["id"]["width"] == "small"
    assert sets["created_at"]["type_config"]["format"] == "YYYY-MM-DD HH:mm"


def test_klom_explorer_explains_its_numbers(lab):
    at = page("klom")
    label = at.selectbox(key="klom_eval").format_func(lab["run_id"])
    assert label.startswith("r20 · do_nothing · run ") and str(lab["run_id"]) in label
    table = at.dataframe[0].value
    assert table["split"].tolist() == ["forget", "retain", "val"]
    assert table["points"].tolist() == [20, 1347 - 20, 450]
    ev = evaluation(lab["store"], lab["run_id"])["summaries"].set_index(["split", "metric"])
    forget = table.set_index("split").loc["forget"]
    assert forget["KLoM P95"] == pytest.approx(ev.loc[("forget", "klom"), "p95"])
    assert forget["P95 ÷ floor P95"] == pytest.approx(
        ev.loc[("forget", "klom"), "p95"] / ev.loc[("forget", "floor"), "p95"]
    )
    assert forget["argmax acc. method %"] == pytest.approx(
        100 * ev.loc[("forget", "klom"), "accuracy"]
    )
    captions = "\n".join(c.value for c in at.caption)
    assert "**forget** has only 20 points" in captions and "two largest values" in captions
    assert "Compute cost 0.00" in captions and "costs 0" in captions
    how = "\n".join(m.value for m in at.expander[0].markdown)
    for heading in ("KLoM", "Noise floor", "Saturation", "P95, P99 and small splits", "Gap"):
        assert f"#### {heading}" in how


def test_klom_explorer_opens_the_run_of_a_link(lab):
    second = evaluate(lab["store"], lab["forget_set"], "do_nothing", recompute=True)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"] = str(lab["run_id"])  # the older one: not the default (newest)
    at.switch_page("views/klom.py").run()
    assert not at.exception
    assert at.selectbox(key="klom_eval").value == lab["run_id"] != second
    at.selectbox(key="klom_eval").set_value(second).run()
    assert at.query_params["run"] == str(second)


def test_klom_explorer_link_opens_run_and_point(lab):
    """Compare's over/under-unlearning view links a dot to ?run=R&point=P: the drill-down opens
    exactly there."""
    point = int(lab["forget"][3])
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"], at.query_params["point"] = str(lab["run_id"]), str(point)
    at.switch_page("views/klom.py").run()
    assert not at.exception
    assert at.number_input(key="klom_point").value == point
    assert any(f"**point {point}**" in m.value for m in at.markdown)


def test_klom_explorer_click_opens_the_clicked_point(lab):
    """A selection event carries the point's own index: the drill-down shows exactly it."""
    at = page("klom")
    at.number_input(key="klom_point").set_value(0).run()  # somewhere else first
    point = int(lab["forget"][5])
    assert point != 0
    at.session_state["klom_scatter"] = {
        "selection": {"points": [{"customdata": [point, "forget"], "x": 0.0, "y": 0.0}]}
    }
    at.run()
    assert not at.exception
    assert at.number_input(key="klom_point").value == point
    text = "\n".join(m.value for m in at.markdown)
    assert f"**point {point}** · split **forget**" in text


def test_jobs_panel_links_what_a_job_made(lab):
    job_id = jobs.submit(lab["store"], "evaluate", {"forget_set_id": lab["forget_set"],
                                                    "method": "do_nothing"})  # fmt: skip
    assert jobs.run_job(lab["store"], job_id) == "done"
    run_id = jobs.get_job(lab["store"], job_id)["result"]["run_id"]
    at = page("klom")
    captions = [c.value for c in at.caption if f"job {job_id}" in c.value]
    assert captions and "done — done" not in captions[0] and "took" in captions[0]
    links = [p.proto for p in at.page_link if p.proto.page == "klom"]
    assert any(link.query_string == f"run={run_id}" for link in links)


def test_forget_sets_page_shows_oracles_and_evaluations(lab):
    at = page("forget_sets")
    table = at.dataframe[0].value.set_index("id")
    row = table.loc[lab["forget_set"]]
    assert row["oracles"] == "built" and row["evaluations"] == 1
    assert row["do_nothing_run"] == str(lab["run_id"])
    assert not [b for b in at.button if b.key == "fs_oracles"]  # not offered again
    assert "Oracles of these originals built" in at.success[0].value
    assert any(p.proto.query_string == f"run={lab['run_id']}" for p in at.page_link)


def test_forget_sets_page_picks_the_originals_and_pairs_their_recipe(lab):
    """Review item: an evaluation names its originals — a picker, default the originals the
    oracles were built against; originals of another recipe need their own oracles."""
    from core.zoo.build import build_model_set, create_model_set
    from tests.lab_fixtures import TINY

    other = create_model_set(lab["store"], "original", TINY.replace(epochs=1), 2)
    build_model_set(lab["store"], other)
    at = page("forget_sets")
    key = f"fs_originals_{lab['forget_set']}"
    assert at.selectbox(key=key).value == lab["original"]  # not the newest
    at.selectbox(key=key).set_value(other).run()
    assert not at.exception
    build = [b for b in at.button if b.key == "fs_oracles"]
    assert build and not build[0].disabled
    assert [b for b in at.button if b.key == "fs_eval"][0].disabled  # no oracles of this recipe
    build[0].click().run()
    job = jobs.list_jobs(lab["store"]).iloc[0]
    params = jobs.get_job(lab["store"], int(job["id"]))["params"]
    assert params == {"forget_set_id": lab["forget_set"], "original_set_id": other}
    jobs.cancel(lab["store"], int(job["id"]))


def test_models_page_deletes_a_set_only_with_its_evaluations_when_asked(lab):
    from core.zoo.build import list_model_sets

    at = page("models")
    at.selectbox(key="ms_delete_id").set_value(lab["oracle"])
    at.button(key="ms_delete").click().run()
    assert at.error and "used by 1 evaluation" in at.error[0].value
    assert lab["oracle"] in list_model_sets(lab["store"])["id"].tolist()
    at.checkbox(key="ms_delete_cascade").check()
    at.button(key="ms_delete").click().run()
    assert not at.exception and "Deleted model set" in at.success[0].value
    assert lab["oracle"] not in list_model_sets(lab["store"])["id"].tolist()
    assert not lab["store"].file_path(f"model_sets/{lab['oracle']}").exists()


def test_home_points_to_the_klom_explorer_once_there_are_evaluations(lab):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    links = [(p.proto.page, p.proto.query_string) for p in at.page_link]
    assert ("klom", f"run={lab['run_id']}") in links  # the newest evaluation, and the tour's


def test_home_demo_button_starts_a_job(lab):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.button(key="home_demo").click().run()
    assert not at.exception
    df = jobs.list_jobs(lab["store"])
    assert df["kind"].tolist()[0] == "demo"
    jobs.cancel(lab["store"], int(df["id"][0]))
