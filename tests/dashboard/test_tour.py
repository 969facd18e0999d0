"""Home's guided tour (issue 21): six steps, each a click into the right page with the right
selection, marked done from what is stored; and Home lists every page."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from core.evaluation.run import evaluate
from core.jobs import queue as jobs
from dashboard.tour import TOUR_METHODS, steps
from tests.conftest import ROOT
from tests.dashboard.test_dashboard_klom import lab, lab_template  # noqa: F401  (fixtures)

APP = str(ROOT / "dashboard" / "app.py")
EVAL_COLS = ["run_id", "forget_set_id", "forget_set", "method"]


def _links(at: AppTest) -> list[tuple[str, str, str]]:
    return [(p.proto.page, p.proto.label, p.proto.query_string) for p in at.page_link]


def test_steps_follow_the_demo_set_and_mark_what_is_done():
    evals = pd.DataFrame(
        [[9, 2, "class3-half", "do_nothing"], [5, 1, "random-10", "oracle_matching"],
         [4, 1, "random-10", "do_nothing"]], columns=EVAL_COLS)  # fmt: skip
    tour = steps(evals, pd.DataFrame(), 0)
    assert [s.done for s in tour] == [True, True, False, False, False, False]
    assert tour[1].links == [("views/klom.py", "KLoM explorer: do-nothing", {"run": "4"})]
    unlearn = tour[2].links
    assert [q for _, _, q in unlearn] == [{"forget_set": "1", "method": m} for m, _ in TOUR_METHODS]
    assert unlearn[1][1].endswith("✓") and not unlearn[0][1].endswith("✓")  # OM ran already
    assert tour[3].links == [("views/compare.py", "Compare the runs", {"forget_set": "1"})]
    empty = steps(pd.DataFrame(columns=EVAL_COLS), pd.DataFrame(), 1)
    assert [s.done for s in empty] == [False, False, False, False, False, True]
    assert [len(s.links) for s in empty] == [0, 0, 0, 0, 1, 1]


def test_home_on_an_empty_lab_offers_the_demo_and_names_every_page(db_path):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    pages = " ".join(m.value for m in at.markdown)
    for name in ("Models", "Forget sets", "KLoM explorer", "Unlearn", "Compare", "Attribution",
                 "Linear model"):  # fmt: skip
        assert f"**{name}**" in pages, name  # Unlearn and Compare were missing
    assert at.button(key="home_demo").label == "Run the quick demo"
    at.number_input(key="home_models").set_value(4)
    at.number_input(key="home_epochs").set_value(2)
    at.button(key="home_demo").click().run()
    assert not at.exception
    from core.store.db import Store

    store = Store(db_path)
    job = jobs.get_job(store, int(jobs.list_jobs(store)["id"][0]))
    assert job["kind"] == "demo" and job["params"] == {"models": 4, "epochs": 2}
    jobs.cancel(store, job["id"])


def test_the_tour_links_open_unlearn_with_the_set_and_method(lab):  # noqa: F811
    store = lab["store"]
    evaluate(store, lab["forget_set"], "gradient_descent", budget=0.1)
    at = AppTest.from_file(APP, default_timeout=120).run()
    links = _links(at)
    fs = lab["forget_set"]
    assert ("unlearn", "Unlearn: gradient descent ✓", f"forget_set={fs}&method=gradient_descent") \
        in links  # fmt: skip
    assert ("unlearn", "Unlearn: DMM", f"forget_set={fs}&method=dm_matching") in links
    # the link's selection is applied on the Unlearn page
    at.switch_page("views/unlearn.py")
    at.query_params["forget_set"] = str(fs)
    at.query_params["method"] = "dm_matching"
    at.run()
    assert not at.exception
    assert at.selectbox(key="ul_fs").value == fs
    assert at.selectbox(key="ul_method").value == "dm_matching"
