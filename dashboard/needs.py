"""What a method still needs on a forget set (oracles, a datamodel), shown with the way to
build it: never a dead end, never a job that is known to fail."""

from __future__ import annotations

import streamlit as st

from core.common.errors import LabError
from core.jobs.prerequisites import Need, needs
from dashboard.components import plain


def missing(path: str, forget_set_id: int, method: str, original_set_id: int) -> list[Need]:
    """The prerequisites still missing (not cached: a job may have just built one). The M of a
    datamodel to fit is the page's ``ul_dm_models`` input."""
    from dashboard import data_access

    store = data_access.store()
    if store is None:
        return []
    m = st.session_state.get("ul_dm_models")
    try:
        return needs(store, forget_set_id, method, original_set_id, m)
    except LabError as err:
        st.error(plain(err))
        st.stop()


def needs_box(found: list[Need]) -> None:
    """Say what is missing and how the run button builds it; a datamodel's M is chosen here."""
    from core.attribution.fit import DEFAULT_MODELS, few_models_warning

    lines = "\n".join(f"- {plain(n.message)}." for n in found)
    st.warning(
        "Before this method can be scored, the lab needs:\n\n" + lines + "\n\n"
        "**Build what is missing, then run** queues each of these as a background job, then "
        "the run; each waits for the one before it. (Or build them yourself: oracles on the "
        "Forget sets page, datamodels on the Attribution page.)",
        icon=":material/construction:",
    )
    if any(n.what == "datamodel" for n in found):
        c1, c2 = st.columns([1, 3])
        m = c1.number_input(
            "subset models M for the datamodel", 20, 100_000, DEFAULT_MODELS, step=100,
            key="ul_dm_models",
            help="Models trained on random halves of the training set; the datamodel is fitted "
            "on them. Most of the chain's time is spent training them.",
        )  # fmt: skip
        from dashboard import data_access

        dataset = next(n for n in found if n.what == "datamodel").params["dataset"]
        warn = few_models_warning(int(m), data_access.dataset(dataset).n_train)
        if warn:
            c2.warning(warn.replace("use --models", "use M ="), icon=":material/warning:")
    c1, c2 = st.columns(2)
    if any(n.what == "oracles" for n in found):
        c1.page_link("views/forget_sets.py", label="Forget sets: build oracles there",
                     icon=":material/delete_sweep:")  # fmt: skip
    if any(n.what == "datamodel" for n in found):
        c2.page_link("views/attribution.py", label="Attribution: fit datamodels there",
                     icon=":material/scatter_plot:")  # fmt: skip
