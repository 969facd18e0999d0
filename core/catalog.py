"""Listings of what the store holds, in plain SQL: no engine module, so no torch.

The command line's ``models`` command reads these without loading the training code;
``core.zoo`` re-exports them for everything else.
"""

from __future__ import annotations

import pandas as pd

from .store import Store


def list_model_sets(store: Store) -> pd.DataFrame:
    """Every model set with its progress and mean accuracies, newest first."""
    return store.query_df(
        """SELECT s.id, s.kind, s.role, s.dataset, s.arch, s.n_models, s.forget_set_id,
                  s.fraction, s.status,
                  coalesce(sum(c.n_models), 0)::INTEGER AS models_done,
                  sum(c.val_acc * c.n_models) / nullif(sum(c.n_models), 0) AS mean_val_acc,
                  sum(c.train_acc * c.n_models) / nullif(sum(c.n_models), 0) AS mean_train_acc,
                  s.device, coalesce(sum(c.wall_time_s), 0) AS wall_time_s, s.created_at
           FROM model_sets s LEFT JOIN model_chunks c ON c.set_id = s.id
           GROUP BY ALL ORDER BY s.id DESC"""
    )
