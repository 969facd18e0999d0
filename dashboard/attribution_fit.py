"""The Attribution page's fit form and its datamodel warnings.

A datamodel is fitted on M subset models of the originals' recipe (the expensive part: each is
trained); the page reads a *margin* datamodel, and DMM (``dm_matching``) needs a *logits* one.
The form queues one ``datamodel`` job per output; jobs run one after another, and the second
finds the subset models the first trained (``core.attribution.subsets.ensure_subsets``), so
"both" costs one set of subset models and two fits. Below ``DEFAULT_MODELS`` (the fewest that
gave held-out LDS ≥ ``WEAK_LDS`` on digits, measured) the form warns, with the measured time.
"""

from __future__ import annotations

import streamlit as st

from core.attribution.defaults import (
    DEFAULT_MODELS,
    MEASURED_SECONDS,
    WEAK_LDS,
    few_models_note,
    is_weak,
)
from dashboard import data_access
from dashboard.jobs_panel import start_job

OUTPUTS = {"both": ("margin", "logits"), "margin": ("margin",), "logits": ("logits",)}
OUTPUT_LABELS = {"both": "both (margin + logits, one set of subset models)",
                 "margin": "margin (this page)", "logits": "logits (DMM)"}  # fmt: skip


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def expected_time(m: int, outputs: tuple[str, ...]) -> str:
    """The measured cost on digits (default recipe, 2 shared CPU cores), scaled linearly in M
    for training: ``m/100 · t₁₀₀`` for the subset models, plus each fit as measured at
    ``DEFAULT_MODELS``."""
    s = MEASURED_SECONDS
    each, train = [s[f"fit_{o}"] for o in outputs], m / 100 * s["train_per_100"]
    return (f"Expected time on digits with 2 CPU cores: about {_duration(train)} "
            f"to train {m:,} subset models, then {_duration(sum(each))} to fit "
            f"({' + '.join(outputs)}) — scaled from the measured {s['train_per_100']:.1f} s per "
            f"100 subset models and {' + '.join(f'{t:.0f} s' for t in each)} to fit at "
            f"M = {DEFAULT_MODELS:,} (bench/datamodel_models.py, the 2 cores shared with other "
            "work; an idle machine trains faster)")  # fmt: skip


def weak_warning(dm_id: int, lds: float | None) -> str | None:
    """What to tell about a stored datamodel whose held-out LDS is weak (< ``WEAK_LDS``)."""
    if not is_weak(lds):
        return None
    value = "not defined" if lds is None or lds != lds else f"{lds:.2f}"
    return (f"Datamodel {dm_id} is weak: its LDS on held-out subset models (val points) is "
            f"{value}, below {WEAK_LDS}. Its influencers, self-influence and moved points are "
            f"mostly noise. Fit one on at least {DEFAULT_MODELS:,} subset models (Fit another "
            f"datamodel, below): on digits that first gave LDS ≥ {WEAK_LDS} "
            "(measured).")  # fmt: skip


def queue_fits(
    dataset: str, m: int, original_set_id: int | None, outputs, fraction: float | None = None
) -> list[int]:
    """One ``datamodel`` job per output (margin first: the page reads it); job ids started."""
    ids = []
    for target in outputs:
        params = {"dataset": dataset, "models": int(m), "target": target}
        if original_set_id is not None:
            params["original_set_id"] = int(original_set_id)
        if fraction is not None:
            params["fraction"] = float(fraction)
        job = start_job("datamodel", params)
        if job is not None:
            ids.append(job)
    return ids


def fit_form(path: str) -> None:
    """Originals, M (default ``DEFAULT_MODELS``), the outputs to fit, the warning below the
    measured threshold, and the button that queues the jobs."""
    sets = data_access.model_sets_df(path)
    orig = sets[(sets["kind"] == "original") & (sets["status"] == "complete")]
    if orig.empty:
        st.caption("A datamodel is fitted to the originals' recipe: build original models first.")
        st.page_link("views/models.py", label="Models: build originals", icon=":material/hub:")
        return
    c1, c2, c3 = st.columns([2, 1, 2])
    names = {int(r.id): f"#{r.id} · {r.dataset} · {r.arch} · {r.n_models} models"
             for r in orig.itertuples()}  # fmt: skip
    oid = c1.selectbox("originals (their recipe)", list(names), format_func=names.get,
                       key="attr_fit_orig")  # fmt: skip
    m = int(c2.number_input("subset models M", 20, 100_000, DEFAULT_MODELS, step=100,
                            key="attr_fit_m"))  # fmt: skip
    which = c3.radio("outputs", list(OUTPUTS), format_func=OUTPUT_LABELS.get, key="attr_fit_out",
                     help="The page reads a margin datamodel; Datamodel Matching (dm_matching) "
                     "needs a logits one. Both come from the same subset models.")  # fmt: skip
    dataset = str(orig.set_index("id").loc[oid, "dataset"])
    n_train = data_access.dataset(dataset).n_train
    note = few_models_note(m, n_train)
    if note:
        cost = f" {expected_time(DEFAULT_MODELS, OUTPUTS[which])}." if dataset == "digits" else ""
        st.warning(f"{note}. Use M ≥ {DEFAULT_MODELS:,} for a datamodel worth reading.{cost}")
    if dataset == "digits":
        st.caption(expected_time(m, OUTPUTS[which]) + ".")
    if st.button("Fit a datamodel", key="attr_fit", type="primary"):
        queue_fits(dataset, m, oid, OUTPUTS[which])


def margin_fit_button(dm) -> None:
    """A logits datamodel is picked: the page cannot read it; fit its margin twin from the
    same subset models (same originals and M) right here."""
    st.info(f"Datamodel {dm.id} predicts logits (Datamodel Matching uses it); this page reads a "
            "margin datamodel, since a margin is not linear in the logits. Fit the margin one "
            f"from the same {dm.n_models:,} subset models (already trained: only the fit runs), "
            "or pick a margin datamodel above.")  # fmt: skip
    if st.button("Fit the margin datamodel", key="attr_fit_margin", type="primary"):
        queue_fits(dm.dataset, dm.n_models, dm.original_set_id, ("margin",), dm.fraction)
