"""Start-up of the command line: light commands never import torch; help is complete."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "torchvision", "sklearn")


def imported_modules(*argv: str) -> tuple[set[str], subprocess.CompletedProcess]:
    """Top-level names of every module ``python -m core ARGV`` imported (``-X importtime``)."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "core", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    names = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in res.stderr.splitlines()
        if line.startswith("import time:")
    }
    return names, res


@pytest.mark.parametrize(
    "argv", [["--help"], ["models"], ["forget-set", "list"], ["jobs"], ["jobs", "--json"]]
)
def test_light_commands_do_not_import_torch(db_path, argv):
    from core.store.db import Store

    Store(db_path).create()  # read commands refuse a missing database
    extra = [] if argv == ["--help"] else ["--db", str(db_path)]
    names, res = imported_modules(*argv, *extra)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "core" in names and "argparse" in names  # the import log was read
    assert not names & set(HEAVY), f"{' '.join(argv)} imported {sorted(names & set(HEAVY))}"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["--kind", "lasso", "--target", "logits"], "lasso"), (["--models", "5"], "at least 20"),
     (["--fraction", "1.5"], "fraction"), (["--holdout", "0.9"], "holdout")],
)  # fmt: skip
def test_a_refused_datamodel_fit_imports_nothing_heavy(db_path, argv, needle):
    """Every setting of ``datamodels fit`` is checked before torch is imported (the ℓ1-on-logits
    refusal came after it: ~9 s on a busy 2-core machine)."""
    from core.store.db import Store

    Store(db_path).create()
    names, res = imported_modules("datamodels", "fit", *argv, "--db", str(db_path))
    assert res.returncode == 2 and needle in res.stderr, res.stderr[-2000:]
    assert "core" in names and not names & set(HEAVY), sorted(names & set(HEAVY))


def test_help_hides_the_worker_and_every_flag_has_help():
    from core.cli import build_parser

    res = subprocess.run(
        [sys.executable, "-m", "core", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0 and "models" in res.stdout
    assert "worker" not in res.stdout and "SUPPRESS" not in res.stdout
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


def test_device_names_are_checked_when_parsing(db_path):
    res = subprocess.run(
        [sys.executable, "-m", "core", "demo", "--device", "tpu", "--db", str(db_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "unknown device 'tpu'" in res.stderr
    assert not db_path.exists()
