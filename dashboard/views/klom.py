"""KLoM explorer: per-point KLoM of a method against the oracles, beside the noise floor."""

import numpy as np
import streamlit as st

from core.common.errors import LabError
from core.evaluation.klom import SPLITS
from dashboard import components, data_access, klom_audits, klom_charts, klom_tables
from dashboard.downloads import card_downloads
from dashboard.jobs_panel import jobs_panel
from dashboard.klom_needed import section as models_needed_section

st.title("KLoM explorer")
store = data_access.store()
if store is None:
    st.stop()
path = str(store.path)

evals = data_access.evaluations_df(path)
if evals.empty:
    st.info("No evaluations yet. Run the quick demo from **Home**, or save a forget set, build its "
            "oracles and evaluate a method on the **Forget sets** page.")  # fmt: skip
    st.page_link("views/home.py", label="Home: run the quick demo", icon=":material/home:")
    jobs_panel()
    st.stop()

labels = {int(r.run_id): data_access.evaluation_label(r) for r in evals.itertuples()}
wanted = st.query_params.get("run")  # a link from a job or another page: ?run=ID
if wanted != st.session_state.get("klom_q_applied"):
    st.session_state["klom_q_applied"] = wanted
    if components.query_int(wanted) in labels:
        st.session_state["klom_eval"] = components.query_int(wanted)
run_id = st.selectbox("evaluation", list(labels), format_func=labels.get, key="klom_eval")
st.query_params["run"] = st.session_state["klom_q_applied"] = str(run_id)
wanted_point = st.query_params.get("point")  # ?run=ID&point=P: open the drill-down at P
if wanted_point != st.session_state.get("klom_qp_applied"):
    st.session_state["klom_qp_applied"] = wanted_point
    if components.query_int(wanted_point) is not None:
        st.session_state["klom_point"] = components.query_int(wanted_point)
ev = data_access.evaluation(path, run_id)
points, summ, row = ev["points"], ev["summaries"], ev["evaluation"]
dataset = evals.set_index("run_id").loc[run_id, "dataset"]

with st.expander("How to read this page", expanded=False):
    st.markdown(components.concepts(
        "Reading the KLoM explorer", "Margin", "KLoM", "Noise floor", "Saturation", "Splits",
        "P95, P99 and small splits", "Gap", "Accuracy", "Compute cost", "Membership audits",
    ))  # fmt: skip
    st.caption("From docs/concepts.md in the lab's folder.")

st.markdown("**Summary per split** (hover a column name for its meaning)")
table = klom_tables.summary_table(summ)
st.dataframe(table, hide_index=True, width="stretch", column_config=klom_tables.column_config())
for note in klom_tables.small_split_notes(table):
    st.caption(note)
if (summ["accuracy_kind"] != "argmax").any():  # core.evaluation.run.accuracy_kind
    st.caption(
        "The method's accuracy here is the **positive-margin share** (margin > 0), not "
        "argmax: a margin datamodel predicts margins only. A lower bound of argmax accuracy."
    )
st.caption(klom_tables.compute_cost_sentence(float(row["compute_cost"]), row["method"]))
st.caption(f"Models: originals set {row['original_set_id']}, oracles set {row['oracle_set_id']}, "
           f"noise-floor oracles set {row['floor_set_id']} (see the Models page).")  # fmt: skip
card_downloads(store, run_id, "klom_card")
resets = klom_tables.reset_table(data_access.run_info(path, run_id))
if resets is not None:  # DEL: the share of each parameter's weights it reset
    st.caption(resets[1])
    st.dataframe(resets[0], hide_index=True, column_config={"share reset": st.column_config
                 .NumberColumn("share reset", format="percent")})  # fmt: skip
audit = data_access.audits(path, run_id)
if audit is None:
    st.caption(klom_audits.NOT_AUDITED.format(run=run_id))
else:
    st.markdown("**Membership audits** of the forget points (a second judge beside KLoM)")
    st.dataframe(klom_audits.summary_table(audit), hide_index=True, width="stretch",
                 column_config=klom_audits.column_config(), row_height=klom_audits.ROW_HEIGHT)  # fmt: skip

c1, c2 = st.columns([1, 1])
mode = c1.radio("distribution", ["ecdf", "histogram"], horizontal=True, key="klom_mode",
                format_func={"ecdf": "ECDF", "histogram": "histogram"}.get)  # fmt: skip
log_x = c2.toggle("log scale", value=False, key="klom_log")
for tab, split in zip(st.tabs([s.capitalize() for s in SPLITS]), SPLITS, strict=True):
    tab.plotly_chart(data_access.distribution_figure(path, run_id, split, mode, log_x),
                     width="stretch", key=f"dist_{split}")  # fmt: skip

models_needed_section(
    path, int(row["forget_set_id"]), run_id, f"{row['method']} P95 (run {run_id})"
)

st.subheader("Drill down to a point")
st.caption("Click a point in the chart, or type an index below. The ringed point is the one shown.")
picked = data_access.clicked_point(st.session_state.get("klom_scatter"))
if picked is not None and picked != st.session_state.get("klom_last_pick"):
    st.session_state["klom_point"] = picked  # a new click on the chart moves the drill-down
st.session_state["klom_last_pick"] = picked
n_points = len(points)
if "klom_point" not in st.session_state:  # start at the point the method got most wrong
    st.session_state["klom_point"] = int(points.loc[points["klom"].idxmax(), "point"])
chosen = int(st.session_state["klom_point"])
st.plotly_chart(klom_charts.klom_points(points, chosen), width="stretch", on_select="rerun",
                selection_mode="points", key="klom_scatter")  # fmt: skip
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
    st.error(components.plain(err))
    st.stop()
split_name, local = ("train", point) if point < data.n_train else ("val", point - data.n_train)
label = int((data.y_train if split_name == "train" else data.y_val)[local])
a, b = st.columns([1, 3])
a.markdown(components.image_html(data.image(split_name, local), f"{split_name} #{local}", 128),
           unsafe_allow_html=True)  # fmt: skip
a.markdown(
    "\n\n".join([
        f"**point {point}** · split **{info['split']}**",
        f"label **{data.class_names[label]}**",
        f"KLoM **{info['klom']:.3f}** (noise floor {info['floor']:.3f})",
        f"gap **{info['gap']:+.3f}**",
        *klom_audits.point_lines(audit, point),
    ])
)  # fmt: skip
b.plotly_chart(
    klom_charts.margin_histograms(
        unlearned[:, point], oracle[:, point], f"margins of point {point}"
    ),
    width="stretch",
    key="drill_hist",
)
# full width, below the image's narrow column, where its label was cut off
st.page_link("views/attribution.py", label=f"Point {point}'s training influencers (Attribution)",
             query_params={"point": str(point), "run": str(run_id)},
             icon=":material/scatter_plot:")  # fmt: skip
floor95 = float(np.percentile(points["floor"], 95))
verdict = (f"within the noise floor (KLoM ≤ the floor's P95 over all points, {floor95:.2f}): "
           "indistinguishable from the oracles at this many models" if info["klom"] <= floor95
           else "still remembered: the method's margins are higher than the oracles' (gap > 0)"
           if info["gap"] > 0
           else "over-forgotten: the method's margins are lower than the oracles' (gap < 0)")  # fmt: skip
st.caption(f"This point is {verdict}. The bars are the 20 bins KLoM compares.")
jobs_panel()
