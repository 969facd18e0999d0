"""Compare: every unlearning run on a forget set, KLoM against compute cost, per method; then
point by point: KLoM distributions and the signed over/under-unlearning view."""

import json

import streamlit as st

from core.common.errors import LabError
from core.evaluation.compare import best_per_method, gap_summary, resolution
from dashboard import attribution_data as ad
from dashboard import collateral_panel, components, data_access
from dashboard.compare_charts import (
    AUDIT_TABLE_COLUMNS,
    SCORES,
    X_MODES,
    distribution_chart,
    frontier_caption,
    frontier_chart,
    gap_chart,
    run_labels,
)
from dashboard.downloads import card_downloads, table_downloads
from dashboard.jobs_panel import jobs_panel

st.title("Compare methods")
st.caption("Every run on one forget set as a point: how close to the oracles (KLoM, lower is "
           "better) for how much compute (the share of retraining it spent). Lines join each "
           "method's Pareto front.")  # fmt: skip
with st.expander("How to read this page"):
    st.markdown(
        components.concepts(
            "Unlearning methods and the Compare page",
            "KLoM",
            "Noise floor",
            "Compute cost",
            "Accuracy",
            "Membership audits",
        )
    )
ACC_HELP = ("argmax: share of (model, point) pairs whose top class is the label; positive-margin "
            "share (Datamodel-Direct with a margin datamodel, which predicts margins only): share "
            "with margin > 0, a lower bound of argmax accuracy")  # fmt: skip
store = data_access.store()
if store is None:
    st.stop()
path = str(store.path)
evals = data_access.evaluations_df(path)
if evals.empty:
    st.info("No evaluations yet: run the demo from Home, or unlearn on the Unlearn page.")
    c1, c2 = st.columns(2)
    c1.page_link("views/home.py", label="Home: the quick demo", icon=":material/home:")
    c2.page_link("views/unlearn.py", label="Unlearn", icon=":material/auto_fix_high:")
    jobs_panel()
    st.stop()
names = evals.drop_duplicates("forget_set_id").set_index("forget_set_id")["forget_set"]
ad.from_query("forget_set", "cmp_fs", lambda v: v in names.index)  # a link (the tour) picks it
fs_id = st.selectbox("forget set", list(names.index), format_func=lambda i: f"#{i} · {names[i]}",
                     key="cmp_fs")  # fmt: skip
score = st.radio("y axis", list(SCORES), horizontal=True, key="cmp_score",
                 format_func=lambda k: SCORES[k])  # fmt: skip
x_col, log_col = st.columns([3, 1])
x_mode = x_col.radio("x axis", list(X_MODES), horizontal=True, key="cmp_x",
                     format_func=lambda k: X_MODES[k],
                     help="spent: the method's own fine-tuning; + consumed: the models it read "
                          "besides (OM's held-out oracles, the datamodels' subset models)")  # fmt: skip
log_x = log_col.toggle("log x axis", key="cmp_logx")
try:
    runs = data_access.compare_runs(path, int(fs_id))
    diverged = data_access.diverged_df(path, int(fs_id))
except LabError as err:
    st.error(components.plain(err))
    st.stop()
clicked = data_access.clicked_customdata(st.session_state.get("cmp_chart"))
if clicked and clicked != st.session_state.get("cmp_last_click"):  # a click picks the run below
    st.session_state["cmp_open"] = int(clicked[0])
st.session_state["cmp_last_click"] = clicked
st.plotly_chart(frontier_chart(runs, score, x_mode, log_x), width="stretch", key="cmp_chart",
                on_select="rerun", selection_mode="points")  # fmt: skip
st.caption(frontier_caption(score, x_mode, log_x))
unresolved = resolution(runs, score, data_access.models_a_side(path, int(fs_id)))
if unresolved:
    st.warning(unresolved, icon=":material/blur_on:")
st.caption("Accuracy alone misleads: gradient ascent can reach the oracles' forget accuracy "
           "while its KLoM is wrecked — read both columns.")  # fmt: skip
view = runs[["run_id", "method", "oracle_access", "budget", "cost", "consumed_cost",
             "total_cost", "klom_p99_avg", "klom_floor_p99_avg", "klom_p95_avg", "forget_p95", "retain_p95", "val_p95", "forget_floor_p95",
             "forget_acc", "retain_acc", "val_acc", "acc_kind", *AUDIT_TABLE_COLUMNS, "params",
             "reset_share", "device", "wall_time_s"]]  # fmt: skip
