"""README.md and docs/*.md stay in step with the code.

- Samples: a fenced block right after `<!-- output of: dpsched ... -->` is what that
  command prints now (run offline from the repository root on an 80-column terminal);
  table cells of a "runtime" column are not compared, nor is spacing.
- Python: every ```python block runs; when its `print(...)` lines carry comments, each
  printed line equals its comment up to the first ": " (the rest explains it). No block
  is exempt: a fragment that cannot run does not belong in a python fence.
- Commands: every `dpsched ...` command in ```bash / ```console blocks, and in inline
  code that starts with `dpsched `, names an existing command, and each `--long-option`
  it uses appears in that command's `--help`. The help texts come from one process that
  runs the CLI's app with `--help` for every command (a process per command would take
  tens of seconds on a loaded machine).
- Links: every relative link (a file, a `#anchor`, or both) resolves, and every page of
  docs/ is linked from docs/README.md.
- The licence, the changelog and the package version agree.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import dpsched as dpsched_package

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```+)\s*([\w-]*)\s*$")
MARKER = re.compile(r"^<!--\s*(output of):?\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: tuple[str, str] | None  # ("output of", command)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@cache
def parse(path: Path) -> tuple[list[Block], str]:
    """The fenced blocks of a Markdown file, and its text outside them."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = path.read_text().splitlines()
    index = 0
    last_text = ""  # the last non-blank line outside a block
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            prose.append(lines[index])
            if lines[index].strip():
                last_text = lines[index].strip()
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != opening.group(1):
            end += 1
        assert end < len(lines), f"{path.name}:{index + 1}: unclosed code fence"
        marker = MARKER.match(last_text)
        blocks.append(
            Block(
                path,
                index + 1,
                opening.group(2),
                "\n".join(lines[index + 1 : end]) + "\n",
                (marker.group(1), marker.group(2)) if marker else None,
            )
        )
        prose.extend([""] * (end + 1 - index))  # keep line numbers
        last_text = ""
        index = end + 1
    return blocks, "\n".join(prose)


def all_blocks() -> list[Block]:
    return [block for path in DOCS for block in parse(path)[0]]


# ---------------------------------------------------------------- printed samples


