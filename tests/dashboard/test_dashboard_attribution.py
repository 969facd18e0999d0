"""AppTest of the Attribution page on a tiny lab with a margin datamodel (20 subset models)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.attribution.datamodels import delete_datamodel, get_datamodel, load_weights
from core.attribution.defaults import DEFAULT_MODELS
from core.evaluation.run import evaluate, evaluation
from core.jobs import queue as jobs
from core.store.db import Store
from tests.conftest import ROOT, page_infos
from tests.lab_fixtures import tiny_datamodel, tiny_lab

APP = str(ROOT / "dashboard" / "app.py")
PAGE = "views/attribution.py"


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory):
    lab = tiny_lab(tmp_path_factory.mktemp("attr") / "lab.duckdb", n_models=4)
    lab["run_id"] = evaluate(lab["store"], lab["forget_set"], "do_nothing")
    lab["dm"] = tiny_datamodel(lab["store"], lab["original"], "margin", 20)
    return lab


@pytest.fixture
def lab(lab_template, tmp_path, monkeypatch):
    """A private copy of the template lab, exported as LAB_DB."""
    src = lab_template["store"]
    shutil.copy(src.path, tmp_path / "lab.duckdb")
    shutil.copytree(src.files_dir, tmp_path / "lab.files")
    monkeypatch.setenv("LAB_DB", str(tmp_path / "lab.duckdb"))
    return {**lab_template, "store": Store(tmp_path / "lab.duckdb")}


def open_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = str(v)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def influencer_table(at):
    tables = [d.value for d in at.dataframe if "side" in d.value.columns]
    assert len(tables) == 1
    return tables[0]


def test_page_renders_with_a_datamodel(lab):
    at = open_page()
    assert not at.error
    dm = get_datamodel(lab["store"], lab["dm"])
    assert at.selectbox(key="attr_dm").value == lab["dm"]
    assert at.selectbox(key="attr_run").value == lab["run_id"]
    assert at.selectbox(key="attr_fs").value == lab["forget_set"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["LDS train"] == f"{dm.lds_train:.3f}"
    assert metrics["LDS val"] == f"{dm.lds_val:.3f}"
    # the default point: the forget point the run left hardest to tell from the oracles
    pts = evaluation(lab["store"], lab["run_id"])["points"]
    f = pts[pts["split"] == "forget"]
    worst = int(f.loc[f["klom"].idxmax(), "point"])
    assert at.number_input(key="attr_point").value == worst
    assert f"**point {worst}** · train" in text(at)
    # every section drew, the images inline (no media-endpoint files)
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert len(keys) >= 5 and not at.get("image")
    assert sum(m.value.count("<img") for m in at.markdown) >= 2 * 8 + 12 + 1
    how = "\n".join(m.value for m in at.expander[0].markdown)
    assert "#### Datamodels and the Attribution page" in how


def test_influencer_table_has_the_stored_weights(lab):
    at = open_page()
    point = int(lab["forget"][1])
    at.number_input(key="attr_point").set_value(point).run()
    at.slider(key="attr_k").set_value(5).run()
    assert not at.exception
    row = load_weights(lab["store"], lab["dm"])[0][point].astype(np.float64)
    pos = [j for j in np.argsort(row)[::-1][:5] if row[j] > 0]
    neg = [j for j in np.argsort(row)[:5] if row[j] < 0]
    table = influencer_table(at)
    got_pos, got_neg = table[table["side"] == "positive"], table[table["side"] == "negative"]
    assert got_pos["source"].tolist() == pos and got_neg["source"].tolist() == neg
    np.testing.assert_allclose(got_pos["weight"], row[pos], rtol=1e-6)
    np.testing.assert_allclose(got_neg["weight"], row[neg], rtol=1e-6)
    assert len(table) == 10 and (got_pos["weight"] > 0).all() and (got_neg["weight"] < 0).all()
    grids = [m.value for m in at.markdown if f'href="?point={pos[0]}&amp;' in m.value
             or f'href="?point={pos[0]}&' in m.value]  # fmt: skip
    assert grids and f"#{pos[0]} · " in grids[0]  # the image grid links to the influencer


def test_a_link_opens_its_point_datamodel_and_run(lab):
    point = int(lab["forget"][2])
    at = open_page(point=point, datamodel=lab["dm"], run=lab["run_id"])
    assert at.number_input(key="attr_point").value == point
    assert f"**point {point}** · train" in text(at)
    assert at.query_params["point"] == str(point)
    # the next point typed moves the URL with it
    at.number_input(key="attr_point").set_value(1400).run()
    assert "**point 1400** · val" in text(at) and at.query_params["point"] == "1400"


def test_out_of_range_index_is_an_error(lab):
    at = open_page(point=5000)
    assert at.error and "Point 5000 does not exist" in at.error[0].value
    assert "0 to 1796" in at.error[0].value
    at.number_input(key="attr_point").set_value(-3).run()
    assert not at.exception and "Point -3 does not exist" in at.error[0].value
    at.number_input(key="attr_point").set_value(7).run()
    assert not at.error


def test_a_point_without_a_datamodel_target_is_refused():
    from dashboard.attribution_data import check_point

    assert check_point(5, 1797, 1797, 3) is None
    assert "does not exist" in check_point(1797, 1797, 1797, 3)
    assert "has no target in datamodel 3" in check_point(1500, 1797, 1347, 3)


def test_a_click_on_the_klom_scatter_opens_that_point(lab):
    at = open_page()
    at.number_input(key="attr_point").set_value(0).run()
    point = int(lab["forget"][4])
    at.session_state["attr_scatter"] = {
        "selection": {"points": [{"customdata": [point], "x": 0.0, "y": 0.0}]}
    }
    at.run()
    assert not at.exception
    assert at.number_input(key="attr_point").value == point
    assert f"**point {point}** · train" in text(at)
    # the scatter holds the run's forget points at their self-influence
    spec = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    scatter = [s for s in spec if s["layout"].get("yaxis", {}).get("title", {}).get("text")
               == "KLoM (nats)" and s["data"][0].get("name") == "forget points"]  # fmt: skip
    assert scatter and len(scatter[0]["data"]) == 2  # the dots, and the chosen point's ring
    notes = [a["text"] for a in scatter[0]["layout"]["annotations"]]
    assert any(n.startswith("noise floor P95") for n in notes)
    dots = scatter[0]["data"][0]
    # plain [index] lists: a NumPy column would travel as a typed array, and a real click would
    # hand the page a dict (tests/dashboard/test_browser.py clicks for real)
    assert dots["customdata"] == [[int(p)] for p in sorted(lab["forget"])]


def test_heatmap_of_the_forget_set_and_its_cell_click(lab):
    at = open_page()
    at.radio(key="attr_group").set_value("forget × forget").run()
    assert not at.exception
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text")
              for c in at.get("plotly_chart")]  # fmt: skip
    assert "W[forget, forget]" in titles
    src = int(lab["forget"][6])
    at.session_state["attr_heat"] = {
        "selection": {"points": [{"customdata": [src, int(lab["forget"][0])]}]}
    }
    at.run()
    assert at.number_input(key="attr_point").value == src


def datamodel_jobs(store) -> list[dict]:
    """Params of every ``datamodel`` job, oldest first; each cancelled (no training runs on)."""
    out = []
    for job_id in sorted(jobs.list_jobs(store).query("kind == 'datamodel'")["id"].astype(int)):
        out.append(jobs.get_job(store, job_id)["params"])
        jobs.cancel(store, job_id)
    return out


def test_no_datamodel_shows_the_command_and_queues_margin_and_logits(lab):
    delete_datamodel(lab["store"], lab["dm"])
    at = open_page()
    assert page_infos(at) and "python -m core datamodels fit" in page_infos(at)[0]
    assert f"--models {DEFAULT_MODELS} " in page_infos(at)[0]
    assert at.selectbox(key="attr_fit_orig").value == lab["original"]
    assert at.number_input(key="attr_fit_m").value == DEFAULT_MODELS  # the one default
    assert at.radio(key="attr_fit_out").value == "both" and not at.warning
    at.number_input(key="attr_fit_m").set_value(40)
    at.button(key="attr_fit").click().run()
    assert not at.exception and not at.error
    # one job per output, margin first (the page reads it); the second reuses the subset models
    base = {"dataset": "digits", "models": 40, "original_set_id": lab["original"]}
    assert datamodel_jobs(lab["store"]) == [{**base, "target": "margin"},
                                             {**base, "target": "logits"}]  # fmt: skip


def test_the_fit_form_warns_below_the_measured_m(lab):
    """The page's old default (200 subset models, LDS 0.19 held out) fitted without a word."""
    delete_datamodel(lab["store"], lab["dm"])
    at = open_page()
    at.number_input(key="attr_fit_m").set_value(200).run()
    assert len(at.warning) == 1
    msg = at.warning[0].value
    assert "200 subset models are few for a readable datamodel" in msg
    assert f"Use M ≥ {DEFAULT_MODELS:,}" in msg and "(measured)" in msg
    assert f"to train {DEFAULT_MODELS:,} subset models" in msg and "2 CPU cores" in msg
    at.radio(key="attr_fit_out").set_value("margin").run()
    at.button(key="attr_fit").click().run()
    base = {"dataset": "digits", "models": 200, "original_set_id": lab["original"]}
    assert datamodel_jobs(lab["store"]) == [{**base, "target": "margin"}]


