"""The linear-model study: why matching converges where gradient descent stalls.

- ``study``: ridge regression on Gaussian data; GD, OM, OM on retain only, GD+GA (the math)
- ``runs``: stored runs of the study

Uses ``common`` and ``store``; never imports streamlit.
"""
