"""Home: what the lab is, for a newcomer."""

import streamlit as st

from dashboard import components, data_access
from dashboard.jobs_panel import jobs_panel, start_job

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

st.subheader("Start here")
st.markdown(
    "One click trains everything the KLoM explorer needs on the embedded digits dataset: 100 "
    "original models, three forget sets with 2 × 100 oracle models each, and a *do-nothing* "
    "evaluation of each (a few minutes on a laptop CPU; the page stays usable meanwhile)."
)
path = data_access.db_path()
evals = data_access.evaluations_df(path) if data_access.store() is not None else None
if evals is not None and not evals.empty:
    st.success("The lab has evaluations to look at: start with the KLoM explorer.")
    st.page_link("views/klom.py", label="Open the KLoM explorer", icon=":material/query_stats:",
                 query_params={"run": str(int(evals["run_id"].iloc[0]))})  # fmt: skip
    again = "Run the quick demo again (reuses what is stored)"
else:
    again = "Run the quick demo"
if st.button(again, type="primary" if evals is None or evals.empty else "secondary",
             key="home_demo"):  # fmt: skip
    start_job("demo", {"models": 100})
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
