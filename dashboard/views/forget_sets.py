"""Forget sets: build one with any constructor, look at its points, save, load, delete."""

import streamlit as st

from core.common.errors import LabError
from core.evaluation.cleanup import delete_forget_set
from core.forget.make import make_forget_set
from core.forget.sets import PRESET_NAMES
from core.forget.store import get_forget_set, save_forget_set
from dashboard import components, data_access
from dashboard.jobs_panel import jobs_panel, start_job


def _save(store, preview, dataset: str) -> None:
    """The Save button's callback: it runs before the page, so it may still empty the name box
    (a widget's value cannot be set once the widget is drawn in the same run)."""
    try:
        fs_id = save_forget_set(store, preview, dataset)
    except LabError as err:
        st.session_state["fs_saved"] = ("error", f"Not saved: {components.plain(err)}")
        return
    st.session_state.pop("fs_preview", None)
    st.session_state["fs_name"] = ""
    data_access.refresh()
    st.session_state["fs_saved"] = ("ok", f"Saved as forget set {fs_id}.")


st.title("Forget sets")
st.caption("The points a model must forget. Build a set, check what is in it, save it, then "
           "train its oracles and score methods against them in the KLoM explorer.")  # fmt: skip
with st.expander("How to read this page"):
    st.markdown(components.concepts("Forget sets", "Splits", "Oracle", "Background jobs"))
store = data_access.store()
if store is None:
    st.stop()
path = str(store.path)

dataset = st.selectbox("dataset", ["digits", "cifar10"], key="fs_dataset")
try:
    data = data_access.dataset(dataset)
except LabError as err:
    st.error(components.plain(err))
    st.stop()

KINDS = {"preset": "Preset", "random": "Random", "class": "Part of a class",
         "knn": "Nearest neighbours", "manual": "Hand-picked", "upload": "Upload CSV / JSON"}  # fmt: skip
kind = st.radio("constructor", list(KINDS), format_func=KINDS.get, horizontal=True, key="fs_kind")
p: dict = {}
c1, c2, c3 = st.columns(3)
if kind == "preset":
    p["preset"] = c1.selectbox("preset", PRESET_NAMES, key="fs_preset")
elif kind == "random":
    p["k"] = int(c1.number_input("points", value=50, step=1, key="fs_k"))
    p["seed"] = int(c2.number_input("seed", value=0, step=1, key="fs_seed"))
elif kind == "class":
    p["cls"] = int(
        c1.selectbox(
            "class",
            range(data.num_classes),
            format_func=lambda i: data.class_names[i],
            key="fs_cls",
        )
    )
    p["fraction"] = float(c2.slider("share of the class", 0.05, 1.0, 0.5, 0.05, key="fs_frac"))
    p["seed"] = int(c3.number_input("seed", value=0, step=1, key="fs_seed"))
elif kind == "knn":
    p["anchor"] = int(c1.number_input("anchor (train index)", value=0, step=1, key="fs_anchor"))
    p["k"] = int(c2.number_input("points (anchor included)", value=20, step=1, key="fs_k"))
    p["space"] = c3.radio("distance in", ["pixel", "feature"], horizontal=True, key="fs_space",
                          help="feature: the original models' penultimate layer (build originals first)")  # fmt: skip
elif kind == "manual":
    text = st.text_input("train indices, comma-separated", "0, 1, 2", key="fs_manual")
    p["indices"] = [s.strip() for s in text.replace("\n", ",").split(",") if s.strip()]
else:
    up = st.file_uploader(
        "a CSV (one index per line, or an 'index' column), a JSON list or a .npy array",
        type=["csv", "json", "txt", "npy"],
        key="fs_upload",
    )
    if up is not None:
        p.update(data=up.getvalue(), filename=up.name)
name = st.text_input("name (optional)", key="fs_name") or None

if st.button("Preview", key="fs_preview_btn"):
    try:
        if kind == "upload" and "data" not in p:
            raise LabError("choose a file to upload first")
        st.session_state["fs_preview"] = make_forget_set(store, dataset, kind, name, **p)
    except LabError as err:
        st.session_state.pop("fs_preview", None)
        st.error(f"Not a valid forget set: {components.plain(err)}")

