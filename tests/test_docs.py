"""Docs that cannot rot (issue 25): the README and docs/*.md against the code they describe.

- every ``python -m core <command> [<action>]`` they name exists, its ``--help`` exits 0, and
  every ``--option`` written after it on the same line is one of that command's options;
- every ``python bench/….py`` and ``scripts/…`` they name exists;
- every relative link points to a file of the repository, and every ``#anchor`` to a heading
  of its target (GitHub's slugs); no link leaves the repository but plain web addresses;
- every table of docs/results.md names, in the text just before it (since the previous heading
  or the previous table that text follows) or in the table itself, the bench or the command
  that produced it;
- docs/cli.md is exactly what ``scripts/cli_reference.py`` writes from the parser.

Everything runs in this process (the parser's ``--help`` included), in about a second.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import unicodedata
from functools import cache
from pathlib import Path

import pytest

from core.cli import build_parser
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LINES = 150

COMMAND = re.compile(r"python -m core ((?:[a-z][\w-]*)(?: [a-z][\w-]*)?)([^`\n]*)")
BENCH = re.compile(r"python (bench/[\w./-]+\.py)")
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")
FENCE = re.compile(r"^\s*```")
PRODUCER = re.compile(r"python (?:-m core [a-z]|bench/\w+\.py)")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _prose(text: str) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


@cache
def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, dict(sub.choices)


def _actions(child: argparse.ArgumentParser) -> list[str]:
    for action in child._actions:
        if not action.option_strings and action.choices and not isinstance(action.choices, dict):
            return [str(c) for c in action.choices]
    return []


def _named_commands() -> dict[tuple[str, ...], set[str]]:
    """``(command,)`` or ``(command, action)`` → the files that name it, from every
    ``python -m core …`` in the README and docs (code blocks and prose alike)."""
    found: dict[tuple[str, ...], set[str]] = {}
    _, commands = _parser()
    for path in DOCS:
        for words, _rest in COMMAND.findall(_text(path)):
            name, *more = words.split()
            key = (name,)
            if name in commands and more and more[0] in _actions(commands[name]):
                key = (name, more[0])
            found.setdefault(key, set()).add(path.name)
    return found


def test_the_docs_name_commands_and_the_scan_finds_them():
    named = _named_commands()
    assert ("demo",) in named and ("forget-set", "create") in named and ("unlearn",) in named
    assert len(named) >= 20


def test_every_named_command_exists_and_its_help_exits_0():
    parser, commands = _parser()
    for key, files in sorted(_named_commands().items()):
        assert key[0] in commands, f"`python -m core {key[0]}` ({sorted(files)}) is no command"
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
            parser.parse_args([*key, "--help"])
        assert stop.value.code == 0, key
        assert out.getvalue().startswith("usage: python -m core " + key[0]), key


def _options_after(rest: str) -> set[str]:
    rest = rest.split(" #", 1)[0]  # a comment in a code block
    return set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest))


def test_every_option_written_after_a_command_is_one_of_its_options():
    _, commands = _parser()
    wrong = []
    for path in DOCS:
        for line in _text(path).splitlines():
            for m in COMMAND.finditer(line):
                name = m.group(1).split()[0]
                if name not in commands:
                    continue  # test_every_named_command_exists… names it
                known = {s for a in commands[name]._actions for s in a.option_strings}
                wrong += [
                    f"{path.name}: python -m core {name} {opt}"
                    for opt in _options_after(m.group(2))
                    if opt not in known
                ]
    assert not wrong, wrong


def test_every_named_bench_and_script_exists():
    missing = []
    for path in DOCS:
        text = _text(path)
        for rel in BENCH.findall(text) + re.findall(r"(scripts/[\w.-]+\.(?:py|sh))", text):
            if not (ROOT / rel).is_file():
                missing.append(f"{path.name}: {rel}")
    assert not missing, missing


def test_every_bench_is_listed_in_the_development_guide():
    listed = set(BENCH.findall(_text(ROOT / "docs" / "development.md")))
    for path in sorted((ROOT / "bench").glob("*.py")):
        assert f"bench/{path.name}" in listed, f"bench/{path.name} is not in docs/development.md"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline Markdown dropped, lower case, punctuation other
    than ``-`` and ``_`` removed, spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = [
        c
        for c in text
        if c in " -_" or unicodedata.category(c)[0] in "LNM"  # letters, numbers, marks
    ]
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file, with GitHub's ``-1``, ``-2`` for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(_text(path)):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_slugs_follow_github():
    assert slug("The store") == "the-store"
    assert slug("Ray (optional): model sets and sweeps on a cluster") == (
        "ray-optional-model-sets-and-sweeps-on-a-cluster"
    )
    assert slug("EasyDUB's binning") == "easydubs-binning"
    assert slug("Speed, the schedule control and do-nothing (2-core CPU)") == (
        "speed-the-schedule-control-and-do-nothing-2-core-cpu"
    )
    assert slug("`forget-set` — create") == "forget-set--create"


def _links(path: Path) -> list[str]:
    out = []
    for line in _prose(_text(path)):
        line = re.sub(r"`[^`]*`", "", line)  # code spans hold no links
        out += [a or b for a, b in LINK.findall(line)]
    return out


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for path in DOCS:
        for target in _links(path):
            if re.match(r"https?://", target):
                continue  # a web address, checked by no one here
            assert not re.match(r"[a-z]+:", target), f"{path.name}: {target} leaves the repository"
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists() or ROOT.resolve() not in dest.resolve().parents:
                broken.append(f"{path.name}: {target} (no such file in the repository)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_readme_is_a_front_page():
    text = _text(ROOT / "README.md")
    assert len(text.splitlines()) <= README_LINES
    assert text.lstrip().startswith("# Unlearning Lab\n\n```bash\n"), "the commands come first"
    linked = {t.partition("#")[0] for t in _links(ROOT / "README.md")}
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in linked, f"the README does not link docs/{doc.name}"


def _tables_with_captions(text: str) -> list[tuple[str, str]]:
    """``(caption, table)`` for every table: the caption is the prose since the last heading,
    or since the previous table when prose follows that table; tables separated by blank
    lines only share one caption."""
    out, caption, table, after_table = [], [], [], False
    for line in [*_prose(text), ""]:
        if line.lstrip().startswith("|"):
            table.append(line)
            continue
        if table:
            out.append(("\n".join(caption), "\n".join(table)))
            table, after_table = [], True
        if HEADING.match(line):
            caption, after_table = [], False
        elif line.strip():
            if after_table:
                caption, after_table = [], False
            caption.append(line)
    return out


def test_caption_rule_on_an_example():
    text = (
        "## A\n\nrun `python bench/x.py`:\n\n| a |\n|---|\n\n| b |\n|---|\n\nthen\n\n| c |\n|---|\n"
    )
    got = _tables_with_captions(text)
    assert [c for c, _ in got] == ["run `python bench/x.py`:"] * 2 + ["then"]


def test_every_results_table_names_what_produced_it():
    tables = _tables_with_captions(_text(ROOT / "docs" / "results.md"))
    assert len(tables) >= 15
    bare = [t.splitlines()[0] for c, t in tables if not PRODUCER.search(c + "\n" + t)]
    assert not bare, f"tables of docs/results.md that name no bench or command: {bare}"


@cache
def _cli_reference():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "scripts" / "cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_is_generated_from_the_parser():
    text = _cli_reference().reference()
    assert _text(ROOT / "docs" / "cli.md") == text, (
        "docs/cli.md differs from the parser: run python scripts/cli_reference.py"
    )
    _, commands = _parser()
    for name in commands:
        assert f"\n## {name}\n" in text
