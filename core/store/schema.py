"""The database schema as an append-only list of migrations.

Migration ``i`` brings a database from schema version ``i`` to ``i + 1``; ``Store`` applies the
pending ones, in one transaction, every time it opens a file.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb


def _m1(con: duckdb.DuckDBPyConnection) -> None:
    """Runs and the linear study's curves."""
    con.execute("CREATE SEQUENCE IF NOT EXISTS run_id_seq START 1")
    con.execute(
        """CREATE TABLE IF NOT EXISTS runs (
            id BIGINT PRIMARY KEY DEFAULT nextval('run_id_seq'),
            kind VARCHAR NOT NULL,            -- 'linear', 'evaluation', ...
            config JSON NOT NULL,
            seed BIGINT,
            code_version VARCHAR NOT NULL,
            device VARCHAR NOT NULL,
            wall_time_s DOUBLE NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            summary JSON
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS linear_curves (
            run_id BIGINT NOT NULL,
            method VARCHAR NOT NULL,
            step INTEGER NOT NULL,
            rel_dist DOUBLE NOT NULL,
            objective DOUBLE NOT NULL,
            PRIMARY KEY (run_id, method, step)
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS linear_outcomes (
            run_id BIGINT NOT NULL,
            method VARCHAR NOT NULL,
            step_size DOUBLE NOT NULL,
            final_rel_dist DOUBLE NOT NULL,
            min_rel_dist DOUBLE NOT NULL,
            step_below_1e3 INTEGER,
            step_below_1e6 INTEGER,
            diverged BOOLEAN NOT NULL,
            diverged_at INTEGER,
            status VARCHAR NOT NULL,
            PRIMARY KEY (run_id, method)
        )"""
    )


def _m2(con: duckdb.DuckDBPyConnection) -> None:
    """Model sets (N models of one kind) and their chunks (each committed once)."""
    con.execute("CREATE SEQUENCE IF NOT EXISTS model_set_id_seq START 1")
    con.execute(
        """CREATE TABLE IF NOT EXISTS model_sets (
            id BIGINT PRIMARY KEY DEFAULT nextval('model_set_id_seq'),
            kind VARCHAR NOT NULL,            -- original | oracle | subset | unlearned
            role VARCHAR NOT NULL,            -- main | floor (the oracles' second group)
            dataset VARCHAR NOT NULL,
            arch VARCHAR NOT NULL,
            n_models INTEGER NOT NULL,
            chunk_size INTEGER NOT NULL,
            seed BIGINT NOT NULL,             -- model i is trained from seed + i
            fraction DOUBLE,                  -- subset sets: the share of train points per model
            forget_set_id BIGINT,             -- oracle / unlearned sets
            train_config JSON NOT NULL,
            data_meta JSON NOT NULL,
            code_version VARCHAR NOT NULL,
            device VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- building | complete
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS model_chunks (
            set_id BIGINT NOT NULL,
            chunk INTEGER NOT NULL,
            first_model INTEGER NOT NULL,
            n_models INTEGER NOT NULL,
            weights_file VARCHAR NOT NULL,    -- relative to the store's files folder
            margins_file VARCHAR NOT NULL,    -- (n_models, n_train + n_val) float32
            masks_file VARCHAR NOT NULL,      -- (n_models, n_train) bool
            train_acc DOUBLE NOT NULL,        -- mean over the chunk's models
            val_acc DOUBLE NOT NULL,
            wall_time_s DOUBLE NOT NULL,
            device VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (set_id, chunk)
        )"""
    )


