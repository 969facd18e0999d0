"""The Compare page's KLoM-vs-compute chart: the noise floor and the do-nothing / retrain
references, the log x axis, what each method consumed beside what it spent, the oracle-access
labels, and axis titles that fit (issue 21, item 4). Numbers are checked against the stored
per-point values and model sets, computed here independently of ``core.evaluation.compare``."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from core.evaluation.compare import SPLITS, runs_table
from core.evaluation.run import evaluate, evaluation
from core.store.db import Store
from core.zoo.build import find_model_set
from core.zoo.model_sets import get_model_set
from tests.dashboard.test_dashboard_klom import lab_template, page  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def runs_lab(lab_template, tmp_path_factory):  # noqa: F811
    """A copy of the template lab with do-nothing (cost 0), gradient descent (cost 0.05), OM
    (spent 0.05, consumed its held-out oracles) and retrain (cost 1): built once."""
    d = tmp_path_factory.mktemp("cmp")
    shutil.copy(lab_template["store"].path, d / "lab.duckdb")
    shutil.copytree(lab_template["store"].files_dir, d / "lab.files")
    store, fs = Store(d / "lab.duckdb"), lab_template["forget_set"]
    ids = {"do_nothing": lab_template["run_id"]}
    ids["gradient_descent"] = evaluate(store, fs, "gradient_descent", budget=0.05)
    ids["oracle_matching"] = evaluate(store, fs, "oracle_matching", budget=0.05)
    ids["retrain"] = evaluate(store, fs, "retrain")
    return {**lab_template, "store": store, "ids": ids, "table": runs_table(store, fs)}


@pytest.fixture
def runs(runs_lab, monkeypatch):
    """The runs lab, exported as LAB_DB for the page."""
    monkeypatch.setenv("LAB_DB", str(runs_lab["store"].path))
    return runs_lab


def _floor(store, run_id: int, q: int, splits=SPLITS) -> float:
    """The run's noise floor: the q-th percentile of the stored per-point floor KLoM of each
    split, averaged over ``splits``."""
    pts = evaluation(store, run_id)["points"]
    return float(np.mean([np.percentile(pts.loc[pts["split"] == s, "floor"], q) for s in splits]))


def _cost(store, run_id: int) -> float:
    """The compute cost stored with the evaluation."""
    return float(evaluation(store, run_id)["evaluation"]["compute_cost"])


def _shapes(fig, dash: str) -> list:
    return [s for s in fig.layout.shapes if s.line.dash == dash]


def _run_traces(fig) -> list:
    """The traces a click picks a run from (the browser walk's PICK_RUN): markers whose
    customdata rows are one run id."""
    return [t for t in fig.data if t.customdata is not None and len(t.customdata[0]) == 1
            and t.mode == "markers"]  # fmt: skip


@pytest.mark.parametrize("log_x", [False, True])
def test_frontier_draws_the_noise_floor_and_the_references(runs, log_x):
    from dashboard.compare_charts import FLOOR_COLOR, frontier_chart

    store, t, ids = runs["store"], runs["table"], runs["ids"]
    for score, q, splits in (("klom_p99_avg", 99, SPLITS), ("klom_p95_avg", 95, SPLITS),
                             ("forget_p95", 95, ("forget",))):  # fmt: skip
        fig = frontier_chart(t, score, "spent", log_x)
        floor = _shapes(fig, "dashdot")  # one line: every run was scored against one floor group
        assert len(floor) == 1 and floor[0].line.color == FLOOR_COLOR
        want = _floor(store, ids["gradient_descent"], q, splits)
        assert floor[0].y0 == pytest.approx(want) == floor[0].y1
        assert _floor(store, ids["retrain"], q, splits) == pytest.approx(want)
        assert any("noise floor" in a.text for a in fig.layout.annotations)
        for ref, dash in (("do_nothing", "dot"), ("retrain", "dash")):
            (line,) = _shapes(fig, dash)
            assert line.y0 == pytest.approx(float(t.loc[t["method"] == ref, score].iloc[0]))
        assert all(s.xref.endswith("domain") for s in fig.layout.shapes)  # lines, no x data
        # no reference line is a clickable run marker: every run trace holds runs only
        picked = [r[0] for tr in _run_traces(fig) for r in tr.customdata]
        assert sorted(picked) == sorted(ids.values())


def test_frontier_floor_is_a_band_when_runs_have_different_floors(runs):
    from dashboard.compare_charts import frontier_chart

    t = runs["table"].copy()
    t.loc[t["method"] == "retrain", "klom_floor_p99_avg"] += 0.5
    fig = frontier_chart(t, "klom_p99_avg")
    (band,) = [s for s in fig.layout.shapes if s.type == "rect"]
    lo = _floor(runs["store"], runs["ids"]["do_nothing"], 99)
    assert (band.y0, band.y1) == (pytest.approx(lo), pytest.approx(lo + 0.5))


def test_log_axis_keeps_zero_cost_runs_at_a_ticked_zero(runs):
    from dashboard.compare_charts import frontier_chart

    t, ids = runs["table"], runs["ids"]
    lin = frontier_chart(t, "klom_p99_avg")
    assert lin.layout.xaxis.type in (None, "linear")
    fig = frontier_chart(t, "klom_p99_avg", log_x=True)
    assert fig.layout.xaxis.type == "log"
    costs = {m: _cost(runs["store"], r) for m, r in ids.items()}
    assert costs["do_nothing"] == 0 and costs["retrain"] == 1.0
    cheapest = min(c for c in costs.values() if c > 0)  # gradient descent / OM: ~0.05
    zero = 10.0 ** (math.floor(math.log10(cheapest)) - 1)  # a decade below 0.0x: 0.001
    at = {int(tr.customdata[i][0]): tr.x[i] for tr in _run_traces(fig) for i in range(len(tr.x))}
    assert at[ids["do_nothing"]] == pytest.approx(zero)
    assert at[ids["gradient_descent"]] == pytest.approx(costs["gradient_descent"])
    assert at[ids["retrain"]] == pytest.approx(1.0)
    assert fig.layout.xaxis.tickvals[0] == pytest.approx(zero)
    assert fig.layout.xaxis.ticktext[0] == "0"
    assert all(v > 0 for tr in fig.data for v in tr.x if v is not None)  # all drawable on a log
    assert len(_shapes(fig, "dashdot")) == len(_shapes(fig, "dash")) == 1  # floor, retrain


def test_consumed_cost_is_drawn_beside_the_spent_one(runs):
    from dashboard.compare_charts import frontier_chart, legend_name

    store, t, ids = runs["store"], runs["table"], runs["ids"]
    om = ids["oracle_matching"]
    # independently: OM read its held-out group, N models of the originals' recipe
    held = find_model_set(store, "oracle", "digits", forget_set_id=runs["forget_set"],
                          role="heldout")  # fmt: skip
    n_held, n = get_model_set(store, held).n_models, get_model_set(store, runs["original"]).n_models
    spent = _cost(store, om)
    total = {r: _cost(store, r) for r in ids.values()}
    total[om] += n_held / n
    row = t.set_index("run_id").loc[om]
    assert row["consumed_cost"] == pytest.approx(n_held / n) == pytest.approx(1.0)
    assert row["total_cost"] == pytest.approx(total[om])
    fig = frontier_chart(t, "klom_p99_avg", "total")
    at = {int(tr.customdata[i][0]): tr.x[i] for tr in _run_traces(fig) for i in range(len(tr.x))}
    assert at == pytest.approx(total)
    (seg,) = [tr for tr in fig.data if tr.legendgroup == "oracle_matching" and tr.customdata is None
              and "lines" in tr.mode and tr.line.dash == "dot"]  # fmt: skip
    assert list(seg.x[:2]) == pytest.approx([spent, total[om]])  # from spent to spent + consumed
    (om_trace,) = [tr for tr in _run_traces(fig) if tr.legendgroup == "oracle_matching"]
    assert om_trace.name == legend_name("oracle_matching") == "oracle_matching · oracle access"
    hover = om_trace.text[0]
    assert f"spent {spent:.3g}" in hover and f"consumed {n_held / n:.3g}" in hover
    (om_spent,) = [tr for tr in _run_traces(frontier_chart(t, "klom_p99_avg", "spent"))
                   if tr.legendgroup == "oracle_matching"]  # fmt: skip
    assert om_spent.x[0] == pytest.approx(spent)  # spent only: OM at its fine-tuning's cost
    assert f"consumed {n_held / n:.3g}" in om_spent.text[0]  # the hover says both


def test_om_runs_stored_without_consumed_cost_get_it_derived(runs):
    """An OM run whose config lacks ``consumed_cost`` (stored by an older engine) is charged its
    held-out oracle group at read time: the group's size over the originals'."""
    store, om = runs["store"], runs["ids"]["oracle_matching"]
    cfg = store.run(om)["config"]
    assert cfg["consumed_cost"] == 1.0  # new runs record it (core.unlearning.matching)
    old = dict(cfg)
    cfg.pop("consumed_cost")
    with store.transaction() as con:
        con.execute("UPDATE runs SET config = ? WHERE id = ?", [json.dumps(cfg), om])
    try:
        t = runs_table(store, runs["forget_set"]).set_index("run_id")
    finally:  # the lab is shared by this module's tests
        with store.transaction() as con:
            con.execute("UPDATE runs SET config = ? WHERE id = ?", [json.dumps(old), om])
    held = find_model_set(store, "oracle", "digits", forget_set_id=runs["forget_set"],
                          role="heldout")  # fmt: skip
    want = get_model_set(store, held).n_models / get_model_set(store, runs["original"]).n_models
    assert t.loc[om, "consumed_cost"] == pytest.approx(want)
    assert t.loc[runs["ids"]["gradient_descent"], "consumed_cost"] == 0.0


def test_oracle_access_labels_match_the_registry():
    """OM reads oracles (the registry marks it ``needs_heldout``); Datamodel-Direct and DMM read
    a datamodel (``datamodel_target``); retrain is the oracle; the rest read neither."""
    from core.evaluation.compare import oracle_access
    from core.unlearning import METHODS
    from dashboard.compare_charts import legend_name

    for name, fn in METHODS.items():
        want = ("oracle" if getattr(fn, "needs_heldout", False)
                else "datamodel" if hasattr(fn, "datamodel_target")
                else "is the oracle" if name == "retrain" else "none")  # fmt: skip
        assert oracle_access(name) == want, name
    assert oracle_access("oracle_matching") == "oracle" and oracle_access("imported") == "none"
    assert legend_name("retrain") == "retrain · the oracle"
    assert legend_name("dm_matching") == "dm_matching · datamodel"
    assert legend_name("gradient_ascent") == "gradient_ascent"


def test_every_axis_title_fits():
    """Each y-axis title is at most two lines of at most TITLE_LINE_CHARS characters (~7 px
    each) within the plot's height; the old U-LiRA title (105 characters) was cut off."""
    import pandas as pd

    from core.evaluation.compare import SCORE_FLOORS
    from dashboard.compare_charts import SCORES, TITLE_LINE_CHARS, X_MODES, frontier_chart

    cols = ("cost", "total_cost", "consumed_cost", *SCORES, *filter(None, SCORE_FLOORS.values()))
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in cols}).assign(
        method=pd.Series(dtype=str), run_id=pd.Series(dtype=int)
    )
    for score in SCORES:
        for x_mode in X_MODES:
            fig = frontier_chart(empty, score, x_mode)
            plot_h = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b - 60  # x title
            # the y title along the plot's height; the x title along its width (≥ 630 px)
            for title, chars in ((fig.layout.yaxis.title.text, TITLE_LINE_CHARS),
                                 (fig.layout.xaxis.title.text, 2 * TITLE_LINE_CHARS)):  # fmt: skip
                lines = title.split("<br>")
                assert len(lines) <= 2 and max(map(len, lines)) <= chars, title
            assert plot_h >= TITLE_LINE_CHARS * 7
            assert fig.layout.yaxis.automargin and fig.layout.xaxis.automargin


def test_compare_page_switches_axes_and_labels_access(runs):
    at = page("compare")
    table = at.dataframe[0].value.set_index("run_id")
    ids = runs["ids"]
    assert table.loc[ids["oracle_matching"], "oracle_access"] == "oracle"
    assert table.loc[ids["retrain"], "oracle_access"] == "is the oracle"
    assert table.loc[ids["gradient_descent"], "oracle_access"] == "none"
    gd_floor = table.loc[ids["gradient_descent"], "klom_floor_p99_avg"]
    assert gd_floor == pytest.approx(_floor(runs["store"], ids["gradient_descent"], 99))
    assert table.loc[ids["oracle_matching"], "total_cost"] == pytest.approx(
        table.loc[ids["oracle_matching"], "cost"] + 1.0
    )
    captions = "\n".join(c.value for c in at.caption)
    assert "noise floor" in captions and "Oracle Matching reads" in captions
    at.radio(key="cmp_x").set_value("total").run()
    at.toggle(key="cmp_logx").set_value(True).run()
    assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["type"] == "log"
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("spent + consumed")
    captions = "\n".join(c.value for c in at.caption)
    assert "drawn at the tick 0" in captions and "dotted segment" in captions
