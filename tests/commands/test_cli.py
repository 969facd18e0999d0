"""The command line (``core.cli.main``, in-process or as a real ``python -m core``): JSON output
and clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def cli(*args: str, db=None) -> subprocess.CompletedProcess:
    """``python -m core ARGS [--db DB]``: its exit status, stdout and stderr, run in this test's
    process through the same ``core.cli.main`` that ``python -m core`` calls (``in_process``):
    a new interpreter costs 1-4 s of CPU (torch's import alone ~3 s), which was a tenth of the
    suite. What only a process shows (start-up, a kill, another process's locks, a size limit,
    bytes in argv) runs ``python -m core``: ``tests/fault_fixtures.py::cli``,
    ``tests/commands/test_probe_inputs.py`` and ``tests/commands/test_cli_startup.py``."""
    return in_process([*args, *(["--db", str(db)] if db else [])])


def in_process(argv: list[str]) -> subprocess.CompletedProcess:
    """``core.cli.main(argv)`` as a command line would run it: stdout and stderr captured, an
    empty stdin, the repository as working directory; argparse's exits give their status."""
    import contextlib
    import io
    import os

    from core.cli import main

    out, err, cwd, stdin = io.StringIO(), io.StringIO(), os.getcwd(), sys.stdin
    try:
        os.chdir(ROOT)
        sys.stdin = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as done:  # argparse: --help (0), a usage error (2)
                code = done.code if isinstance(done.code, int) else int(done.code is not None)
    finally:
        sys.stdin = stdin
        os.chdir(cwd)
    return subprocess.CompletedProcess(["python", "-m", "core", *argv], code, out.getvalue(),
                                       err.getvalue())  # fmt: skip


def test_linear_json(db_path):
    res = cli("linear", "--json", db=db_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["run_id"] == 1
    m = out["methods"]
    assert set(m) == {"GD", "OM", "OM (retain only)", "GD+GA"}
    for v in m.values():
        assert set(v) >= {
            "final_rel_dist",
            "min_rel_dist",
            "step_below_1e3",
            "step_below_1e6",
            "diverged",
        }
    assert (
        m["OM"]["step_below_1e6"] <= 150 and m["OM"]["step_below_1e3"] <= m["OM"]["step_below_1e6"]
    )
    assert m["GD"]["step_below_1e3"] is None and m["GD"]["final_rel_dist"] > 0.5
    assert m["GD+GA"]["diverged"] is True
    # the table form reads back the same store
    res2 = cli("linear", "--steps", "10", db=db_path)
    assert (
        res2.returncode == 0
        and "linear run 2 stored" in res2.stdout
        and "OM (retain only)" in res2.stdout
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--n", "0"], "n must be"),
        (["--d", "0"], "d must be"),
        (["--forget", "0"], "forget must be"),
        (["--forget", "100"], "smaller than n"),
        (["--lam", "-0.1"], "lam must be"),
        (["--steps", "0"], "steps must be"),
        (["--lam", "nan"], "finite"),
        (["--noise", "inf"], "finite"),
    ],
)
def test_bad_input_writes_nothing(db_path, args, needle):
    res = cli("linear", *args, db=db_path)
    assert res.returncode == 2
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert not db_path.exists()


def test_not_a_database(tmp_path):
    path = tmp_path / "x.duckdb"
    path.write_text("hello")
    res = cli("linear", db=path)
    assert res.returncode == 2 and "not a DuckDB database" in res.stderr
    assert path.read_text() == "hello"


def test_unwritable_database_path(tmp_path):
    (tmp_path / "f").write_text("x")
    res = cli("linear", db=tmp_path / "f" / "lab.duckdb")
    assert res.returncode == 2 and "cannot create" in res.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["oracles", "--forget-set", "1", "--models", "0"], "models must be at least 1, got 0"),
        (["oracles", "--forget-set", "1", "--models", "-3"], "models must be at least 1, got -3"),
        (["oracles", "--forget-set", "1", "--models", "1000000"], "models must be at most 100000"),
        (["demo", "--models", "0"], "models must be at least 1, got 0"),
        (["demo", "--models", "-3"], "models must be at least 1, got -3"),
        (["demo", "--models", "1000000"], "models must be at most 100000"),
        (["demo", "--epochs", "0"], "epochs must be at least 1"),
        (["demo", "--epochs", "100000"], "epochs must be at most 10000"),
        (["demo", "--device", "tpu"], "unknown device 'tpu'"),
        (["evaluate", "--forget-set", "1", "--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_training_sizes_are_checked_before_anything_is_written(db_path, args, needle):
    res = cli(*args, db=db_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert not db_path.exists()
