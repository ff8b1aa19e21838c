"""What a plain install carries: the library, the CLI and the budget service. The
operator's packages (kopf, aiohttp; kopf brings jsonpatch) come with the `kubernetes`
extra and the emulator's (kmock, ...) with the `lab` extra; no module outside those parts
imports them, the runtime Kubernetes front end imports neither the lab nor the
simulator, and a command that needs an extra says which one to install."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpsched.k8s import EXTRA as OPERATOR
from dpsched.lab import EXTRA

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "dpsched"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    """The distribution names of PEP 508 requirements, extras and markers left out."""
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> Iterator[str]:
    """Every module a source file imports, anywhere in it (inside functions too),
    relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def sources(*, outside: str | None = None, under: str | None = None) -> list[Path]:
    found = [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if (outside is None or not module_name(path).startswith(outside))
        and (under is None or module_name(path).startswith(under))
    ]
    assert found, "no sources: the scan looks in the wrong place"
    return found


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module_name(path)} imports {name}"
        for path in paths
        for name in imported(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_lab_extra_carries_the_emulators_packages_and_a_plain_install_does_not() -> None:
    runtime = names(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    assert {"kmock", "jsonpatch"} <= set(EXTRA)
    assert names(extras["lab"]) == {"dpsched", *EXTRA}
    assert "dpsched[kubernetes]" in extras["lab"]  # the lab runs the operator
    assert not runtime & {*EXTRA, *OPERATOR}
    assert "dpsched[lab]" in extras["dev"]  # the tests run the operator on the emulator


def test_the_kubernetes_extra_carries_the_operators_packages() -> None:
    assert (
        names(PROJECT["optional-dependencies"]["kubernetes"])
        == set(OPERATOR)
        == {
            "kopf",
            "aiohttp",
        }
    )


def test_only_the_operator_and_the_lab_import_the_operators_packages() -> None:
    outside = [p for p in sources(outside="dpsched.lab") if not _operator_part(p)]
    assert offending(outside, OPERATOR) == []


def _operator_part(path: Path) -> bool:
    """The modules that run the operator: kopf's handlers and the API server client."""
    return module_name(path) in {
        "dpsched.k8s.kube",
        "dpsched.k8s.operator",
        "dpsched.k8s.run",
        "dpsched.k8s.settling",
    }


def test_without_the_kubernetes_extra_the_rest_works_and_the_operator_names_it(
    tmp_path: Path,
) -> None:
    """kopf and aiohttp hidden from one process: the CRDs still print, and
    `serve --kubernetes` is one line naming the extra, before anything starts."""
    hide = "import sys; sys.modules['kopf'] = sys.modules['aiohttp'] = None; "
    run_cli = (
        hide + "from dpsched.cli.app import main; sys.argv = ['dpsched', *sys.argv[1:]]; main()"
    )
    crds = subprocess.run(
        [sys.executable, "-c", run_cli, "k8s", "crds", "--out", str(tmp_path / "crds")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crds.returncode == 0, crds.stderr
    assert len(list((tmp_path / "crds").glob("*.yaml"))) == 2
    db = tmp_path / "journal.db"
    serve = subprocess.run(
        [sys.executable, "-c", run_cli, "serve", "--db", str(db), "--kubernetes"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "DPSCHED_ADMIN_TOKEN": "t" * 32},
    )
    assert serve.returncode == 2
    assert serve.stderr.splitlines() == [
        "error: --kubernetes: the operator needs kopf, which comes with the kubernetes "
        "extra: pip install 'dpsched[kubernetes]'"
    ]
    assert not db.exists()


def test_only_the_lab_imports_the_lab_extras_packages() -> None:
    assert offending(sources(outside="dpsched.lab"), EXTRA) == []


def test_the_import_scan_sees_imports_inside_functions() -> None:
    assert offending(sources(under="dpsched.lab.emulator"), ("kmock",)) != []
    commands = sources(under="dpsched.cli.sim_commands")
    assert "dpsched.lab.fig8" in set(imported(commands[0]))  # a lazy import, in a function


def test_the_kubernetes_front_end_imports_neither_the_lab_nor_the_simulator() -> None:
    assert offending(sources(under="dpsched.k8s"), ("dpsched.lab", "dpsched.sim")) == []


def test_no_front_end_imports_the_lab_only_the_cli() -> None:
    outside = [
        path
        for path in sources(outside="dpsched.lab")
        if not module_name(path).startswith("dpsched.cli")
    ]
    assert offending(outside, ("dpsched.lab",)) == []


@pytest.mark.parametrize("missing", ["kmock", "jsonpatch"])
def test_reproduce_dpack_8_without_the_lab_extra_names_it(missing: str, tmp_path: Path) -> None:
    """The package is hidden from this one process (None in sys.modules: its import
    fails as if it were not installed), the rest of the install being the same."""
    out = tmp_path / "figures"
    program = (
        f"import sys; sys.modules[{missing!r}] = None; "
        "from dpsched.cli.app import main; "
        f"sys.argv = ['dpsched', 'reproduce', 'dpack-8', '--quick', '--out', {str(out)!r}]; "
        "main()"
    )
    run = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        f"error: dpsched.lab needs {missing}, which comes with the lab extra: "
        "pip install 'dpsched[lab]'"
    ]
    assert not out.exists()
