"""Unlearn: run a method over budgets (and a hyperparameter's values) as a background job."""

import streamlit as st

from core.common.errors import ConfigError
from core.unlearning import METHODS, PARAMS, uses_budget
from core.unlearning.params import Choice
from dashboard import attribution_data as ad
from dashboard import components, data_access
from dashboard.jobs_panel import jobs_panel, start_chain, start_job
from dashboard.needs import missing, needs_box
from dashboard.run_grid import unlearn_grid

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
    st.info("No forget sets yet: make one on the Forget sets page, or run the quick demo from "
            "Home (it makes three).")  # fmt: skip
    c1, c2 = st.columns(2)
    c1.page_link("views/forget_sets.py", label="Forget sets: make one",
                 icon=":material/delete_sweep:")  # fmt: skip
    c2.page_link("views/home.py", label="Home: the quick demo", icon=":material/home:")
    jobs_panel()
    st.stop()
ids = fsets["id"].astype(int).tolist()
ad.from_query("forget_set", "ul_fs", lambda v: v in ids)  # a link (the tour) picks the set
fs_id = st.selectbox("forget set", ids, key="ul_fs",
                     format_func=lambda i: f"#{i} · {fsets.set_index('id').loc[i, 'name']}")  # fmt: skip
choices, default = data_access.original_choices(path, fs_id)
if not choices:
    st.info("No complete originals for this dataset yet: build them on the Models page.")
    st.page_link("views/models.py", label="Models: build originals", icon=":material/hub:")
    jobs_panel()
    st.stop()
orig_ids = [c[0] for c in choices]
orig = st.selectbox("originals", orig_ids,
                    index=orig_ids.index(default) if default in orig_ids else 0,
                    format_func=dict(choices).get, key=f"ul_orig_{fs_id}")  # fmt: skip
names = sorted(METHODS)
if st.query_params.get("method") in names and st.session_state.get("ul_method_q") != (
    st.query_params["method"]
):  # fmt: skip
    st.session_state["ul_method"] = st.session_state["ul_method_q"] = st.query_params["method"]
method = st.selectbox("method", names, key="ul_method", index=names.index("oracle_matching"))
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
found = missing(path, fs_id, method, orig)
if found:
    needs_box(found)
label = "Build what is missing, then run" if found else "Run in the background"
if st.button(label, type="primary", key="ul_go"):
    try:
        grid = unlearn_grid(method, values, sweep, budgets)
    except ConfigError as err:  # (a ValueError too: caught first)
        st.error(components.plain(err))
    except ValueError:
        st.error(f"budgets must be numbers like 0.02,0.05, got {components.plain(repr(budgets))}")
    else:
        final = ("unlearn", {"forget_set_id": fs_id, "method": method, "grid": grid,
                             "original_set_id": orig})  # fmt: skip
        if found:
            start_chain([(n.kind, n.params) for n in found] + [final])
        else:
            start_job(*final)
jobs_panel()
st.page_link("views/compare.py", label="Compare the runs of this forget set",
             query_params={"forget_set": str(fs_id)}, icon=":material/leaderboard:")  # fmt: skip
