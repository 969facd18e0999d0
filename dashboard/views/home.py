"""Home: what the lab is, for a newcomer."""

import streamlit as st

from core.zoo.recipe import default_train_config
from dashboard import attribution_data, components, data_access
from dashboard.jobs_panel import jobs_panel, start_job
from dashboard.tour import steps


def demo_form(done: bool) -> None:
    """The demo's button, with its size: 100 models a side by default (a few minutes on a
    laptop CPU; the page stays usable meanwhile), fewer for a quicker, noisier look."""
    c1, c2, c3 = st.columns([1, 1, 2])
    models = c1.number_input("models per side", 2, 1000, 100, step=10, key="home_models",
                             help="originals, and oracles per group, for each forget set")  # fmt: skip
    full = default_train_config("digits").epochs
    epochs = c2.number_input("epochs", 1, 1000, full, key="home_epochs",
                             help=f"the digits recipe trains {full}; fewer is quicker")  # fmt: skip
    c3.caption(f"Trains {models} originals and, for each of three forget sets, 2 × {models} "
               "oracles; then scores doing nothing against them.")  # fmt: skip
    label = "Run the quick demo again (reuses what is stored)" if done else "Run the quick demo"
    if st.button(label, type="secondary" if done else "primary", key="home_demo"):
        params = {"models": int(models)}
        if int(epochs) != full:
            params["epochs"] = int(epochs)
        start_job("demo", params)


st.title("Unlearning Lab")
st.markdown(
    """
**Machine unlearning** removes the effect of some training points — the *forget set* — from a
model that has already been trained on them: a user asked to be deleted, an image turned out
to be mislabelled or poisoned.

The gold standard is simple and expensive: retrain the model from scratch without those points.
We call such a model an **oracle**. An unlearning method is good when the model it produces
cannot be told apart from an oracle — not just on average, but **point by point**.

Training is random, so "told apart" is a statement about distributions. For every point the lab
looks at the *margin* (how confidently the model predicts the right class) across many
unlearned models and across many oracle models, and measures the gap between the two
distributions with **KLoM** — the KL divergence of margins. Zero means indistinguishable.
"""
)

st.subheader("A guided tour: the seed paper's story in six clicks")
path = data_access.db_path()
store = data_access.store()
if store is None:
    st.stop()
tour = steps(
    data_access.evaluations_df(path),
    attribution_data.datamodels_df(path),
    len(data_access.linear_runs_df(path)),
)
for n, step in enumerate(tour, 1):
    mark = ":material/check_circle:" if step.done else ":material/radio_button_unchecked:"
    with st.container(border=True):
        st.markdown(f"{mark} **{n}. {step.title}** — {step.text}")
        if step.links:
            cols = st.columns(len(step.links))
            for col, (page, label, query) in zip(cols, step.links, strict=True):
                col.page_link(page, label=label, query_params=query or None,
                              icon=":material/arrow_forward:")  # fmt: skip
        if n == 1:
            demo_form(done=step.done)
evals = data_access.evaluations_df(path)
if not evals.empty:
    st.page_link("views/klom.py", label="Open the KLoM explorer on the newest evaluation",
                 icon=":material/query_stats:",
                 query_params={"run": str(int(evals["run_id"].iloc[0]))})  # fmt: skip
jobs_panel()

st.subheader("What the pages show")
st.markdown(
    """
- **Models** — the model zoo: sets of models trained at once (originals, oracles, subsets),
  with their accuracy and how long they took.
- **Forget sets** — pick points to forget (random, a class, near neighbours of a point, by
  hand, or from a file), look at them, save them and build their oracles.
- **KLoM explorer** — for a forget set and a method, the distribution of KLoM over forget,
  retain and validation points beside the noise floor; click any point to see its image and
  its margins under the method's models and under the oracles.
- **Unlearn** — run an unlearning method on a forget set over budgets (and one swept
  hyperparameter) as a background job; what the method still needs (oracles, a datamodel) is
  built first.
- **Compare** — every run on a forget set: KLoM against compute, spent and consumed, beside
  the noise floor; then point by point, which points each method over- or under-unlearns.
- **Attribution** — from a datamodel fitted on models trained on random halves of the data:
  which training points raise or lower a point's margin, which points the models memorize,
  which points a forget set moves, and whether memorized points are the hard ones to unlearn.
- **Linear model** — why *matching the oracle's outputs* (Oracle Matching) converges to the
  retrained model while gradient descent on the retain set stalls, in a ridge regression you
  can re-run with your own parameters.
"""
)
with st.expander("How to read the lab: the concepts in one place"):
    st.markdown(components.concepts("Margin", "Oracle", "KLoM", "Noise floor", "Saturation",
                                    "Splits", "Datamodels and the Attribution page"))  # fmt: skip
    st.caption("From docs/concepts.md in the lab's folder, which also explains every page.")
st.info(
    "Everything you run is stored in a local DuckDB database, so results stay after you close "
    "the browser and can be compared later."
)
