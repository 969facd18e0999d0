"""Attribution: which training points a point's margin depends on, read from a datamodel."""

import numpy as np
import pandas as pd
import streamlit as st

from core.attribution.defaults import DEFAULT_MODELS, lds_note
from core.common.errors import LabError
from dashboard import attribution_charts as charts
from dashboard import attribution_data as ad
from dashboard import attribution_fit as af
from dashboard import components, data_access
from dashboard.jobs_panel import jobs_panel

CHARTS = ("attr_bars", "attr_heat", "attr_self", "attr_moved", "attr_scatter")
FIT = f"python -m core datamodels fit --dataset digits --models {DEFAULT_MODELS} --target margin"

st.title("Attribution")
st.caption("A datamodel predicts each point's margin from which training points a model saw: "
           "its weights say which training points help or hurt a point, which points the "
           "models memorize, and which points a forget set moves.")  # fmt: skip
top = st.container()  # a weak datamodel's warning, once the datamodel is known
with st.expander("How to read this page"):
    st.markdown(components.concepts("Datamodels and the Attribution page", "Margin", "KLoM"))
store = data_access.store()
if store is None:
    st.stop()
path = str(store.path)


dms = ad.datamodels_df(path)
if dms.empty:
    st.info("No datamodel is stored yet. Fit one from the command line, e.g.\n\n"
            f"`{FIT}`\n\n(M models, each trained on a random half of the training set), "
            "or start the fit below as a background job.")  # fmt: skip
    af.fit_form(path)
    jobs_panel()
    st.stop()

# -- the datamodel ---------------------------------------------------------------------------
labels = {int(r.id): ad.dm_label(r) for r in dms.itertuples()}
ad.from_query("datamodel", "attr_dm", lambda v: v in labels)
if st.session_state.get("attr_dm") not in labels:  # default: the newest margin datamodel
    margin = dms.loc[dms["target"] == "margin", "id"]
    st.session_state["attr_dm"] = int(margin.iloc[0] if len(margin) else dms["id"].iloc[0])
dm_id = st.selectbox("datamodel", list(labels), format_func=labels.get, key="attr_dm")
dm = ad.datamodel(path, dm_id)
c1, c2, c3 = st.columns([1, 1, 3])
c1.metric("LDS train", components.fmt_value(dm.lds_train))
c2.metric("LDS val", components.fmt_value(dm.lds_val))
c1.caption(f"{dm.kind} fit of the {dm.target} on {dm.n_fit} subset models (α = {dm.fraction:g}); "
           f"LDS on {dm.n_heldout} held out. λ = {dm.lam:.3g}.")  # fmt: skip
c3.plotly_chart(charts.lds_curve(ad.lds_curve_df(dm.lds_curve)), width="stretch", key="attr_lds")
weak = af.weak_warning(dm_id, dm.lds_val) if dm.target == "margin" else None
if weak:
    top.warning(weak)
with st.expander("Fit another datamodel (margin: this page, logits: DMM)", expanded=bool(weak)):
    af.fit_form(path)
if dm.target != "margin":
    af.margin_fit_button(dm)
    jobs_panel()
    st.stop()
note = lds_note(dm.lds_val)  # shown beside everything read from the datamodel
try:
    data = data_access.dataset(dm.dataset)
    w = ad.margin_weights(path, dm_id)  # (n_targets, n_train)
except LabError as err:
    st.error(components.plain(err))
    st.stop()
n_points, si = data.n_train + data.n_val, ad.self_influence(w)

# -- forget set and evaluation (a ?run= link sets both) --------------------------------------
evals = data_access.evaluations_df(path)
evals = evals[evals["dataset"] == dm.dataset]
fsets = data_access.forget_sets_df(path)
fsets = fsets[fsets["dataset"] == dm.dataset]
run_fs = dict(zip(evals["run_id"].astype(int), evals["forget_set_id"].astype(int), strict=True))
if ad.from_query("run", "attr_run", lambda v: v in run_fs):  # the run's forget set with it
    st.session_state["attr_fs"] = run_fs[st.session_state["attr_run"]]
fs_names = {int(r.id): f"#{r.id} · {r.name} ({r.size} points)" for r in fsets.itertuples()}
if st.session_state.get("attr_fs") not in fs_names:
    st.session_state.pop("attr_fs", None)
