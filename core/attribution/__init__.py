"""Datamodels: linear maps from the 0/1 training mask of a model to every point's outputs.

For target point t, ``f_t(mask) = w_t · mask + b_t`` predicts t's margin (or its K logits) of a
model trained on the train points the mask selects; fitted on M subset models of the originals'
recipe, each trained on its own random α-share of the train split. Removing a forget set F is
predicted to shift t's output by ``−Σ_{j∈F} w_t[j]`` (Datamodel-Direct).

- ``regression``: ridge in closed form for every target at once, the ℓ1 fit, LDS (pure math)
- ``subsets``: the subset models (a ``subset`` model set) and their outputs
- ``fit``: ``fit_datamodel`` — train missing subsets, choose λ by LDS, store weights and scores
- ``datamodels``: stored datamodels and the page's readers (weights, top influencers,
  self-influence, points a forget set moves most)
- ``forget``: forget sets from datamodels (principal components, nearest neighbours)
- ``defaults``: the default M (the fewest subset models that read at LDS ≥ 0.5 on digits,
  measured), and how a datamodel's LDS is worded (``lds_note``: "datamodel LDS 0.19 (weak)")

Never imports streamlit.
"""
