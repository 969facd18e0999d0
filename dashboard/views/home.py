"""Home: what the lab is, for a newcomer."""

import streamlit as st

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
if st.button("Run the quick demo", type="primary", key="home_demo"):
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
- **Linear model** — why *matching the oracle's outputs* (Oracle Matching) converges to the
  retrained model while gradient descent on the retain set stalls, in a ridge regression you
  can re-run with your own parameters.
"""
)
st.info(
    "Everything you run is stored in a local DuckDB database, so results stay after you close "
    "the browser and can be compared later."
)
