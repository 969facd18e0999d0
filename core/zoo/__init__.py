"""The model zoo: datasets, architectures, recipes and ensembles of N models trained as one.

- ``data``: digits (embedded) and CIFAR-10 (through torchvision) as one point space
- ``augment``: flips and shifts on the device, per model
- ``models``: the architectures (MLP, CNN, ResNet-9, EasyDUB's ResNet-9), stacked N at once
- ``recipe``: a training config and its identity (``recipe_id``)
- ``margins``: ``margins_from_logits`` (``z_y − logsumexp_{j≠y} z_j``)
- ``ensemble``: ``Ensemble``, ``train_ensemble`` — N models on one fixed schedule
- ``tasks``: a chunk of models as a pure task (spec in, arrays out, no store)
- ``executors``: where tasks run (here, or Ray); the driver alone writes
- ``model_sets``: stored sets of models, their margins, masks and weights; deleting them
- ``build``: creating, building and resuming model sets (``create_model_set``,
  ``build_model_set``, ``load_ensemble``)

Uses ``common`` and ``store``; never imports streamlit.
"""
