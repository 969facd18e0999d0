"""KLoM explorer: per-point KLoM of a method against the oracles, beside the noise floor."""

import numpy as np
import streamlit as st

from core.errors import LabError
from core.metrics import SPLITS
from dashboard import components, data_access, klom_charts
from dashboard.jobs_panel import jobs_panel

st.title("KLoM explorer")
store = data_access.store()
if store is None:
    st.stop()
path = str(store.path)

evals = data_access.evaluations_df(path)
if evals.empty:
    st.info("No evaluations yet. Run the quick demo from **Home**, or save a forget set, build its "
            "oracles and evaluate a method on the **Forget sets** page.")  # fmt: skip
    jobs_panel()
    st.stop()

labels = {
    int(r.run_id): f"#{r.run_id} · {r.method} on “{r.forget_set}” ({r.dataset})"
    for r in evals.itertuples()
}
run_id = st.selectbox("evaluation", list(labels), format_func=labels.get, key="klom_eval")
ev = data_access.evaluation(path, run_id)
points, summ = ev["points"], ev["summaries"]
row = ev["evaluation"]
dataset = evals.set_index("run_id").loc[run_id, "dataset"]

with st.expander("How to read this page", expanded=False):
    st.markdown(
        f"""
For every point, **KLoM** compares the distribution of its margin over the method's models with
that over the oracle models (retrained without the forget set): 0 means indistinguishable.
With a finite number of models even a perfect unlearner scores above 0 — the **noise floor**
(grey) is KLoM between two independent groups of oracles, so a method is as good as it can be
shown to be when its curve sits on the floor. When the two samples do not overlap at all, KLoM
**saturates** near ln(10⁵) ≈ {klom_charts.SATURATION:.1f} (the empty oracle bins are floored at 10⁻⁵).
"""
    )

table = summ.pivot(index="split", columns="metric", values=["p95", "p99", "mean", "accuracy"])
table.columns = [f"{m} {s}" for s, m in table.columns]
st.dataframe(
    table.reindex(list(SPLITS)).rename(columns={"klom p95": "KLoM P95", "floor p95": "floor P95",
                                                "klom p99": "KLoM P99", "floor p99": "floor P99"}).round(3),
    width="stretch",
)  # fmt: skip
st.caption(f"compute cost {row['compute_cost']:.2f} of retraining · oracle set {row['oracle_set_id']} · "
           f"noise-floor set {row['floor_set_id']}")  # fmt: skip

c1, c2 = st.columns([1, 1])
mode = c1.radio("distribution", ["ecdf", "histogram"], horizontal=True, key="klom_mode",
                format_func={"ecdf": "ECDF", "histogram": "histogram"}.get)  # fmt: skip
log_x = c2.toggle("log scale", value=False, key="klom_log")
for tab, split in zip(st.tabs([s.capitalize() for s in SPLITS]), SPLITS, strict=True):
    tab.plotly_chart(
        klom_charts.klom_distribution(points, split, mode, log_x),
        width="stretch",
        key=f"dist_{split}",
    )

st.subheader("Drill down to a point")
st.caption("Click a point in the chart (or box-select), or type an index below.")
event = st.plotly_chart(klom_charts.klom_points(points), width="stretch", on_select="rerun",
                        selection_mode=("points", "box"), key="klom_scatter")  # fmt: skip
sel = getattr(event, "selection", None) or {}
picked = int(sel["points"][0]["customdata"]) if sel.get("points") else None
if picked is not None and picked != st.session_state.get("klom_last_pick"):
    st.session_state["klom_point"] = picked  # a new click on the chart moves the drill-down
st.session_state["klom_last_pick"] = picked
n_points = len(points)
if "klom_point" not in st.session_state:  # start at the point the method got most wrong
    st.session_state["klom_point"] = int(points.loc[points["klom"].idxmax(), "point"])
point = st.number_input(
    f"point index (0–{n_points - 1}; train first, then val)", step=1, key="klom_point"
)
if not 0 <= int(point) < n_points:
    st.error(f"Point {int(point)} does not exist: indices run from 0 to {n_points - 1}.")
    st.stop()
point = int(point)
info = points.set_index("point").loc[point]
try:
    data = data_access.dataset(dataset)
    unlearned, oracle = data_access.evaluation_margins(path, run_id)
except LabError as err:
    st.error(str(err))
    st.stop()
split_name, local = ("train", point) if point < data.n_train else ("val", point - data.n_train)
label = int((data.y_train if split_name == "train" else data.y_val)[local])
a, b = st.columns([1, 3])
a.image(components.upscale(data.image(split_name, local), 128), caption=f"{split_name} #{local}")
a.markdown(
    "\n\n".join([
        f"**point {point}** · split **{info['split']}**",
        f"label **{data.class_names[label]}**",
        f"KLoM **{info['klom']:.3f}** (floor {info['floor']:.3f})",
        f"margin gap **{info['gap']:+.2f}**",
    ])
)  # fmt: skip
b.plotly_chart(
    klom_charts.margin_histograms(
        unlearned[:, point], oracle[:, point], f"margins of point {point}"
    ),
    width="stretch",
    key="drill_hist",
)
verdict = ("indistinguishable from the oracles at this many models" if info["klom"] <= np.percentile(points["floor"], 95)
           else "still remembered (margins higher than the oracles')" if info["gap"] > 0
           else "over-forgotten (margins lower than the oracles')")  # fmt: skip
st.caption(f"This point is {verdict}.")
jobs_panel()
