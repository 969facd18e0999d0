"""The engine's folders are its architecture (issue 25): packages by role, layered, arrows only
pointing down; every package says what it holds; nothing but entry points directly in core/."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT
from tests.test_repo import _cycles, _import_graph

# bottom to top; a package may import its own modules and those of packages on lower rows only
LAYERS: list[set[str]] = [
    {"common"},
    {"store"},
    {"zoo"},
    {"attribution"},
    {"forget"},
    {"unlearning"},
    {"evaluation"},
    {"interchange", "presets", "linear"},
    {"jobs"},
    {"commands"},
    {"cli"},
    {"__main__"},
]
ENTRY_POINTS = {"__init__.py", "__main__.py", "cli.py"}


def _package(module: str) -> str | None:
    """``core.zoo.ensemble`` → ``zoo``; ``core.cli`` → ``cli``; ``core`` → None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _rank(package: str) -> int:
    for i, row in enumerate(LAYERS):
        if package in row:
            return i
    raise AssertionError(f"core.{package} is in no layer of tests/test_architecture.py")


def upward_arrows(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a module to one of a higher layer, or to another package of its own layer."""
    bad = []
    for src, targets in graph.items():
        a = _package(src)
        for dst in targets:
            b = _package(dst)
            if a is None or b is None or a == b:
                continue
            if _rank(b) >= _rank(a):
                bad.append((src, dst))
    return sorted(bad)


def test_the_arrow_finder_sees_an_upward_arrow():
    graph = {"core.zoo.ensemble": {"core.evaluation.klom", "core.store.db"},
             "core.presets.demo": {"core.linear.study"}, "core.store.db": set()}  # fmt: skip
    assert upward_arrows(graph) == [("core.presets.demo", "core.linear.study"),
                                    ("core.zoo.ensemble", "core.evaluation.klom")]  # fmt: skip


def test_no_arrow_points_up_and_no_module_circles():
    graph = _import_graph("core")
    assert upward_arrows(graph) == []
    assert _cycles(graph) == []


def test_only_entry_points_sit_directly_in_core():
    loose = {p.name for p in (ROOT / "core").glob("*.py")} - ENTRY_POINTS
    assert not loose, f"modules directly under core/ (put them in a package): {sorted(loose)}"
    packages = {p.name for p in (ROOT / "core").iterdir() if (p / "__init__.py").exists()}
    assert packages == set().union(*LAYERS) - {"cli", "__main__"}


@pytest.mark.parametrize(
    "package", sorted(p.name for p in (ROOT / "core").iterdir() if (p / "__init__.py").exists())
)
def test_every_package_states_its_role_and_names_its_modules(package):
    init = ROOT / "core" / package / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc.splitlines()) >= 3, f"core/{package}/__init__.py states no role"
    for mod in (ROOT / "core" / package).glob("*.py"):
        if mod.name != "__init__.py":
            assert f"``{mod.stem}``" in doc, (
                f"core/{package}/{mod.name} is not named in its __init__"
            )