def run_dpsched(command: str) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assert words[0] == "dpsched", command
    return subprocess.run(
        [sys.executable, "-m", "dpsched", *words[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1"},
        timeout=300,
        check=False,
    )


BOX_ONLY = re.compile(r"^[\s┏┓┗┛┳┻╋━┃┡┩╇└┘┌┐┬┴┼─│├┤]*$")


def comparable(text: str) -> tuple[list[list[str]], list[str]]:
    """The table rows (cells stripped; a "runtime" column's cells blanked) and the words
    of the other lines: what a sample must share with the real output."""
    rows: list[list[str]] = []
    words: list[str] = []
    masked: set[int] = set()
    for line in text.splitlines():
        if line.lstrip().startswith("┏"):
            masked = set()
        if BOX_ONLY.match(line):
            continue
        if "│" in line or "┃" in line:
            cells = [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
            if "┃" in line:  # a header row
                masked = {i for i, cell in enumerate(cells) if "runtime" in cell}
            rows.append(
                ["…" if i in masked and "┃" not in line else c for i, c in enumerate(cells)]
            )
        else:
            words.extend(line.split())
    return rows, words


SAMPLES = [block for block in all_blocks() if block.marker and block.marker[0] == "output of"]


def test_the_readme_shows_the_demo_table() -> None:
    demo = (ROOT / "scripts" / "demo.sh").read_text().strip().splitlines()[-1]
    assert demo == ".venv/bin/dpsched compare examples/mixed-150.yaml"
    assert any(
        block.path.name == "README.md"
        and block.marker == ("output of", "dpsched compare examples/mixed-150.yaml")
        for block in SAMPLES
    )


@pytest.mark.parametrize("block", SAMPLES, ids=lambda block: block.where)
def test_a_sample_is_what_its_command_prints(block: Block) -> None:
    run = run_dpsched(block.marker[1] if block.marker else "")
    assert run.returncode == 0, run.stderr
    shown_rows, shown_words = comparable(block.text)
    printed_rows, printed_words = comparable(run.stdout)
    assert printed_rows == shown_rows, block.where
    assert printed_words == shown_words, block.where


# ---------------------------------------------------------------- Python blocks


PYTHON = [block for block in all_blocks() if block.language == "python"]


@pytest.mark.parametrize("block", PYTHON, ids=lambda block: block.where)
def test_a_python_block_runs_and_prints_what_its_comments_say(
    block: Block, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    prints = [line for line in block.text.splitlines() if line.startswith("print(")]
    expected = [
        re.split(r": ", line.split("# ", 1)[1], maxsplit=1)[0] for line in prints if "# " in line
    ]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(block.text, block.where, "exec"), {"__name__": "__docs__"})
    if expected:
        assert len(expected) == len(prints), f"{block.where}: comment every print or none"
        assert output.getvalue().splitlines() == expected


# ---------------------------------------------------------------- dpsched commands


HELP_DUMP = """
import contextlib, io, json, sys
import typer
from dpsched.cli.app import app

def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            yield from walk(sub, [*path, name])

helps = {}
for path in walk(typer.main.get_command(app), []):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        app([*path, "--help"], prog_name="dpsched")
    helps[" ".join(path)] = out.getvalue()
json.dump(helps, sys.stdout)
"""


@cache
def helps() -> dict[str, str]:
    """`dpsched ... --help` for every command path ("" is the root)."""
    run = subprocess.run(
        [sys.executable, "-c", HELP_DUMP],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        timeout=120,
        check=True,
    )
    result: dict[str, str] = json.loads(run.stdout)
    return result


def options_in_help(text: str) -> set[str]:
    """The long options listed in the option boxes of a help text."""
    options: set[str] = set()
    in_box = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("╭"):
            in_box = "Options" in stripped
        elif in_box and stripped.startswith("│"):
            for field in re.split(r"\s{2,}", stripped.strip("│ ")):
                if field == "*" or field.startswith("-"):
                    options.update(o for o in field.split() if o.startswith("--"))
                else:
                    break
    return options


def one_line(script: str) -> str:
    """A shell script as one line: comments dropped, line continuations joined, and the
    newlines that end commands (outside quotes) turned into `;`."""
    out: list[str] = []
    quote = ""
    index = 0
    while index < len(script):
        char = script[index]
        if char == "\\" and quote != "'" and index + 1 < len(script):
            if script[index + 1] == "\n":  # a continuation
                out.append(" ")
            else:
                out.append(script[index : index + 2])
            index += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (not out or out[-1][-1].isspace()):
            while index < len(script) and script[index] != "\n":
                index += 1
            continue
        elif char == "\n":
            char = " ; "
        out.append(char)
        index += 1
    return "".join(out)


SEPARATORS = {"|", "||", "&", "&&", ";", "(", ")"}


def shell_commands(block: Block) -> list[list[str]]:
    """The simple commands of a bash block, or of a console block's `$ ` lines."""
    lines = block.text.splitlines(keepends=True)
    if block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    lexer = shlex.shlex(one_line("".join(lines)), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands = []
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token not in SEPARATORS:
            words.append(token)
        if token in SEPARATORS or token.endswith("$"):  # `X=$(dpsched ...)`
            if words:
                commands.append(words)
            words = []
    return commands


def dpsched_invocations() -> list[tuple[str, list[str]]]:
    """(where, the words after `dpsched`) for every documented dpsched command."""
    found: list[tuple[str, list[str]]] = []
    for path in DOCS:
        blocks, prose = parse(path)
        for block in blocks:
            if block.language not in ("bash", "console", "sh", "shell"):
                continue
            for simple in shell_commands(block):
                start = 0
                while start < len(simple) and re.match(r"^\w+=", simple[start]):
                    start += 1  # VAR=value prefixes
                words = simple[start:]
                if words[:1] in (["dpsched"], [".venv/bin/dpsched"]):
                    found.append((block.where, words[1:]))
                elif words[:3] in (["python", "-m", "dpsched"], ["python3", "-m", "dpsched"]):
                    found.append((block.where, words[3:]))
        for number, line in enumerate(prose.splitlines(), 1):
            for span in re.findall(r"`(dpsched [^`]+)`", line):
                found.append((f"{path.relative_to(ROOT)}:{number}", span.split()[1:]))
    return found


def check_invocation(words: list[str]) -> list[str]:
    """What is wrong with `dpsched WORDS`: an unknown command or option."""
    known = helps()

    def command(*names: str) -> str:
        return " ".join(names)

    path: list[str] = []
    rest = words
    while rest and command(*path, rest[0]) in known:
        path.append(rest[0])
        rest = rest[1:]
    paths = [path]
    alternatives = rest[0].split("|") if rest else []
    if len(alternatives) > 1 and all(command(*path, alt) in known for alt in alternatives):
        paths = [[*path, alt] for alt in alternatives]  # `block add|list|get`
        rest = rest[1:]
    problems = []
    for path in paths:
        name = command(*path)
        prefix = f"{name} " if name else ""
        is_group = any(other != name and other.startswith(prefix) for other in known)
        if is_group and rest and not rest[0].startswith("-"):
            problems.append(f"`dpsched {prefix}{rest[0]}`: no such command")
            continue
        listed = options_in_help(known[name])
        for word in rest:
            for option in re.findall(r"(?<![\w-])--[a-z][\w-]*", word):
                if option not in listed:
                    problems.append(f"`dpsched {name}`: {option} is not in its --help")
    return problems


INVOCATIONS = dpsched_invocations()


def test_every_documented_command_and_option_exists() -> None:
    assert len(INVOCATIONS) > 20  # the scan finds the commands at all
    problems = [
        f"{where}: {problem}" for where, words in INVOCATIONS for problem in check_invocation(words)
    ]
    assert problems == []


# ---------------------------------------------------------------- links


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    seen: dict[str, int] = {}
    result = set()
    for line in parse(path)[1].splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path: Path) -> list[str]:
    prose = re.sub(r"`[^`]*`", "", parse(path)[1])
    return LINK.findall(prose)


def test_relative_links_and_anchors_resolve() -> None:
    broken = []
    for path in DOCS:
        for target in links(path):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_docs_index_lists_every_page() -> None:
    index = {(ROOT / "docs" / target).resolve() for target in links(ROOT / "docs" / "README.md")}
    pages = {page.resolve() for page in (ROOT / "docs").glob("*.md")} - {
        (ROOT / "docs" / "README.md").resolve()
    }
    assert pages - index == set()


# ---------------------------------------------------------------- package metadata


def test_license_and_changelog_match_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert project["version"] == dpsched_package.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {project['version']}" in changelog
