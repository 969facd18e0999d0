"""The DuckDB store: round trips, schema, and refusals that leave files untouched."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from core.common.errors import NotFoundError, StoreError
from core.linear.runs import linear_curves, linear_outcomes, list_linear_runs, run_and_store
from core.linear.study import LinearConfig
from core.store.db import MIGRATIONS, Store


def test_linear_round_trip_survives_reopen(db_path):
    cfg = LinearConfig(steps=200)
    run_id, curves = run_and_store(Store(db_path), cfg)
    reopened = Store(db_path)  # a new object: everything comes from the file
    df = linear_curves(reopened, run_id)
    for c in curves:
        got = df[df["method"] == c.method].sort_values("step")
        np.testing.assert_array_equal(got["step"].to_numpy(), np.arange(len(c.rel_dist)))
        np.testing.assert_array_equal(got["rel_dist"].to_numpy(), c.rel_dist)
        np.testing.assert_array_equal(got["objective"].to_numpy(), c.objective)
    out = linear_outcomes(reopened, run_id).set_index("method")
    for c in curves:
        assert out.loc[c.method, "status"] == c.outcome.status
    row = reopened.run(run_id)
    assert LinearConfig.from_dict(row["config"]) == cfg
    assert row["kind"] == "linear" and row["seed"] == cfg.seed and row["device"] == "cpu"
    assert row["code_version"] and row["wall_time_s"] > 0 and row["created_at"] is not None
    assert list(list_linear_runs(reopened)["id"]) == [run_id]


def test_schema_version_is_recorded(db_path):
    assert Store(db_path).schema_version() == len(MIGRATIONS)


def test_newer_schema_is_refused(db_path):
    Store(db_path).create()
    con = duckdb.connect(str(db_path))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="newer"):
        Store(db_path).check()
    with pytest.raises(StoreError, match="newer"):
        Store(db_path).create()


def test_unknown_run(db_path):
    with pytest.raises(NotFoundError, match="no run with id 42"):
        Store(db_path).run(42)


def test_not_a_duckdb_file_is_left_untouched(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_bytes(b"these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a DuckDB database"):
        Store(path).check()
    with pytest.raises(StoreError, match="not a DuckDB database"):
        Store(path).create()
    assert path.read_bytes() == before


def test_unwritable_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        Store(blocker / "lab.duckdb").create()


def test_failed_write_leaves_nothing(db_path, monkeypatch):
    store = Store(db_path)
    run_and_store(store, LinearConfig(steps=20))
    import core.linear.runs as lr

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(lr.pd.DataFrame, "insert", boom)  # fails inside the transaction
    with pytest.raises(RuntimeError):
        run_and_store(store, LinearConfig(steps=20, seed=1))
    assert len(list_linear_runs(store)) == 1
    assert store.query_df("SELECT count(*) AS n FROM linear_curves")["n"][0] == 4 * 21


def test_locked_database_gives_clear_message(db_path):
    Store(db_path).create()
    import subprocess
    import sys
    import textwrap

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(db_path)!r})
                print('ready', flush=True)
                time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match="in use by another process"):
            Store(db_path, timeout=0.3).run(1)
    finally:
        holder.kill()
        holder.wait()


def test_schema_4_moves_the_old_accuracy_aside(tmp_path):
    """Summaries stored before schema 4 held the share of positive margins as "accuracy":
    the figure is kept in its own column and accuracy becomes unknown (NULL)."""
    import duckdb

    from core.store.schema import MIGRATIONS

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for m in MIGRATIONS[:3]:
        m(con)
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    con.execute(
        "INSERT INTO klom_summaries VALUES (7, 'val', 'klom', 0.1, 0.5, 0.9, 0.2, 450, 0.9738)"
    )
    con.close()
    store = Store(path)
    with store.transaction() as c:  # any write migrates
        c.execute("SELECT 1")
    row = store.query_df("SELECT accuracy, positive_margin_share FROM klom_summaries")
    assert row["accuracy"].isna().all() and row["positive_margin_share"][0] == 0.9738
    assert store.schema_version() == len(MIGRATIONS)
