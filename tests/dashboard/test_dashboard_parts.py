"""The dashboard's pure parts: charts, tables, number formats, the docs it shows, no web fonts."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from dashboard import components, data_access, klom_charts, klom_tables
from dashboard.jobs_panel import job_links
from tests.conftest import ROOT


def _points(n_forget: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 200
    split = np.array(["forget"] * n_forget + ["retain"] * (150 - n_forget) + ["val"] * 50)
    return pd.DataFrame({
        "point": np.arange(n), "split": split,
        "klom": rng.uniform(0, 11, n) * (split == "forget") + rng.uniform(0, 1, n),
        "floor": rng.uniform(0, 0.8, n), "gap": rng.normal(size=n),
    })  # fmt: skip


@pytest.mark.parametrize("mode", ["ecdf", "histogram"])
def test_log_axis_range_and_labels_are_in_log10_units(mode):
    pts = _points()
    fig = klom_charts.klom_distribution(pts, "forget", mode, log_x=True)
    lo, hi = fig.layout.xaxis.range
    assert fig.layout.xaxis.type == "log"
    assert math.log10(klom_charts.LOG_FLOOR) <= lo < hi < 1.2  # 10**1.2 ≈ 16 > saturation
    top = max(klom_charts.SATURATION, pts["klom"].max())
    assert 10**hi >= top
    # each line (a shape, in data units) and its label (an annotation, in log10 units) agree
    for shape, note in zip(fig.layout.shapes, fig.layout.annotations, strict=True):
        assert note.x == pytest.approx(math.log10(shape.x0))
    texts = [a.text for a in fig.layout.annotations]
    assert any(t.startswith("P95 ") for t in texts) and any(t.startswith("P99 ") for t in texts)
    assert len({a.y for a in fig.layout.annotations}) == len(texts)  # one row each: no overlap


@pytest.mark.parametrize(
    ("lo", "hi", "text"),
    [
        (0.05, 12.0, ["0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10"]),
        (1e-3, 12.0, ["0.001", "0.01", "0.1", "1", "10"]),  # 1-2-5 would be 13 ticks
        (0.5, 1.0, ["0.5", "0.6", "0.7", "0.8", "0.9", "1"]),  # 1-2-5 would be 2 ticks
        (1e-16, 2.0, ["1e-16", "1e-14", "1e-12", "1e-10", "1e-8", "1e-6", "1e-4", "0.01", "1"]),
    ],
)
def test_log_ticks_read_as_their_values(lo, hi, text):
    """Review: a log axis labelled 0.2 "2" (plotly's own ticks between powers of ten)."""
    ticks = components.log_ticks(lo, hi)
    assert ticks["tickmode"] == "array" and ticks["ticktext"] == text
    assert [float(t) for t in text] == ticks["tickvals"]  # each label is its own value
    assert all(lo <= v <= hi for v in ticks["tickvals"])


def test_every_log_axis_of_the_dashboard_labels_its_ticks():
    """The KLoM explorer's log scale and the linear study's log y axis carry their own tick
    labels (plotly's default ones read "2" for 0.2 and for 2e-6 alike)."""
    for mode in ("ecdf", "histogram"):
        fig = klom_charts.klom_distribution(_points(), "retain", mode, log_x=True)
        ax = fig.layout.xaxis
        assert ax.tickmode == "array" and "0.1" in ax.ticktext and "1" in ax.ticktext
        lo, hi = ax.range
        assert all(lo <= math.log10(v) <= hi for v in ax.tickvals)  # all inside the shown range
        assert list(ax.ticktext) == [f"{v:g}" for v in ax.tickvals]
    assert klom_charts.klom_distribution(_points(), "retain", "ecdf").layout.xaxis.tickmode is None
    curves = pd.DataFrame(
        {"method": "GD", "step": np.arange(10), "rel_dist": np.geomspace(1, 0.3, 10)}
    )
    outcomes = pd.DataFrame({"method": ["GD"], "status": ["stalled"], "diverged_at": [None]})
    ax = components.linear_chart(curves, outcomes).layout.yaxis
    assert ax.type == "log" and ax.tickmode == "array"
    assert list(ax.ticktext) == ["1e-6", "1e-5", "1e-4", "0.001", "0.01", "0.1", "1"]  # and 1e-6


def test_linear_axis_labels_sit_on_their_lines():
    fig = klom_charts.klom_distribution(_points(), "retain", "ecdf", log_x=False)
    for shape, note in zip(fig.layout.shapes, fig.layout.annotations, strict=True):
        assert note.x == pytest.approx(shape.x0)
    assert fig.layout.xaxis.range[1] > klom_charts.SATURATION


@pytest.mark.parametrize("log_x", [False, True])
def test_histogram_bins_method_and_floor_on_the_same_edges(log_x):
    pts = _points()
    fig = klom_charts.klom_distribution(pts, "forget", "histogram", log_x)
    method, floor = fig.data[0], fig.data[1]
    assert method.type == floor.type == "bar"
    assert np.array_equal(method.x, floor.x) and np.array_equal(method.width, floor.width)
    sub = pts[pts["split"] == "forget"]
    assert sum(method.y) == len(sub) == sum(floor.y)  # every point counted once


def test_points_chart_carries_index_and_split_and_rings_the_chosen_point():
    pts = _points()
    fig = klom_charts.klom_points(pts, chosen=3)
    for trace in fig.data[:3]:
        sub = pts[pts["split"] == trace.name]
        assert [int(c[0]) for c in trace.customdata] == sub["point"].tolist()
        assert {c[1] for c in trace.customdata} == {trace.name}
        assert np.allclose(trace.x, sub["gap"]) and np.allclose(trace.y, sub["klom"])
    ring = fig.data[3]
    assert ring.x[0] == pts.loc[3, "gap"] and ring.y[0] == pts.loc[3, "klom"]
    assert ring.hoverinfo == "skip"  # it never takes a click from the point below it
    assert "<sub>" in klom_charts.margin_histograms(np.zeros(4), np.ones(4)).layout.xaxis.title.text


def _plotly_score(d: float, size: float) -> float:
    """plotly.js's closest-hover distance of a marker ``size`` px wide whose centre is ``d`` px
    from the cursor (scatter/hover.js: ``max(d − r, 1 − 3/r)``, r = max(3, size/2)); the lowest
    score takes the click, a later trace winning a tie."""
    r = max(3.0, size / 2)
    return max(d - r, 1 - 3 / r)


def test_a_click_on_a_forget_dot_beats_its_neighbours():
    """Review: a click on a forget dot inside a dense cluster opened a retain point. The 8-px
    forget dot scored 0.25 at its very centre, a 5-px retain dot 1 px away 0. Every dot now
    scores 0 anywhere on itself, and the forget trace comes last, so it wins the tie."""
    fig = klom_charts.klom_points(_points(), chosen=3)
    clickable = [t for t in fig.data if t.hoverinfo != "skip"]
    assert [t.name for t in clickable] == ["val", "retain", "forget"]
    size = {t.name: t.marker.size for t in clickable}
    for other in ("val", "retain"):
        for d in (0.0, 1.0, 2.5):  # the forget dot's centre; the other dot's centre d px away
            assert _plotly_score(0.0, size["forget"]) <= _plotly_score(d, size[other])
        # a click on a lone val or retain dot still opens it, not a forget dot 4 px away
        assert _plotly_score(0.0, size[other]) < _plotly_score(4.0, size["forget"])
    # … and a forget dot that is not under the cursor does not take the click from one that is
    assert _plotly_score(2.0, size["forget"]) < _plotly_score(4.0, size["forget"])


def test_clicked_point_reads_customdata_not_positions():
    state = {"selection": {"points": [{"customdata": [17, "forget"], "x": 1.2, "y": 8.2,
                                       "point_index": 3, "curve_number": 2}]}}  # fmt: skip
    assert data_access.clicked_point(state) == 17
    assert data_access.clicked_point({"selection": {"points": []}}) is None
    assert data_access.clicked_point(None) is None


def test_summary_table_and_small_split_notes():
    rows = []
    for split, n in (("forget", 10), ("retain", 90), ("val", 450)):
        rows.append({"split": split, "metric": "klom", "p50": 1, "p95": 4.0, "p99": 5.0,
                     "mean": 2.0, "count": n, "accuracy": 0.99})  # fmt: skip
        rows.append({"split": split, "metric": "floor", "p50": 0.3, "p95": 0.5, "p99": 0.7,
                     "mean": 0.3, "count": n, "accuracy": 0.95})  # fmt: skip
    table = klom_tables.summary_table(pd.DataFrame(rows))
    assert table["points"].tolist() == [10, 90, 450]
    assert table["P95 ÷ floor P95"].tolist() == [8.0, 8.0, 8.0]
    assert table["argmax acc. method %"].iloc[0] == pytest.approx(99)
    notes = klom_tables.small_split_notes(table)
    assert len(notes) == 2 and "forget" in notes[0] and "P95" in notes[0]
    assert "retain" in notes[1] and "P99" in notes[1]
    # the thresholds are where np.percentile starts interpolating between the two largest
    for n, q, limit in ((21, 95, klom_tables.P95_TOP_TWO), (101, 99, klom_tables.P99_TOP_TWO)):
        assert n == limit
        x = np.arange(n, dtype=float)
        assert np.percentile(x, q) >= x[-2] and np.percentile(np.arange(n + 1.0), q) < n - 1
    assert set(klom_tables.SUMMARY_HELP) == set(table.columns) - {"split"}


def test_linear_outcome_table_formats():
    outcomes = pd.DataFrame([
        {"method": "OM", "status": "converged", "final_rel_dist": 2.7e-13, "min_rel_dist": 6e-14,
         "step_below_1e3": 44, "step_below_1e6": 95, "diverged_at": None, "step_size": 0.00112},
        {"method": "GD+GA", "status": "diverged", "final_rel_dist": 901222.7275,
         "min_rel_dist": 0.5621, "step_below_1e3": None, "step_below_1e6": np.nan,
         "diverged_at": 65, "step_size": 0.00114},
    ])  # fmt: skip
    t = components.linear_outcome_table(outcomes, 1000).set_index("method")
    assert t.loc["OM", "final rel. distance"] == "2.70e-13"
    assert t.loc["OM", "first step < 1e-6"] == "95 of 1000"
    assert t.loc["GD+GA", "outcome"] == "diverged at step 65"
    assert t.loc["GD+GA", "final rel. distance"] == "— (diverged)"
    assert t.loc["GD+GA", "best rel. distance"] == "0.562"
    assert t.loc["GD+GA", "first step < 1e-3"] == "never"
    assert "None" not in t.to_string() and "901222" not in t.to_string()


def test_linear_chart_gives_every_method_its_own_style_and_labels_1e6():
    steps = np.arange(101)
    curves = pd.concat(
        [pd.DataFrame({"method": m, "step": steps, "rel_dist": 1.0}) for m in components.METHODS]
    )
    outcomes = pd.DataFrame({"method": list(components.METHODS), "status": "stalled",
                             "diverged_at": None})  # fmt: skip
    fig = components.linear_chart(curves, outcomes)
    styles = {(t.line.dash, t.marker.symbol) for t in fig.data}
    assert len(styles) == len(components.METHODS)
    marked = [tuple(np.flatnonzero(t.marker.size)) for t in fig.data]
    assert all(marked) and len(set(marked)) == len(marked)  # markers at different steps
    assert any("1e-6" in a.text for a in fig.layout.annotations)
    assert [a.y for a in fig.layout.annotations if "1e-6" in a.text] == [-6]  # log10 units


def test_job_links():
    assert job_links("evaluate", {"run_id": 7}) == [
        ("views/klom.py", "Open run 7 in the KLoM explorer", {"run": "7"})
    ]
    demo = {"evaluations": {"random-10": {"run_id": 2}, "random-50": {"run_id": 3}}}
    assert job_links("demo", demo)[0][2] == {"run": "3"}
    assert job_links("oracles", {"oracle_set_id": 2})[0][0] == "views/models.py"
    assert job_links("evaluate", None) == []


def test_every_help_section_the_pages_ask_for_exists():
    asked = set()
    for page in (ROOT / "dashboard" / "views").glob("*.py"):
        for call in re.findall(r"concepts\(([^)]*)\)", page.read_text()):
            asked.update(re.findall(r'"([^"]+)"', call))
    assert {"KLoM", "Noise floor", "Margin"} <= asked
    text = components.concepts(*sorted(asked))
    assert "no section" not in text and "missing" not in text


def test_docs_and_app_stay_offline_and_inside_the_repository():
    doc = (ROOT / "docs" / "concepts.md").read_text()
    assert "](" not in doc.replace("](#", "") and "http" not in doc and "../" not in doc
    for path in (ROOT / "dashboard").rglob("*.py"):
        source = path.read_text()
        assert 'page_icon=":material' not in source, path
        assert "https://" not in source and "http://" not in source, path
    assert (ROOT / "dashboard" / "assets" / "icon.png").exists()
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert re.search(r"^gatherUsageStats\s*=\s*false", config, re.M)
