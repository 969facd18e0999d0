"""Results made elsewhere, in and out.

- ``imports``: margins of ensembles trained elsewhere, and forget sets from index files
- ``easydub``: EasyDUB's dataset directory (the seed paper's CIFAR-10 setting) as one import
- ``easydub_weights``: its checkpoints loaded into the stacked ensemble
- ``easydub_export``: the lab's models and runs written in EasyDUB's layout

Uses ``evaluation`` and below; never imports streamlit.
"""