c1, c2 = st.columns(2)
fs_id = c1.selectbox("forget set", list(fs_names), format_func=fs_names.get, key="attr_fs",
                     placeholder="no forget set stored")  # fmt: skip
forget = ad.forget_indices(path, int(fs_id)) if fs_id is not None else np.zeros(0, dtype=int)
runs = evals[evals["forget_set_id"] == fs_id]
run_labels = {int(r.run_id): data_access.evaluation_label(r) for r in runs.itertuples()}
if st.session_state.get("attr_run") not in run_labels:
    st.session_state.pop("attr_run", None)
run_id = c2.selectbox("evaluation (for KLoM)", list(run_labels), format_func=run_labels.get,
                      key="attr_run", placeholder="no evaluation of this forget set")  # fmt: skip
points = data_access.evaluation(path, int(run_id))["points"] if run_id is not None else None

# -- the point: an index, a ?point= link, or a click on any chart -----------------------------
ad.from_query("point", "attr_point", lambda v: True)
ad.take_clicks(CHARTS, "attr_point")
if "attr_point" not in st.session_state:  # start at the forget point hardest to unlearn
    f = points[points["split"] == "forget"] if points is not None else None
    st.session_state["attr_point"] = (
        int(f.loc[f["klom"].idxmax(), "point"]) if f is not None and len(f)
        else int(forget[0]) if forget.size else 0
    )  # fmt: skip
st.subheader(f"A point and its training influencers · {note}")
point = int(st.number_input(f"point index (0–{n_points - 1}; train first, then val)", step=1,
                            key="attr_point"))  # fmt: skip
ad.to_query(point=("attr_point", point), datamodel=("attr_dm", dm_id), run=("attr_run", run_id))
problem = ad.check_point(point, n_points, w.shape[0], dm_id)
if problem:
    st.error(components.plain(problem))
chosen = None if problem else point


def show_point(p: int) -> pd.DataFrame:
    """The point's picture and numbers, its top influencers (grids, bars, table)."""
    split, local = ad.where(p, data.n_train)
    a, b = st.columns([1, 4])
    a.markdown(components.image_html(data.image(split, local), f"{split} #{local}", 128),
               unsafe_allow_html=True)  # fmt: skip
    lds_all = ad.target_lds(path, dm_id)
    lds = lds_all[p] if lds_all is not None else None
    lines = [f"**point {p}** · {split} · label **{ad.label_of(data, p)}**",
             f"target LDS **{components.fmt_value(lds)}**"]  # fmt: skip
    if split == "train":
        rank = int((si > si[p]).sum()) + 1
        lines.append(f"self-influence W[{p},{p}] **{si[p]:+.4g}** (rank {rank} of {si.size})")
    if points is not None and p in set(points["point"]):
        r = points.set_index("point").loc[p]
        lines.append(f"KLoM **{r['klom']:.3f}** ({r['split']}, run {run_id})")
    a.markdown("\n\n".join(lines))
    if points is not None and p in set(points["point"]):
        a.page_link("views/klom.py", label="KLoM explorer",
                    query_params={"run": str(run_id), "point": str(p)},
                    icon=":material/query_stats:")  # fmt: skip
    k = b.slider("influencers per side", 3, 20, 8, key="attr_k")
    table = ad.influencers(w, p, k)
    names = [ad.label_of(data, int(j)) for j in table["source"]]
    for side, col, title in (("positive", b, "raise its margin"),
                             ("negative", b, "lower its margin")):  # fmt: skip
        t = table[table["side"] == side]
        col.markdown(f"**Top {side} influencers** — training on them is predicted to {title} "
                     f"· {note}")  # fmt: skip
        caps = [f"#{j}{' (itself)' if j == p else ''} · {ad.label_of(data, int(j))} · {v:+.3g}"
                for j, v in zip(t["source"], t["weight"], strict=True)]  # fmt: skip
        col.markdown(ad.image_grid(data, t["source"], caps,
                                   [ad.link(j, dm_id, run_id) for j in t["source"]]),
                     unsafe_allow_html=True)  # fmt: skip
    st.plotly_chart(charts.influencer_bars(table, names, p, note), width="stretch",
                    key="attr_bars", on_select="rerun", selection_mode="points")  # fmt: skip
    st.markdown(f"**Influencers of point {p}** · {note}")
    st.dataframe(table.assign(label=names), hide_index=True, width="stretch")
    return table


