"""AppTest of the Unlearn and Compare pages on a tiny lab, and the compare table's numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.compare import pareto_front, runs_table
from core.evaluation.run import evaluate, evaluation
from core.jobs import queue as jobs
from tests.conftest import ROOT, page_infos
from tests.dashboard.test_dashboard_klom import lab, lab_template  # noqa: F401  (fixtures)

APP = str(ROOT / "dashboard" / "app.py")


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def test_pareto_front_by_hand():
    cost = np.array([0.0, 0.1, 0.1, 0.2, 1.0])
    score = np.array([5.0, 1.0, 2.0, 1.0, 0.5])
    # (0.1, 2) is beaten by (0.1, 1); (0.2, 1) by (0.1, 1)
    assert pareto_front(cost, score).tolist() == [True, True, False, False, True]


def test_compare_table_matches_the_stored_summaries(lab):  # noqa: F811
    store = lab["store"]
    gd = evaluate(store, lab["forget_set"], "gradient_descent", budget=0.1)
    df = runs_table(store, lab["forget_set"]).set_index("run_id")
    assert set(df.index) == {lab["run_id"], gd}
    s = evaluation(store, gd)["summaries"].set_index(["split", "metric"])
    row = df.loc[gd]
    assert row["budget"] == 0.1 and json.loads(row["params"])["lr"] == 0.01
    assert row["klom_p99_avg"] == pytest.approx(
        np.mean([s.loc[(k, "klom"), "p99"] for k in ("forget", "retain", "val")]))  # fmt: skip
    assert row["val_acc"] == s.loc[("val", "klom"), "accuracy"]
    assert row["device"] == "cpu" and row["wall_time_s"] > 0  # every run shows where it ran
    assert np.isnan(df.loc[lab["run_id"], "budget"])  # do-nothing has no budget


def test_compare_page_draws_runs_and_downloads(lab):  # noqa: F811
    from core.common.errors import Diverged

    store, fs = lab["store"], lab["forget_set"]
    ga = evaluate(store, fs, "gradient_ascent", budget=0.1)
    with pytest.raises(Diverged):
        evaluate(store, fs, "gradient_ascent", budget=0.5, lr=1.0, momentum=0.99)
    at = page("compare")
    assert not at.error
    table = at.dataframe[0].value
    assert set(table["method"]) == {"do_nothing", "gradient_ascent"}
    assert any("1 grid point(s) diverged" in w.value for w in at.warning)
    assert at.dataframe[1].value["method"].tolist() == ["gradient_ascent"]  # the diverged list
    # point by point: each method's best run is chosen; every table downloads (CSV + Parquet)
    assert sorted(at.multiselect[0].value) == sorted([lab["run_id"], ga])
    tables = [b for b in at.get("download_button") if not b.proto.label.startswith("card")]
    assert len(tables) == 6  # (and the selected run's card: tests/evaluation/test_cards.py)
    gaps = at.dataframe[2].value.set_index("run_id")
    pts = evaluation(store, ga)["points"]
    forget_gap = pts.loc[pts["split"] == "forget", "gap"].to_numpy()
    assert gaps.loc[ga, "mean_gap"] == pytest.approx(forget_gap.mean())
    assert gaps.loc[ga, "under_share"] == pytest.approx((forget_gap > 0).mean())
    assert gaps.loc[ga, "mean_gap"] < gaps.loc[lab["run_id"], "mean_gap"]  # ascent pushes down
    # a click on the frontier picks the run; a click on a forget point links its drill-down
    at.session_state["cmp_chart"] = {"selection": {"points": [{"customdata": [ga]}]}}
    at.run()
    assert at.selectbox(key="cmp_open").value == ga
    point = int(lab["forget"][2])
    at.session_state["cmp_gap"] = {"selection": {"points": [{"customdata": [ga, point]}]}}
    at.run()
    assert not at.exception
    links = [e for e in at.get("page_link") if f"Point {point} of run {ga}" in e.proto.label]
    assert len(links) == 1
    at.radio(key="cmp_score").set_value("forget_p95").run()
    at.multiselect[0].set_value([]).run()
    assert not at.exception and "Choose runs" in page_infos(at)[0]


def test_unlearn_page_starts_a_grid_job_and_refuses_bad_values(lab):  # noqa: F811
    at = page("unlearn")
    at.selectbox(key="ul_method").set_value("gradient_ascent").run()
    at.text_input(key="ul_budgets").set_value("0.05,0.1")
    at.selectbox(key="ul_sweep_gradient_ascent").set_value("lr").run()
    at.text_input(key="ul_gradient_ascent_lr").set_value("0.001,0.002")
    at.button(key="ul_go").click().run()
    assert not at.exception and not at.error
    job = jobs.list_jobs(lab["store"]).iloc[0]
    params = jobs.get_job(lab["store"], int(job["id"]))["params"]
    assert params["method"] == "gradient_ascent" and len(params["grid"]) == 4
    assert {(p["budget"], p["lr"]) for p in params["grid"]} == {
        (0.05, "0.001"), (0.05, "0.002"), (0.1, "0.001"), (0.1, "0.002")}  # fmt: skip
    from tests.jobs.test_jobs import wait_for

    wait_for(lambda: jobs.get_job(lab["store"], int(job["id"]))["status"] in jobs.FINAL)
    done = jobs.get_job(lab["store"], int(job["id"]))
    assert done["status"] == "done" and len(done["result"]["run_ids"]) == 4
    n = len(jobs.list_jobs(lab["store"]))
    at.run()  # settle: the panel reruns the page once the watched job has ended
    at.text_input(key="ul_gradient_ascent_lr").set_value("0.001,fast")
    at.button(key="ul_go").click().run()
    assert at.error and "lr must be a number" in at.error[0].value
    at.text_input(key="ul_gradient_ascent_lr").set_value("0.001")
    at.text_input(key="ul_budgets").set_value("0.1,x")
    at.button(key="ul_go").click().run()
    assert at.error and "budgets must be numbers" in at.error[0].value
    assert len(jobs.list_jobs(lab["store"])) == n  # no job for refused input


def test_compare_charts_send_plain_ids_to_the_browser(lab):  # noqa: F811
    """A NumPy customdata column reaches the browser as a typed array ({dtype, bdata}); a real
    click then hands the page a dict instead of the run or point id. The Attribution page's
    browser test caught it there; the Compare charts must send plain lists."""
    from core.evaluation.compare import point_values
    from dashboard.compare_charts import distribution_chart, frontier_chart, gap_chart, run_labels
    from dashboard.data_access import clicked_customdata

    store, fs = lab["store"], lab["forget_set"]
    ga = evaluate(store, fs, "gradient_ascent", budget=0.1)
    runs = runs_table(store, fs)
    pts = point_values(store, [lab["run_id"], ga])
    for fig in (frontier_chart(runs, "klom_p99_avg"), gap_chart(pts, run_labels(runs)),
                distribution_chart(pts, run_labels(runs))):  # fmt: skip
        for trace in json.loads(fig.to_json())["data"]:  # x and y may be typed arrays: drawn
            if "customdata" in trace:  # only the ids come back with a click
                assert isinstance(trace["customdata"], list), trace["customdata"]
                assert all(isinstance(v, int) for row in trace["customdata"] for v in row)
    assert (
        clicked_customdata({"selection": {"points": [{"customdata": {"bdata": "AA=="}}]}}) is None
    )


def test_every_method_keeps_one_colour_on_every_chart(lab):  # noqa: F811
    """The frontier's markers and Pareto line, the distribution boxes and the gap dots of a
    method share one colour, and the registry's methods all have different ones."""
    from core.evaluation.compare import point_values
    from core.unlearning import METHODS
    from dashboard.compare_charts import (
        distribution_chart,
        frontier_chart,
        gap_chart,
        method_color,
        run_labels,
    )

    assert len({method_color(m) for m in METHODS}) == len(METHODS)
    # and far apart: gradient descent and DMM were two blues a probe could not tell apart
    rgb = {m: [int(method_color(m)[i : i + 2], 16) for i in (1, 3, 5)] for m in METHODS}
    near = [
        (a, b)
        for a in METHODS
        for b in METHODS
        if a < b and sum((x - y) ** 2 for x, y in zip(rgb[a], rgb[b], strict=True)) < 60**2
    ]
    assert not near, f"methods drawn in near-equal colours: {near}"  # fmt: skip
    store, fs = lab["store"], lab["forget_set"]
    ga = [evaluate(store, fs, "gradient_ascent", budget=b) for b in (0.05, 0.1)]
    runs = runs_table(store, fs)
    pts = point_values(store, [lab["run_id"], ga[0]])
    want = method_color("gradient_ascent")
    front = frontier_chart(runs, "klom_p99_avg")
    assert {t.marker.color for t in front.data if t.name == "gradient_ascent"} == {want}
    lines = [t for t in front.data if t.mode == "lines" and t.legendgroup == "gradient_ascent"]
    assert all(t.line.color == want for t in lines)
    dist = distribution_chart(pts, run_labels(runs))
    assert [t.marker.color for t in dist.data if "gradient_ascent" in t.name] == [want]
    gap = gap_chart(pts, run_labels(runs))
    dots = [t for t in gap.data if t.type == "scatter"]
    assert dots[-1].marker.color == want and len(gap.layout.xaxis.ticktext) == 2
