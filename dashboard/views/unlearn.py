"""Unlearn: run a method over budgets (and a hyperparameter's values) as a background job."""

import streamlit as st

from core.config import check_float
from core.errors import ConfigError, LabError
from core.unlearning import METHODS, PARAMS, method_params, uses_budget
from core.unlearning.params import Choice
from dashboard import components, data_access
from dashboard.jobs_panel import jobs_panel, start_job

st.title("Unlearn")
st.caption("Pick a forget set and a method; every budget (and every value of the swept "
           "hyperparameter) becomes one stored run, scored against the oracles.")  # fmt: skip
with st.expander("How to read this page"):
    st.markdown(
        components.concepts(
            "Unlearning methods and the Compare page", "Compute cost", "Background jobs"
        )
    )
store = data_access.store()
if store is None:
    st.stop()
path = str(store.path)
fsets = data_access.forget_sets_df(path)
if fsets.empty:
    st.info("No forget sets yet: make one on the Forget sets page, or run the demo from Home.")
    st.stop()
fs_id = st.selectbox("forget set", fsets["id"].astype(int).tolist(), key="ul_fs",
                     format_func=lambda i: f"#{i} · {fsets.set_index('id').loc[i, 'name']}")  # fmt: skip
choices, default = data_access.original_choices(path, fs_id)
if not choices:
    st.info("No complete originals for this dataset yet: build them on the Models page.")
    st.stop()
ids = [c[0] for c in choices]
orig = st.selectbox("originals", ids, index=ids.index(default) if default in ids else 0,
                    format_func=dict(choices).get, key=f"ul_orig_{fs_id}")  # fmt: skip
pair = data_access.pairing(path, fs_id, orig)
if pair["sets"] is None:
    st.warning("This forget set has no oracles of these originals yet: build them on the "
               "Forget sets page first.")  # fmt: skip
    st.stop()
method = st.selectbox("method", sorted(METHODS), key="ul_method",
                      index=sorted(METHODS).index("oracle_matching"))  # fmt: skip
spec = PARAMS[method]
values: dict = {}
cols = st.columns(3)
for k, p in enumerate(spec):
    col = cols[k % 3]
    if isinstance(p.limits, Choice):
        values[p.name] = col.selectbox(p.name, p.limits.options, help=p.help,
                                       index=p.limits.options.index(p.default), key=f"ul_{method}_{p.name}")  # fmt: skip
    else:
        values[p.name] = col.text_input(p.name, str(p.default), help=f"{p.help}; {p.describe()}",
                                        key=f"ul_{method}_{p.name}")  # fmt: skip
sweep = st.selectbox("sweep one hyperparameter over comma-separated values (optional)",
                     ["—"] + [p.name for p in spec], key=f"ul_sweep_{method}")  # fmt: skip
budgets = st.text_input("budgets (shares of retraining, comma-separated)", "0.02,0.05,0.1",
                        key="ul_budgets", disabled=not uses_budget(method))  # fmt: skip
if st.button("Run in the background", type="primary", key="ul_go"):
    try:
        trains = uses_budget(method)
        bs = [float(b) for b in budgets.split(",") if b.strip()] if trains else [None]
        for b in bs:
            if b is not None:
                check_float("budget", b, 0.0, 10.0, lo_open=True)
        swept = [v.strip() for v in str(values[sweep]).split(",")] if sweep != "—" else [None]
        grid = []
        for b in bs:
            for v in swept:
                point = {**values, **({sweep: v} if v is not None else {})}
                method_params(method, point)  # refuse a bad value before anything starts
                grid.append({**({"budget": b} if b is not None else {}), **point})
    except ConfigError as err:  # (a ValueError too: caught first)
        st.error(components.plain(err))
    except ValueError:
        st.error(f"budgets must be numbers like 0.02,0.05, got {components.plain(repr(budgets))}")
    else:
        try:
            start_job("unlearn", {"forget_set_id": fs_id, "method": method, "grid": grid,
                                  "original_set_id": orig})  # fmt: skip
        except LabError as err:
            st.error(components.plain(err))
jobs_panel()
st.page_link("views/compare.py", label="Compare the runs of this forget set",
             icon=":material/leaderboard:")  # fmt: skip
