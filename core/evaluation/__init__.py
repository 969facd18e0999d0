"""Scoring: KLoM point by point against the oracles, and everything read from scored runs.

- ``klom``: KLoM, the noise floor, splits, summaries, accuracy (the definitions of DESIGN.md)
- ``run``: ``evaluate`` (run a method and score it), ``evaluation`` (a stored run)
- ``divergence``: diverged runs, recorded and never scored
- ``audit_math`` and ``audits``: membership audits (U-LiRA, population MIA) and stored audits
- ``compare``: the runs of a forget set, Pareto fronts, point by point
- ``collateral``: retain / val KLoM by decile of proximity to the forget set
- ``models_needed``: KLoM's P95 and its floor against the number of models per side
- ``cards``, ``card_checks`` and ``reproduce``: a run's reproducibility card, and its rebuild
- ``cleanup``: deleting a forget set with everything made for it

Uses every package below it (``unlearning`` included); never imports streamlit.
"""
