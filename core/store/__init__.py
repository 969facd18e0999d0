"""The store: one DuckDB file (default ``data/lab.duckdb``) plus array files beside it.

- ``db``: ``Store`` (connections, transactions, ``held()``, array files), ``resolve_db_path``
- ``schema``: the tables and their migrations (a lab from an older version opens and is migrated)
- ``files``: array files written durably (fsync, rename) and read back
- ``check``: integrity of a database file, free disk space
- ``wal``: failed checkpoints and pending write-ahead logs (recovered, not called damage)
- ``claims``: one builder per model set (a claim row with pid and process start time)

Below every package but ``common``; never imports streamlit.
"""