def _m3(con: duckdb.DuckDBPyConnection) -> None:
    """Forget sets, KLoM evaluations (per point and per split) and background jobs."""
    con.execute("CREATE SEQUENCE IF NOT EXISTS forget_set_id_seq START 1")
    con.execute(
        """CREATE TABLE IF NOT EXISTS forget_sets (
            id BIGINT PRIMARY KEY DEFAULT nextval('forget_set_id_seq'),
            name VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,            -- random | class | knn_pixel | knn_feature | ...
            params JSON NOT NULL,
            indices BIGINT[] NOT NULL,        -- sorted, unique train indices
            size INTEGER NOT NULL,
            warnings JSON NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            UNIQUE (dataset, name)
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS evaluations (
            run_id BIGINT PRIMARY KEY,        -- the runs row (config, seed, device, time)
            forget_set_id BIGINT NOT NULL,
            method VARCHAR NOT NULL,
            unlearned_set_id BIGINT,          -- NULL when the method keeps only margins
            original_set_id BIGINT NOT NULL,
            oracle_set_id BIGINT NOT NULL,
            floor_set_id BIGINT NOT NULL,
            compute_cost DOUBLE NOT NULL,     -- example-gradients spent / those of retraining
            margins_file VARCHAR NOT NULL     -- the unlearned models' margins (n_models, n_points)
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS klom_points (
            run_id BIGINT NOT NULL,
            point INTEGER NOT NULL,           -- global index: train 0…n_train−1, then val
            split VARCHAR NOT NULL,           -- forget | retain | val
            klom DOUBLE NOT NULL,             -- unlearned vs oracle
            floor DOUBLE NOT NULL,            -- second oracle group vs oracle
            gap DOUBLE NOT NULL,              -- mean margin: unlearned − oracle
            PRIMARY KEY (run_id, point)
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS klom_summaries (
            run_id BIGINT NOT NULL,
            split VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,          -- klom | floor
            p50 DOUBLE, p95 DOUBLE, p99 DOUBLE, mean DOUBLE,
            count INTEGER NOT NULL,
            accuracy DOUBLE,                  -- mean accuracy of the scored models on the split
            PRIMARY KEY (run_id, split, metric)
        )"""
    )
    con.execute("CREATE SEQUENCE IF NOT EXISTS job_id_seq START 1")
    con.execute(
        """CREATE TABLE IF NOT EXISTS jobs (
            id BIGINT PRIMARY KEY DEFAULT nextval('job_id_seq'),
            kind VARCHAR NOT NULL,
            params JSON NOT NULL,
            status VARCHAR NOT NULL,          -- queued | running | done | failed | cancelled | interrupted
            progress DOUBLE NOT NULL DEFAULT 0,
            message VARCHAR NOT NULL DEFAULT '',
            result JSON,
            pid INTEGER,
            cancel_requested BOOLEAN NOT NULL DEFAULT false,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            started_at TIMESTAMP,
            updated_at TIMESTAMP,
            finished_at TIMESTAMP
        )"""
    )


def _m4(con: duckdb.DuckDBPyConnection) -> None:
    """Recipe identity and pairing of model sets; argmax correctness files of chunks.

    Sets stored before this migration were trained with the per-epoch schedule (ragged batch
    dropped, so the number of steps depended on the set's size): they get a ``legacy-`` recipe
    id that no new set shares, so they are never paired with sets trained on the fixed schedule.
    """
    con.execute("ALTER TABLE model_sets ADD COLUMN IF NOT EXISTS recipe_id VARCHAR")
    con.execute("ALTER TABLE model_sets ADD COLUMN IF NOT EXISTS base_set_id BIGINT")
    con.execute(
        "UPDATE model_sets SET recipe_id = 'legacy-' || substr(md5(dataset || '|' || arch || '|' "
        "|| train_config), 1, 12) WHERE recipe_id IS NULL"
    )
    # (n_models, n_points) bool: the argmax prediction equals the label; NULL for old chunks
    con.execute("ALTER TABLE model_chunks ADD COLUMN IF NOT EXISTS correct_file VARCHAR")
    # Evaluations stored before were given the share of positive margins as "accuracy": that
    # figure moves to its own column, and accuracy (argmax) is unknown (NULL) for them, so a
    # new evaluation is computed rather than reused. Chunk accuracies are left as they were.
    con.execute("ALTER TABLE klom_summaries ADD COLUMN IF NOT EXISTS positive_margin_share DOUBLE")
    con.execute(
        "UPDATE klom_summaries SET positive_margin_share = accuracy, accuracy = NULL "
        "WHERE positive_margin_share IS NULL AND accuracy IS NOT NULL"
    )


def _m5(con: duckdb.DuckDBPyConnection) -> None:
    """Who runs a job: the worker's process start time, stored next to its pid.

    A pid alone can be reused by an unrelated process once the worker is gone; the pair
    (pid, start time) names one process for the life of the machine.
    """
    con.execute("ALTER TABLE jobs ADD COLUMN IF NOT EXISTS worker_start VARCHAR")