def test_a_weak_datamodel_is_named_at_the_top_and_beside_every_attribution(lab):
    dm = get_datamodel(lab["store"], lab["dm"])
    assert dm.lds_val < 0.5  # 20 subset models of 2 epochs
    note = f"datamodel LDS {dm.lds_val:.2f} (weak)"
    at = open_page()
    assert not at.exception and len(at.warning) == 1
    warn = at.warning[0].value
    assert f"Datamodel {lab['dm']} is weak" in warn and f"is {dm.lds_val:.2f}, below 0.5" in warn
    assert f"at least {DEFAULT_MODELS:,} subset models" in warn
    heads = [h.value for h in at.subheader]
    for head in ("A point and its training influencers", "Weights over a group",
                 "Self-influence (memorization)", "Points the forget set moves most",
                 "Hard to unlearn? KLoM against self-influence"):  # fmt: skip
        assert f"{head} · {note}" in heads
    md = text(at)
    assert md.count("influencers** — training on them is predicted to") == 2
    assert md.count(f"margin · {note}") == 2  # both image grids' headings
    assert f"** · {note}" in md  # the influencer table's heading
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text")
              for c in at.get("plotly_chart")]  # fmt: skip
    assert any(t and t.startswith("Top influencers of point") and t.endswith(note) for t in titles)
    assert f"Points the forget set moves most · {note}" in titles
    assert at.expander[1].proto.expanded  # the fit form is open below


