"""Damaged, foreign, missing and read-only database files: every command refuses with one line
naming the file, and the file is never changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import duckdb
import pytest

from core.cli import main
from core.common.errors import ConfigError, StoreError
from core.forget.sets import manual_forget_set
from core.forget.store import list_forget_sets, save_forget_set
from core.linear.runs import run_and_store
from core.linear.study import LinearConfig
from core.store import check as store_check
from core.store.db import Store
from core.store.schema import MIGRATIONS
from core.zoo.build import list_model_sets
from tests.conftest import ROOT

COMMANDS = [
    ["models"],
    ["forget-set", "list"],
    ["forget-set", "show", "1"],
    ["jobs"],
    ["forget-set", "create", "--kind", "manual", "--indices", "1,2", "--name", "new"],
    ["linear", "--steps", "3"],
]


def small_lab(path) -> Store:
    """Two forget sets, a linear run and ~2 MB of KLoM rows: several blocks."""
    store = Store(path).create()
    for k in (5, 10):
        save_forget_set(store, manual_forget_set(range(k), 1347, name=f"m{k}"), "digits")
    run_and_store(store, LinearConfig(steps=50))
    with store.transaction() as con:
        con.execute(
            "INSERT INTO klom_points SELECT 1, i, 'retain', random(), random(), random() "
            "FROM range(60000) r(i)"
        )
    return store


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(argv, db, capsys) -> tuple[int, str]:
    code = main([*argv, "--db", str(db)])
    err = capsys.readouterr().err
    return code, err


def assert_refused_everywhere(db, capsys, needle: str) -> None:
    before = digest(db)
    for argv in COMMANDS:
        code, err = run_cli(argv, db, capsys)
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(db) in lines[0], err
        assert needle in lines[0], (argv, lines[0])
    assert digest(db) == before
    assert not db.with_name(db.name + ".wal").exists()


def test_garbage_in_a_used_block_is_refused_by_every_command(tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    small_lab(db)
    con = duckdb.connect(str(db), read_only=True)
    block = con.execute(
        "SELECT min(block_id) FROM pragma_storage_info('forget_sets') WHERE block_id >= 0"
    ).fetchone()[0]
    con.close()
    header = store_check.read_header(db)
    with open(db, "r+b") as fh:  # 64 KB of garbage in the middle of the forget sets' block
        fh.seek(store_check.BLOCKS_START + block * header.block_size + header.block_size // 4)
        fh.write(os.urandom(65536))
    assert_refused_everywhere(db, capsys, "is damaged")


def test_half_truncated_copy_is_refused(tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    small_lab(db)
    os.truncate(db, db.stat().st_size // 2)
    assert_refused_everywhere(db, capsys, "truncated")


def test_damaged_header_is_refused(tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    small_lab(db)
    with open(db, "r+b") as fh:
        fh.seek(4096 + 100)
        fh.write(b"\xff" * 8)
    assert_refused_everywhere(db, capsys, "a header at byte 4096 fails its checksum")


def test_failing_block_refuses_writes_but_reads_go_on(tmp_path, monkeypatch):
    """A block that fails its checksum may be unused: reads go on if DuckDB reads every table,
    but nothing is ever written into the file."""
    db = tmp_path / "lab.duckdb"
    small_lab(db)
    before = digest(db)
    monkeypatch.setattr(store_check, "damaged_blocks", lambda path, header: [1])
    store = Store(db)
    assert len(list_forget_sets(store)) == 2
    with pytest.raises(StoreError, match="damaged.*block at byte"):
        save_forget_set(store, manual_forget_set([7], 1347, name="x"), "digits")
    with pytest.raises(StoreError, match="damaged"):
        run_and_store(Store(db), LinearConfig(steps=3))
    assert digest(db) == before


def test_corruption_met_during_a_query_names_the_file(tmp_path):
    """Damage found only by DuckDB (the checksum pass already trusted the file)."""
    db = tmp_path / "lab.duckdb"
    store = small_lab(db)
    store.check()  # verified: later reads only check the header
    con = duckdb.connect(str(db), read_only=True)
    block = con.execute(
        "SELECT max(block_id) FROM pragma_storage_info('klom_points') WHERE block_id >= 0"
    ).fetchone()[0]
    con.close()
    with open(db, "r+b") as fh:
        fh.seek(store_check.BLOCKS_START + block * 262_144 + 8)
        fh.write(os.urandom(262_144 - 8))
    before = digest(db)
    with pytest.raises(StoreError, match=f"{db}.*damaged"):
        store.query_df("SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM klom_points")
    assert digest(db) == before


@pytest.mark.parametrize("kind", ["sqlite", "text", "empty"])
def test_foreign_files_never_reach_duckdb(tmp_path, monkeypatch, capsys, kind):
    db = tmp_path / "lab.duckdb"
    if kind == "sqlite":
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE a (x)")
        con.commit()
        con.close()
    else:
        db.write_bytes(b"" if kind == "empty" else b"my notes\n" * 500)
    real = duckdb.connect

    def guarded(database=":memory:", *a, **k):
        assert str(database) != str(db), "a foreign file was handed to duckdb.connect"
        return real(database, *a, **k)

    monkeypatch.setattr(duckdb, "connect", guarded)
    needle = {"sqlite": "it is a SQLite database", "text": "not a DuckDB", "empty": "empty file"}
    assert_refused_everywhere(db, capsys, needle[kind])


def test_a_duckdb_file_of_another_application_is_left_alone(tmp_path):
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE sales (x INT)")
    con.close()
    before = digest(db)
    for action in (Store(db).check, Store(db).create):
        with pytest.raises(StoreError, match="not an Unlearning Lab one"):
            action()
    assert digest(db) == before


def test_missing_file_reads_as_empty_and_creates_nothing(tmp_path, capsys):
    db = tmp_path / "typo" / "lab.duckdb"
    assert list_model_sets(Store(db)).empty and list_forget_sets(Store(db)).empty
    with pytest.raises(StoreError, match="does not exist"):
        Store(db, must_exist=True).check()
    for argv in COMMANDS[:4]:
        code, err = run_cli(argv, db, capsys)
        assert code == 2 and err.count("\n") == 1 and f"{db} does not exist" in err
    assert not (tmp_path / "typo").exists()


def test_reads_open_read_only_and_change_nothing(tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    small_lab(db)
    stat = db.stat()
    before = digest(db)
    db.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        for argv in COMMANDS[:4]:
            code, err = run_cli(argv, db, capsys)
            assert code == 0, err
    finally:
        tmp_path.chmod(0o755)
        db.chmod(0o644)
    assert digest(db) == before and db.stat().st_mtime_ns == stat.st_mtime_ns
    assert [p.name for p in tmp_path.iterdir()] == ["lab.duckdb"]  # no .wal, no folders


def test_reads_work_while_another_process_reads(tmp_path):
    """Another reader holds a shared lock: a write (the old migrate-on-open) would wait."""
    db = tmp_path / "lab.duckdb"
    small_lab(db)
    code = f"""
        import duckdb, time
        con = duckdb.connect({str(db)!r}, read_only=True)
        print('ready', flush=True)
        time.sleep(30)
    """
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert len(list_forget_sets(Store(db, timeout=0.2))) == 2
    finally:
        holder.kill()
        holder.wait()


def _schema_3(path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    for migration in MIGRATIONS[:3]:
        migration(con)
    con.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    con.close()


def test_outdated_read_only_file_is_refused_clearly(tmp_path, monkeypatch):
    db = tmp_path / "old.duckdb"
    _schema_3(db)
    before = digest(db)
    monkeypatch.setattr(Store, "_writable", lambda self: False)  # root writes anything
    with pytest.raises(StoreError, match="schema 3, older.*read-only"):
        list_forget_sets(Store(db))
    assert digest(db) == before


def test_outdated_writable_file_is_upgraded_by_a_read(tmp_path):
    db = tmp_path / "old.duckdb"
    _schema_3(db)
    assert list_forget_sets(Store(db)).empty
    assert Store(db).schema_version() == len(MIGRATIONS)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1e9"])
def test_bad_lab_db_timeout(monkeypatch, tmp_path, capsys, value):
    monkeypatch.setenv("LAB_DB_TIMEOUT", value)
    with pytest.raises(ConfigError, match="LAB_DB_TIMEOUT must be a number of seconds"):
        Store(tmp_path / "lab.duckdb")
    code, err = run_cli(["models"], tmp_path / "lab.duckdb", capsys)
    assert code == 2 and "LAB_DB_TIMEOUT" in err and err.count("\n") == 1


def test_a_partial_block_past_the_end_is_growth_not_damage(tmp_path):
    """A write that failed for lack of space leaves a partial block past every known block;
    DuckDB ignores it and overwrites it later, so the lab stays usable."""
    db = tmp_path / "lab.duckdb"
    store = Store(db).create()
    save_forget_set(store, manual_forget_set([1], 1347, name="a"), "digits")
    header = store_check.read_header(db)
    assert header.size == store_check.BLOCKS_START + header.block_count * header.block_size
    with open(db, "ab") as fh:
        fh.write(os.urandom(100_000))
    store = Store(db)
    assert len(list_forget_sets(store)) == 1
    save_forget_set(store, manual_forget_set([2], 1347, name="b"), "digits")
    assert len(list_forget_sets(Store(db))) == 2


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB tmpfs (needs root and mount; skipped where unavailable)."""
    from tests.fault_fixtures import tmpfs

    with tmpfs(tmp_path / "disk", "2m") as mnt:
        yield mnt


