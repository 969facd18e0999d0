"""Compare: every unlearning run on a forget set, KLoM against compute cost, per method."""

import json

import streamlit as st

from core.errors import LabError
from dashboard import components, data_access
from dashboard.compare_charts import AUDIT_TABLE_COLUMNS, SCORES, frontier_chart

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
store = data_access.store()
if store is None:
    st.stop()
path = str(store.path)
evals = data_access.evaluations_df(path)
if evals.empty:
    st.info("No evaluations yet: run the demo from Home, or unlearn on the Unlearn page.")
    st.stop()
names = evals.drop_duplicates("forget_set_id").set_index("forget_set_id")["forget_set"]
fs_id = st.selectbox("forget set", list(names.index), format_func=lambda i: f"#{i} · {names[i]}",
                     key="cmp_fs")  # fmt: skip
score = st.radio("y axis", list(SCORES), horizontal=True, key="cmp_score",
                 format_func=lambda k: SCORES[k])  # fmt: skip
try:
    runs = data_access.compare_runs(path, int(fs_id))
except LabError as err:
    st.error(str(err))
    st.stop()
st.plotly_chart(frontier_chart(runs, score), width="stretch", key="cmp_chart")
st.caption("Accuracy alone misleads: gradient ascent can reach the oracles' forget accuracy "
           "while its KLoM is wrecked — read both columns.")  # fmt: skip
view = runs[["run_id", "method", "budget", "params", "cost", "consumed_cost", "klom_p99_avg",
             "klom_p95_avg", "forget_p95", "retain_p95", "val_p95", "forget_floor_p95",
             "forget_acc", "retain_acc", "val_acc", *AUDIT_TABLE_COLUMNS]]  # fmt: skip
st.dataframe(view, hide_index=True, width="stretch", column_config={
    "cost": st.column_config.NumberColumn("cost", format="%.3f",
                                          help="fine-tuning example-gradients / retraining's"),
    "consumed_cost": st.column_config.NumberColumn(
        "consumed", help="what else the method used, in retrainings per model (OM: 1)"),
    "klom_p99_avg": st.column_config.NumberColumn("P99 avg", format="%.2f"),
    "klom_p95_avg": st.column_config.NumberColumn("P95 avg", format="%.2f"),
    **{c: st.column_config.NumberColumn(c.replace("_", " "), format="%.3f")
       for c in view.columns if c.endswith(("_p95", "_acc"))},
})  # fmt: skip
c1, c2, c3 = st.columns(3)
c1.download_button("CSV", runs.to_csv(index=False), f"compare-{fs_id}.csv", "text/csv",
                   key="cmp_csv")  # fmt: skip
c2.download_button("Parquet", data_access.to_parquet(runs), f"compare-{fs_id}.parquet",
                   "application/octet-stream", key="cmp_parquet")  # fmt: skip
run = c3.selectbox("open a run", runs["run_id"].tolist(), key="cmp_open",
                   format_func=lambda r: f"run {r} · "
                   + runs.set_index("run_id").loc[r, "method"])  # fmt: skip
c3.page_link("views/klom.py", label=f"Run {run} in the KLoM explorer",
             query_params={"run": str(run)}, icon=":material/query_stats:")  # fmt: skip
with st.expander("Hyperparameters of every run"):
    st.json({int(r.run_id): json.loads(r.params) for r in runs.itertuples()}, expanded=False)
