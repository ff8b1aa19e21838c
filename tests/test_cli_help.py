"""Command-line conventions: version, help, completion, light start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.test_cli import dpsched

import dpsched as package
from dpsched.budget import MECHANISM_NAMES
from dpsched.cli import names
from dpsched.policies import POLICIES
from dpsched.sim.reproduce import FIGURES

COMMANDS = [
    ["schedule"],
    ["compare"],
    ["curve"],
    ["simulate"],
    ["sweep"],
    ["plot"],
    ["reproduce"],
    ["workload", "export"],
]


def test_version_help_and_bare_command_exit_zero() -> None:
    for flag in ("--version", "-V"):
        run = dpsched(flag)
        assert run.returncode == 0 and run.stdout.strip() == f"dpsched {package.__version__}"
    for args in (["-h"], ["--help"], []):
        run = dpsched(*args)
        assert run.returncode == 0, args
        assert "Usage: dpsched" in run.stdout and "schedule" in run.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_readable_placeholders(command: list[str]) -> None:
    run = dpsched(*command, "-h")
    assert run.returncode == 0, run.stderr
    text = run.stdout
    for raw in ("<bool>", "<list[str]>", "<str>", "<float>", "<int>", "{"):
        assert raw not in text, f"{raw} in help of {command}"
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert usage.split()[-1].isupper()  # INSTANCE, CONFIG, RESULTS..., FIGURE


def test_schedule_help_names_values_by_meaning() -> None:
    text = dpsched("schedule", "--help").stdout
    assert "Usage: dpsched schedule [OPTIONS] INSTANCE" in text
    for placeholder in ("NAME", "KEY=VALUE", "SECONDS", "FILE"):
        assert placeholder in text


def test_shell_completion_script_is_available() -> None:
    run = dpsched("--show-completion", "bash")
    assert run.returncode == 0, run.stderr
    assert "_dpsched_completion" in run.stdout and "complete" in run.stdout


def test_the_cli_imports_no_heavy_module_before_a_command_runs() -> None:
    probe = (
        "import sys, dpsched.cli.app\n"
        "heavy = {'numpy', 'scipy', 'dp_accounting', 'matplotlib', 'simpy', 'pydantic'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert run.stdout.strip() == "[]"


def test_help_names_mirror_the_registries() -> None:
    assert tuple(POLICIES) == names.POLICY_NAMES
    assert MECHANISM_NAMES == names.MECHANISM_NAMES
    assert tuple(FIGURES) == names.FIGURE_NAMES
