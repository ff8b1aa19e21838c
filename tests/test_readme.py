"""The README stays in step with what the code does: the quick-start demo's table and the
API example are run, and their output compared with what the README shows."""

from __future__ import annotations

import contextlib
import io
import re
import tomllib
from pathlib import Path

from tests.test_cli import dpsched

import dpsched as dpsched_package

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def fenced_block_after(marker: str, language: str = "") -> str:
    start = README.index(marker)
    opening = README.index(f"```{language}\n", start) + len(language) + 4
    return README[opening : README.index("```", opening)]


def table_rows(text: str) -> dict[str, list[str]]:
    """Body rows of a Rich table: policy -> its cells."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) > 1:
            rows[cells[0]] = cells
    return rows


def test_the_demo_prints_the_table_the_readme_shows() -> None:
    shown = fenced_block_after("The demo prints")
    run = dpsched("compare", str(ROOT / "examples" / "mixed-150.yaml"))
    assert run.returncode == 0, run.stderr
    printed = table_rows(run.stdout)
    expected = table_rows(shown)
    assert list(printed) == list(expected)
    runtime = 3  # the only column that varies between runs
    for policy, cells in expected.items():
        got = printed[policy]
        assert got[:runtime] + got[runtime + 1 :] == cells[:runtime] + cells[runtime + 1 :]
    summary = " ".join(shown[shown.index("not allocated:") :].split())
    assert " ".join(run.stdout[run.stdout.index("not allocated:") :].split()) == summary


def test_the_api_example_prints_what_its_comments_say() -> None:
    code = fenced_block_after("## The API in", "python")
    expected = [
        re.split(r": ", line.split("# ", 1)[1], maxsplit=1)[0]
        for line in code.splitlines()
        if line.startswith("print(")
    ]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {})
    assert output.getvalue().splitlines() == expected


def test_license_and_changelog_match_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert project["version"] == dpsched_package.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {project['version']}" in changelog