preview = st.session_state.get("fs_preview")
if preview is not None:
    st.subheader(f"Preview: {components.plain(preview.name)} — {preview.size} points")
    for w in preview.warnings:
        st.warning(components.plain(w))
    components.gallery(st, data, preview.indices)
    labels = data.y_train.numpy()[preview.indices]
    st.plotly_chart(components.class_histogram(labels, data.class_names), width="stretch")
    st.button("Save forget set", type="primary", key="fs_save", on_click=_save,
              args=(store, preview, dataset))  # fmt: skip
saved_note = st.session_state.pop("fs_saved", None)  # what _save did, shown once
if saved_note is not None:
    (st.success if saved_note[0] == "ok" else st.error)(saved_note[1])

# the jobs panel shows here, but is drawn last: it refreshes fast only while a job is active,
# and the buttons below may start one in this very run
panel = st.container()
st.divider()
st.subheader("Saved forget sets")
saved = data_access.forget_sets_df(path)
saved = saved[saved["dataset"] == dataset]
if saved.empty:
    st.info("No saved forget sets for this dataset yet.")
    with panel:
        jobs_panel()
    st.stop()
status = data_access.forget_set_status(path).set_index("id")
view = saved.drop(columns=["params"]).join(status, on="id")
view["do_nothing_run"] = components.id_or_dash(view["do_nothing_run"])
st.dataframe(view, hide_index=True, width="stretch", column_config={
    **components.narrow_columns("id", "dataset", "size"),
    "name": st.column_config.TextColumn("name", width="medium"),
    "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    "oracles": st.column_config.TextColumn(
        "oracles", help="built: both oracle groups (main and noise floor) are complete"),
    "oracle_set_ids": st.column_config.TextColumn("oracle sets"),
    "evaluations": st.column_config.NumberColumn("evaluations"),
    "do_nothing_run": st.column_config.TextColumn("do-nothing run"),
})  # fmt: skip
ids = saved["id"].astype(int).tolist()
chosen = st.selectbox(
    "open a forget set",
    ids,
    format_func=lambda i: f"#{i} · {saved.set_index('id').loc[i, 'name']}",
    key="fs_open",
)
fs, _ = get_forget_set(store, chosen)
st.markdown(f"**{components.plain(fs.name)}** · {fs.kind} · {fs.size} points · "
            f"parameters {components.code(fs.params)}")  # fmt: skip
components.gallery(st, data, fs.indices, max_images=30)
choices, default = data_access.original_choices(path, chosen)
if not choices:
    st.info("No complete original models for this dataset yet: build them on the Models page "
            "(or run the quick demo from Home) before oracles and evaluations.")  # fmt: skip
    components.page_link(st, "views/models.py", "Models: build originals", ":material/hub:")
    orig = None
else:
    ids_o = [c[0] for c in choices]
    orig = st.selectbox(
        "originals", ids_o, index=ids_o.index(default) if default in ids_o else 0,
        format_func=dict(choices).get, key=f"fs_originals_{chosen}",
        help="The original models to unlearn from. Oracles copy their recipe and number of "
        "models; an evaluation compares models of one recipe only. Default: the originals this "
        "forget set's oracles were built against.",
    )  # fmt: skip
pair = data_access.pairing(path, chosen, orig) if orig is not None else {"sets": None}
b1, b2, b3 = st.columns(3)
if pair["sets"] is not None:
    b1.success(f"Oracles of these originals built (sets {pair['sets'][1]} and {pair['sets'][2]}).")
elif b1.button("Build its oracles", key="fs_oracles", disabled=orig is None,
               help="Two groups retrained without this set, with the originals' recipe and "
               "size; resumes a build that was interrupted"):  # fmt: skip
    start_job("oracles", {"forget_set_id": chosen, "original_set_id": orig})
if pair.get("do_nothing_run") is not None:
    run = int(pair["do_nothing_run"])
    b2.page_link("views/klom.py", label=f"See do-nothing (run {run})",
                 query_params={"run": str(run)}, icon=":material/query_stats:")  # fmt: skip
elif b2.button("Evaluate do-nothing", key="fs_eval", disabled=pair["sets"] is None,
               help="Needs the oracles of these originals first"):  # fmt: skip
    start_job("evaluate", {"forget_set_id": chosen, "method": "do_nothing",
                           "original_set_id": orig})  # fmt: skip
confirm = b3.checkbox("also delete its oracles and evaluations", key="fs_confirm")
if b3.button("Delete", disabled=not confirm, key="fs_delete"):
    try:
        delete_forget_set(store, chosen)
        data_access.refresh()
        st.rerun()
    except LabError as err:
        st.error(components.plain(err))
with panel:
    jobs_panel()