st.dataframe(view, hide_index=True, width="stretch", column_config={
    "cost": st.column_config.NumberColumn("cost", format="%.3f",
                                          help="fine-tuning example-gradients / retraining's"),
    "oracle_access": st.column_config.TextColumn(
        "oracle access", help="oracle: uses oracle models (OM); is the oracle: retrain; datamodel: "
                      "subset models, no oracle (Datamodel-Direct, DMM); none"),
    "consumed_cost": st.column_config.NumberColumn(
        "consumed", format="%.3f",
        help="the models it read, in retrainings per model (OM: its held-out oracles, 1; "
             "datamodels: M subset models / N)"),
    "total_cost": st.column_config.NumberColumn("spent + consumed", format="%.3f"),
    "klom_p99_avg": st.column_config.NumberColumn("P99 avg", format="%.2f"),
    "klom_floor_p99_avg": st.column_config.NumberColumn(
        "floor P99 avg", format="%.2f", help="the noise floor of P99 avg: oracle vs oracle"),
    "klom_p95_avg": st.column_config.NumberColumn("P95 avg", format="%.2f"),
    "reset_share": st.column_config.NumberColumn(
        "reset share", format="%.3f", help="DEL: share of the weights below the head reset"),
    **{c: st.column_config.NumberColumn(c.replace("_", " "), format="%.3f")
       for c in view.columns if c.endswith("_p95")},
    **{c: st.column_config.NumberColumn(c.replace("_", " "), format="%.3f", help=ACC_HELP)
       for c in view.columns if c.endswith("_acc")},
    "acc_kind": st.column_config.TextColumn("acc. kind", help=ACC_HELP),
})  # fmt: skip
table_downloads(runs, f"compare-{fs_id}", "cmp_runs")
if len(diverged):
    st.warning(f"{len(diverged)} grid point(s) diverged (non-finite outputs): recorded, not "
               "scored — no KLoM exists for them.")  # fmt: skip
    st.dataframe(diverged, hide_index=True, width="stretch")
labels = run_labels(runs)
run = st.selectbox("open a run in the KLoM explorer (or click its point in the chart)", runs["run_id"].tolist(), key="cmp_open",
                   format_func=lambda r: labels[int(r)])  # fmt: skip
st.page_link("views/klom.py", label=f"Run {run} in the KLoM explorer",
             query_params={"run": str(run)}, icon=":material/query_stats:")  # fmt: skip
if run is not None:
    card_downloads(store, run, "cmp_card")

st.subheader("Point by point")
max_cost = st.number_input(
    "best run of each method at a cost of at most", 0.0, 10.0, float(runs["cost"].fillna(0.0).max()),
    step=0.01, format="%.3f", key="cmp_max_cost",
    help="the default choice below: each method's lowest score (the y axis) within this cost",
)  # fmt: skip
chosen = st.multiselect("runs", runs["run_id"].tolist(), key=f"cmp_runs_{fs_id}_{score}_{max_cost}",
                        default=best_per_method(runs, score, max_cost),
                        format_func=lambda r: labels[int(r)])  # fmt: skip
if not chosen:
    st.info("Choose runs to compare point by point.")
    st.stop()
points = data_access.compare_points(path, tuple(int(r) for r in chosen))
dist, gaps, coll = st.tabs(["KLoM distributions", "Over / under-unlearning",
                            "Collateral forgetting"])  # fmt: skip
with dist:
    st.plotly_chart(distribution_chart(points, labels), width="stretch", key="cmp_dist")
    st.caption("Each box: one run's KLoM over the points of a split; grey: the noise floor, what "
               "a perfect unlearner scores with this many models.")  # fmt: skip
with gaps:
    st.plotly_chart(gap_chart(points, labels), width="stretch", key="cmp_gap", on_select="rerun",
                    selection_mode="points")  # fmt: skip
    hit = data_access.clicked_customdata(st.session_state.get("cmp_gap"))
    if hit and len(hit) == 2:
        st.page_link("views/klom.py", label=f"Point {int(hit[1])} of run {int(hit[0])} in the "
                     "KLoM explorer", query_params={"run": str(int(hit[0])), "point": str(int(hit[1]))},
                     icon=":material/query_stats:")  # fmt: skip
    else:
        st.caption("Click a dot to open that point of that run in the KLoM explorer.")
    summary = gap_summary(points)
    st.dataframe(summary, hide_index=True, width="stretch", column_config={
        "mean_gap": st.column_config.NumberColumn("mean gap", format="%.3f"),
        "under_share": st.column_config.NumberColumn("share under-unlearned", format="%.2f"),
        "mean_abs_gap": st.column_config.NumberColumn("mean |gap|", format="%.3f"),
    })  # fmt: skip
    table_downloads(summary, f"gaps-{fs_id}", "cmp_gaps")
    st.caption("A dot per forget point: its mean margin over the unlearned models minus its mean "
               "over the oracles. Above 0 the models still remember it; below 0 they were pushed "
               "past what retraining does (over-unlearning, e.g. gradient ascent).")  # fmt: skip
with coll:  # retain / val KLoM by proximity to the forget set (issue 24)
    collateral_panel.show(path, int(fs_id), [int(r) for r in chosen], labels)
table_downloads(points, f"points-{fs_id}", "cmp_points")
with st.expander("Hyperparameters of every run"):
    st.json({int(r.run_id): json.loads(r.params) for r in runs.itertuples()}, expanded=False)