def test_a_really_full_disk(tiny_disk):
    db = tiny_disk / "lab.duckdb"
    store = Store(db).create()
    save_forget_set(store, manual_forget_set([1], 1347, name="a"), "digits")
    with (
        pytest.raises(StoreError, match=f"no space left on the disk holding {db}.*nothing"),
        store.transaction() as con,
    ):
        con.execute(
            "INSERT INTO klom_points SELECT 1, i, 'retain', random(), random(), random() "
            "FROM range(2000000) r(i)"
        )
    assert len(list_forget_sets(Store(db))) == 1  # still readable, nothing half-written
    assert Store(db).query_df("SELECT count(*) AS n FROM klom_points")["n"][0] == 0
    subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_disk)], check=True)
    save_forget_set(Store(db), manual_forget_set([2], 1347, name="b"), "digits")
    assert len(list_forget_sets(Store(db))) == 2


def _as_plain_user(argv: list[str]) -> list[str] | None:
    """``argv`` run as root without the right to ignore file permissions (the CLI as a user
    would see a read-only file), or None where that cannot be arranged."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        return None
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", *argv]


def _read_only_lab(tmp_path, make) -> tuple:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "lab.duckdb"
    make(db)
    db.chmod(0o444)
    folder.chmod(0o555)
    return folder, db


def _cli_as_user(argv, db):
    cmd = _as_plain_user([sys.executable, "-m", "core", *argv, "--db", str(db)])
    if cmd is None:
        pytest.skip("needs root and setpriv to drop the permission override")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_read_only_lab_can_be_listed(tmp_path):
    folder, db = _read_only_lab(tmp_path, small_lab)
    before = digest(db)
    try:
        for argv in COMMANDS[:4]:
            res = _cli_as_user(argv, db)
            assert res.returncode == 0, res.stderr
        res = _cli_as_user(COMMANDS[4], db)
        assert res.returncode == 2 and "not writable" in res.stderr
        assert res.stderr.count("\n") == 1
    finally:
        folder.chmod(0o755)
    assert digest(db) == before and [p.name for p in folder.iterdir()] == ["lab.duckdb"]


def test_a_read_only_outdated_lab_says_so(tmp_path):
    folder, db = _read_only_lab(tmp_path, _schema_3)
    before = digest(db)
    try:
        res = _cli_as_user(["forget-set", "list"], db)
    finally:
        folder.chmod(0o755)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "has schema 3, older than this lab's" in res.stderr and "read-only" in res.stderr
    assert digest(db) == before
