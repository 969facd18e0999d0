"""The project's own promises: the README's two commands, and CI calling the test one."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_opens_with_two_commands():
    text = (ROOT / "README.md").read_text()
    run_cmd, test_cmd = _readme_commands()
    assert text.index(run_cmd) < 200, "the two commands must open the README"
    assert "streamlit run dashboard/app.py" in run_cmd and "requirements.txt" in run_cmd
    assert "pytest" in test_cmd


def test_ci_calls_the_readme_test_command():
    _, test_cmd = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci


def test_core_never_imports_streamlit():
    for path in (ROOT / "core").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+streamlit", path.read_text(), re.M), path
