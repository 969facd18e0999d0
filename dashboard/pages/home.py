"""Home: what the lab is, for a newcomer."""

import streamlit as st

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

st.subheader("What the pages show")
st.markdown(
    """
- **Linear model** — why *matching the oracle's outputs* (Oracle Matching) converges to the
  retrained model while gradient descent on the retain set stalls, in a ridge regression you
  can re-run with your own parameters.
"""
)
st.info(
    "Everything you run is stored in a local DuckDB database, so results stay after you close "
    "the browser and can be compared later."
)