table = show_point(point) if chosen is not None else None

st.subheader(f"Weights over a group · {note}")
group = st.radio("group", ["influencers × class", "forget × forget"], horizontal=True,
                 key="attr_group")  # fmt: skip
if group == "forget × forget" and forget.size:
    f = forget[:60]
    st.plotly_chart(charts.weight_heatmap(w[f][:, f], f, f, "W[forget, forget]"),
                    width="stretch", key="attr_heat", on_select="rerun",
                    selection_mode="points")  # fmt: skip
    st.caption("Row t, column j: how much training on forget point j moves forget point t's "
               f"margin{' (first 60 points)' if forget.size > 60 else ''}. Click a cell to "
               "open its column's point.")  # fmt: skip
elif group == "influencers × class" and table is not None:
    if "attr_cls" not in st.session_state:  # start at the point's own class
        st.session_state["attr_cls"] = data.class_names.index(ad.label_of(data, point))
    cls = st.selectbox("class", range(len(data.class_names)), key="attr_cls",
                       format_func=lambda c: data.class_names[c])  # fmt: skip
    cols = table["source"].to_numpy()
    rows = ad.class_rows(w, data, int(cls), cols)
    st.plotly_chart(charts.weight_heatmap(w[rows][:, cols], rows, cols,
                    f"W[class {data.class_names[cls]}, influencers of point {point}]"),
                    width="stretch", key="attr_heat", on_select="rerun",
                    selection_mode="points")  # fmt: skip
    st.caption("Rows: the class's train points these influencers move most. Click a cell to "
               "open its column's point.")  # fmt: skip
else:
    st.caption("Pick a valid point, or store a forget set, to see this group.")

st.subheader(f"Self-influence (memorization) · {note}")
st.plotly_chart(charts.self_influence_hist(si, forget, chosen if chosen is not None and
                                           chosen < si.size else None), width="stretch",
                key="attr_self", on_select="rerun", selection_mode="points")  # fmt: skip
if forget.size:
    st.caption(f"Forget set (red ticks, click one to open it): mean self-influence "
               f"{si[forget].mean():+.4g} against {si.mean():+.4g} over all train points.")  # fmt: skip

if forget.size:
    st.subheader(f"Points the forget set moves most · {note}")
    km = st.slider("points", 5, 40, 12, key="attr_kmoved")
    mv = ad.moved(w, forget, km)
    caps = [f"#{p} · {ad.label_of(data, int(p))} · Δ{s:+.3g}{' · F' if f else ''}"
            for p, s, f in zip(mv["point"], mv["shift"], mv["in_forget"], strict=True)]  # fmt: skip
    st.markdown(ad.image_grid(data, mv["point"], caps,
                              [ad.link(p, dm_id, run_id) for p in mv["point"]]),
                unsafe_allow_html=True)  # fmt: skip
    st.plotly_chart(charts.moved_bars(mv, note), width="stretch", key="attr_moved",
                    on_select="rerun", selection_mode="points")  # fmt: skip
    st.caption("Predicted margin shift when the forget set is left out, Δ[t] = −Σ_{j∈F} W[t, j] "
               "(F marks forget points).")  # fmt: skip

st.subheader(f"Hard to unlearn? KLoM against self-influence · {note}")
if points is None:
    st.caption("No evaluation of this forget set: evaluate a method on the Forget sets page.")
else:
    kv = ad.klom_vs_self(points, si)
    st.plotly_chart(charts.klom_vs_self(kv, chosen), width="stretch", key="attr_scatter",
                    on_select="rerun", selection_mode="points")  # fmt: skip
    rho = ad.spearman(kv["self_influence"].to_numpy(), kv["klom"].to_numpy())
    st.caption(f"Each forget point of run {run_id}: Spearman correlation of KLoM with "
               f"self-influence {components.fmt_value(rho, 2)}. Click a dot to open the point.")  # fmt: skip
jobs_panel()