def _m6(con: duckdb.DuckDBPyConnection) -> None:
    """Membership audits of evaluations (``core.evaluation.audits``): U-LiRA per forget point and the
    population MIA per model, each beside its oracle-vs-oracle floor. Evaluations stored before
    have no rows here until ``python -m core audit`` computes them from their stored margins."""
    con.execute(
        """CREATE TABLE IF NOT EXISTS audits (
            run_id BIGINT PRIMARY KEY,        -- the evaluation audited
            config JSON NOT NULL,             -- seed, variance floor, models per side, ...
            code_version VARCHAR NOT NULL,
            wall_time_s DOUBLE NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS audit_points (
            run_id BIGINT NOT NULL,
            point INTEGER NOT NULL,           -- a forget point (global index)
            ulira_bacc DOUBLE NOT NULL,       -- U-LiRA balanced accuracy, unlearned vs oracle
            ulira_floor_bacc DOUBLE NOT NULL, -- the same, second oracle group vs oracle
            mia_member_share DOUBLE NOT NULL, -- share of unlearned models calling it a member
            mia_floor_member_share DOUBLE NOT NULL,  -- the same over the second oracle group
            PRIMARY KEY (run_id, point)
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS audit_summaries (
            run_id BIGINT NOT NULL,
            audit VARCHAR NOT NULL,           -- ulira | mia
            metric VARCHAR NOT NULL,          -- bacc_mean, tpr_at_1pct_fpr, forget_member_share, ...
            value DOUBLE,                     -- the unlearned models
            floor DOUBLE,                     -- the same figure, oracle vs oracle
            PRIMARY KEY (run_id, audit, metric)
        )"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS audit_models (
            run_id BIGINT NOT NULL,
            side VARCHAR NOT NULL,            -- unlearned | floor (the second oracle group)
            model INTEGER NOT NULL,           -- row of that group's margins
            forget_member_share DOUBLE NOT NULL,  -- population MIA, per model
            retain_member_share DOUBLE NOT NULL,
            val_member_share DOUBLE NOT NULL,
            PRIMARY KEY (run_id, side, model)
        )"""
    )


def _m7(con: duckdb.DuckDBPyConnection) -> None:
    """Datamodels: linear maps from subset models' training masks to every point's outputs.

    Numbered 7: written beside ``_m6`` (audits); the two create different objects.
    """
    con.execute("CREATE SEQUENCE IF NOT EXISTS datamodel_id_seq START 1")
    con.execute(
        """CREATE TABLE IF NOT EXISTS datamodels (
            id BIGINT PRIMARY KEY DEFAULT nextval('datamodel_id_seq'),
            dataset VARCHAR NOT NULL,
            subset_set_id BIGINT NOT NULL,    -- the subset models' set (its first n_models)
            original_set_id BIGINT,           -- the originals whose recipe it was fitted for
            recipe_id VARCHAR NOT NULL,       -- shared by the subset models and the originals
            n_models INTEGER NOT NULL,        -- M: subset models used (fit + held out)
            n_fit INTEGER NOT NULL,           -- models the stored weights were fitted on
            n_heldout INTEGER NOT NULL,       -- models LDS is measured on (never fitted on)
            fraction DOUBLE NOT NULL,         -- α: share of train points per subset model
            kind VARCHAR NOT NULL,            -- ridge | lasso
            target VARCHAR NOT NULL,          -- margin | logits
            lam DOUBLE NOT NULL,              -- ridge: λ; lasso: α of the ℓ1 penalty
            n_train INTEGER NOT NULL,
            n_targets INTEGER NOT NULL,       -- train then val points (global point order)
            num_classes INTEGER NOT NULL,
            lds_train DOUBLE,                 -- mean Spearman over held-out models, train targets
            lds_val DOUBLE,                   -- the same, val targets
            lds_curve JSON NOT NULL,          -- [{"m": fit models, "lds_train", "lds_val"}, ...]
            weights_file VARCHAR NOT NULL,    -- (n_targets, n_train) or (n_targets, K, n_train)
            bias_file VARCHAR NOT NULL,       -- (n_targets,) or (n_targets, K)
            lds_file VARCHAR NOT NULL,        -- (n_targets,) float64 Spearman per target (NaN: none)
            config JSON NOT NULL,             -- λ grid and its scores, holdout, seeds
            code_version VARCHAR NOT NULL,
            device VARCHAR NOT NULL,
            wall_time_s DOUBLE NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )"""
    )


def _m8(con: duckdb.DuckDBPyConnection) -> None:
    """Model sets imported as margins only (``core.interchange.imports``): no weights, a source.

    ``model_sets.source`` is NULL for a trained set; for an imported one it is JSON naming the
    file it came from (name, sha-256 of the rows imported, which rows). Its one chunk has no
    weights file (``weights_file`` NULL) and no correctness file.
    """
    con.execute("ALTER TABLE model_sets ADD COLUMN IF NOT EXISTS source JSON")
    con.execute("ALTER TABLE model_chunks ALTER COLUMN weights_file DROP NOT NULL")


MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [
    _m1, _m2, _m3, _m4, _m5, _m6, _m7, _m8,
]  # fmt: skip