def test_a_readable_datamodel_has_no_warning(lab):
    with lab["store"].transaction() as con:
        con.execute("UPDATE datamodels SET lds_val = 0.71 WHERE id = ?", [lab["dm"]])
    at = open_page()
    assert not at.exception and not at.warning
    heads = [h.value for h in at.subheader]
    assert "A point and its training influencers · datamodel LDS 0.71" in heads
    assert "(weak)" not in "".join(heads) and not at.expander[1].proto.expanded


def test_a_logits_datamodel_alone_offers_the_margin_fit(lab):
    from core.attribution.datamodels import datamodel_status

    store = lab["store"]
    logits = tiny_datamodel(store, lab["original"], "logits", 20)
    dm, lg = get_datamodel(store, lab["dm"]), get_datamodel(store, logits)
    assert lg.subset_set_id == dm.subset_set_id  # the second fit reused the subset models
    assert len(store.query_df("SELECT id FROM model_sets WHERE kind = 'subset'")) == 1
    assert datamodel_status(store, lab["original"]) == (lab["dm"], dm.lds_val)
    assert datamodel_status(store, lab["original"], "logits") == (logits, lg.lds_val)
    delete_datamodel(store, lab["dm"])
    assert datamodel_status(store, lab["original"]) == (None, None)
    at = open_page()
    assert at.selectbox(key="attr_dm").value == logits
    assert not at.exception and f"Datamodel {logits} predicts logits" in page_infos(at)[0]
    at.button(key="attr_fit_margin").click().run()
    assert not at.exception and not at.error
    want = {"dataset": "digits", "models": 20, "target": "margin",
            "original_set_id": lab["original"], "fraction": 0.5}  # fmt: skip
    assert datamodel_jobs(store) == [want]


def test_empty_store_shows_the_command(db_path):
    at = open_page()
    assert page_infos(at) and "python -m core datamodels fit" in page_infos(at)[0]
    assert not at.error and not [b for b in at.button if b.key == "attr_fit"]
    assert any(p.proto.page == "models" for p in at.page_link)


def test_klom_explorer_links_to_the_point_on_attribution(lab):
    point = int(lab["forget"][3])
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"], at.query_params["point"] = str(lab["run_id"]), str(point)
    at.switch_page("views/klom.py").run()
    assert not at.exception
    links = [p.proto for p in at.page_link if p.proto.page == "attribution"]
    assert links and links[0].query_string == f"point={point}&run={lab['run_id']}"
