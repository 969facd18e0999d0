"""Forget sets, and the models retrained without them (oracles and the noise floor).

- ``sets``: how points are chosen (``ForgetSet``; random, by class, nearest neighbours, presets)
- ``uploads``: forget sets from uploaded index files
- ``datamodel_sets``: forget sets from a datamodel (principal components, nearest neighbours)
- ``make``: ``make_forget_set`` — any kind from user parameters
- ``store``: stored forget sets (``save_forget_set``, ``get_forget_set``, ``list_forget_sets``)
- ``oracles``: oracle and noise-floor groups of one recipe (``build_oracles``, ``pair_sets``)

Uses ``common``, ``store``, ``zoo`` and ``attribution``; never imports streamlit.
"""
