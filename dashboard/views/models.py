"""Models: the model sets in the store, and building the default originals for a dataset."""

import streamlit as st

from core.common.errors import LabError
from core.zoo.build import create_model_set, delete_model_set
from core.zoo.data import check_dataset
from core.zoo.recipe import default_train_config
from dashboard import components, data_access
from dashboard.jobs_panel import jobs_panel, start_job

st.title("Model zoo")
st.caption(
    "Every comparison in the lab is between *ensembles*: many models trained the same way from "
    "different seeds. Originals see the whole train split; oracles are retrained without a "
    "forget set; subset models see random halves (for datamodels)."
)
with st.expander("How to read this page"):
    st.markdown(components.concepts("Model sets", "Oracle", "Accuracy", "Background jobs"))
store = data_access.store()
if store is None:
    st.stop()
path = str(store.path)

with st.form("build_originals"):
    st.markdown("**Build original models**")
    c1, c2, c3 = st.columns(3)
    dataset = c1.selectbox("dataset", ["digits", "cifar10"], key="ms_dataset")
    n_models = c2.number_input("models", value=100, min_value=1, max_value=10_000, key="ms_models")
    device = c3.selectbox("device", ["auto", "cpu", "cuda", "mps"], key="ms_device")
    go = st.form_submit_button("Build in the background", type="primary")
if go:
    try:
        check_dataset(dataset)
        data = data_access.dataset(dataset)
        set_id = create_model_set(
            store,
            "original",
            default_train_config(dataset),
            int(n_models),
            device=device,
            data=data,
        )
        start_job("build_models", {"set_id": set_id, "device": device})
        data_access.refresh()
    except LabError as err:
        st.error(f"Nothing was built: {components.plain(err)}")

with st.expander("Import the paper's setting from EasyDUB's files"):
    st.caption(
        "An EasyDUB dataset directory (forget_sets/, margins/, models/, data/): its forget sets, "
        "pretrained models 0…N−1 as originals and, per forget set, oracles 0…N−1 and N…2N−1 "
        "(noise floor), as one batch; all or nothing. With weights, every method runs on them."
    )
    with st.form("import_easydub"):
        e1, e2, e3, e4, e5 = st.columns([4, 2, 1, 1, 1])
        ed_dir = e1.text_input("directory", key="ed_dir")
        ed_sets = e2.text_input("forget sets (e.g. 2,5; empty: all)", key="ed_sets")
        ed_models = e3.number_input("models N (0: most)", value=0, min_value=0, key="ed_models")
        ed_data = e4.selectbox("dataset", ["cifar10", "digits"], key="ed_dataset",
                               help="digits: a lab's own export read back")  # fmt: skip
        ed_weights = e5.checkbox("weights", key="ed_weights")
        ed_go = st.form_submit_button("Import in the background")
    if ed_go:
        try:
            params: dict = {"dir": ed_dir.strip(), "weights": bool(ed_weights), "dataset": ed_data}
            if ed_sets.strip():
                params["forget_sets"] = [int(v) for v in ed_sets.split(",") if v.strip()]
            if ed_models:
                params["models"] = int(ed_models)
            start_job("import_easydub", params)
            data_access.refresh()
        except ValueError:
            st.error("Forget sets: give ids like 2,5.")

jobs_panel()

sets = data_access.model_sets_df(path)
if sets.empty:
    st.info("No model sets yet. Build the originals above, or run the quick demo from Home.")
    st.stop()
view = sets.assign(
    progress=sets["models_done"].astype(str) + " / " + sets["n_models"].astype(str),
    mean_val_acc=(100 * sets["mean_val_acc"]).round(2),
    mean_train_acc=(100 * sets["mean_train_acc"]).round(2),
    wall_time_s=sets["wall_time_s"].round(1),
    forget_set_id=components.id_or_dash(sets["forget_set_id"]),
    base_set_id=components.id_or_dash(sets["base_set_id"]),
    status=sets["status"].replace({"building": "unfinished"}),
)[
    ["id", "kind", "role", "dataset", "arch", "progress", "mean_val_acc", "mean_train_acc",
     "forget_set_id", "recipe_id", "base_set_id", "seed", "device", "wall_time_s", "status",
     "created_at"]
]  # fmt: skip
st.dataframe(
    view,
    hide_index=True,
    width="stretch",
    column_config={
        **components.narrow_columns("kind", "role", "dataset", "arch", "progress", "device"),
        "id": st.column_config.NumberColumn("id", width="small", pinned=True),
        "mean_val_acc": st.column_config.NumberColumn(
            "val acc. %", format="%.2f",
            help="argmax accuracy on the val split, mean over the set's models"),
        "mean_train_acc": st.column_config.NumberColumn(
            "train acc. %", format="%.2f",
            help="argmax accuracy on the train split, mean over the set's models"),
        "wall_time_s": st.column_config.NumberColumn("time (s)", width="small"),
        "forget_set_id": st.column_config.TextColumn("forget set", width="small"),
        "recipe_id": st.column_config.TextColumn(
            "recipe", help="dataset, architecture and training config: only sets of one recipe "
            "(and size) are compared"),
        "base_set_id": st.column_config.TextColumn(
            "originals", width="small", help="the original set an oracle group copies"),
        "seed": st.column_config.NumberColumn(
            "first seed", width="small",
            help="model i is trained from this seed + i; sets never share one"),
        "status": st.column_config.TextColumn(
            "status", help="unfinished: an interrupted build; building it again resumes it"),
        "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    },
)  # fmt: skip

with st.expander("Delete a model set"):
    d1, d2, d3 = st.columns([2, 2, 1])
    victim = d1.selectbox("set", sets["id"].astype(int).tolist(), key="ms_delete_id",
                          format_func=lambda i: f"#{i} · {sets.set_index('id').loc[i, 'kind']}")  # fmt: skip
    cascade = d2.checkbox("also delete the evaluations that use it", key="ms_delete_cascade")
    if d3.button("Delete", key="ms_delete"):
        try:
            gone = delete_model_set(store, int(victim), cascade=cascade)
            data_access.refresh()
            st.success(f"Deleted model set {victim}" + (f" and evaluations {gone}" if gone else ""))
        except LabError as err:
            st.error(components.plain(err))
