"""The table of inputs (docs/security.md) stays complete: every test it names exists, and every option of
every CLI command (walked from the argparse parser) has a row."""

from __future__ import annotations

import argparse
import re

from core.cli import build_parser
from tests.conftest import ROOT

SECTION = "## Every input and what a bad value gets"


def table_rows() -> list[list[str]]:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert SECTION in text, "docs/security.md lost its table of inputs"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in body.splitlines() if ln.startswith("|")][2:]  # past header, rule
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]


def cli_options(parser: argparse.ArgumentParser, name: str = "") -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                for opt, where in cli_options(child, f"{name} {sub}".strip()).items():
                    found.setdefault(opt, set()).update(where)
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            longest = max(action.option_strings, key=len)
            found.setdefault(longest, set()).add(name)
    return found


def test_every_row_is_filled_and_names_existing_tests():
    rows = table_rows()
    assert len(rows) >= 20
    for row in rows:
        assert len(row) == 5 and all(row), row
        named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", row[4])
        assert named, f"the row {row[0]!r} names no test"
        for path, test in named:
            source = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"^def {test}\(", source, re.M), f"{path}::{test} does not exist"


def test_every_cli_option_has_a_row():
    where = " ".join(row[1] for row in table_rows())
    options = cli_options(build_parser())
    assert len(options) > 40
    missing = {opt: cmds for opt, cmds in options.items() if f"`{opt}`" not in where}
    assert not missing, f"CLI options without a row in docs/security.md's table: {missing}"


def test_every_environment_variable_has_a_row():
    where = " ".join(row[1] for row in table_rows())
    used = set()
    for path in (ROOT / "core").rglob("*.py"):
        used.update(re.findall(r"environ(?:\.get)?[\[(]\"(LAB_\w+)\"", path.read_text("utf-8")))
    assert used, "no LAB_ variable found: the pattern is stale"
    assert not {v for v in used if f"`{v}`" not in where}
