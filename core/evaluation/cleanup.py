"""Deleting a forget set with everything made for it: its oracle and noise-floor groups, every
run scored against them (evaluations, diverged runs, unlearned sets) and their files, in one
transaction; the files go after the commit."""

from __future__ import annotations

from core.evaluation.divergence import delete_diverged
from core.forget.store import get_forget_set
from core.store.db import Store
from core.zoo.model_sets import delete_runs_in


def delete_forget_set(store: Store, fs_id: int) -> None:
    """Delete a forget set with its oracle sets and evaluations, in one transaction."""
    get_forget_set(store, fs_id)
    sets = store.query_df("SELECT id FROM model_sets WHERE forget_set_id = ?", [fs_id])[
        "id"
    ].tolist()
    with store.transaction() as con:
        runs = [
            r[0]
            for r in con.execute(
                "SELECT run_id FROM evaluations WHERE forget_set_id = ?", [fs_id]
            ).fetchall()
        ]
        delete_runs_in(con, runs)
        delete_diverged(con, fs_id)
        con.execute("DELETE FROM model_chunks WHERE set_id IN (SELECT unnest(?::BIGINT[]))", [sets])
        con.execute("DELETE FROM model_sets WHERE forget_set_id = ?", [fs_id])
        con.execute("DELETE FROM forget_sets WHERE id = ?", [fs_id])
    for s in sets:
        store.remove_files(f"model_sets/{s}")
    for r in runs:
        store.file_path(f"evaluations/{r}.margins.npy").unlink(missing_ok=True)
