"""The package keeps the shape a newcomer can walk: layers that only import downwards,
no import circles, modules and functions short enough to read in one sitting.

Imports are read from the source (every `import`, also those inside functions or under
`TYPE_CHECKING`), so a circle that only type checking closes still counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "dpsched"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
LONGER_MODULES: dict[str, str] = {}
"""Modules allowed past MAX_MODULE_LINES, with the reason (none today)."""
LONGER_FUNCTIONS: dict[str, str] = {}
"""Functions allowed past MAX_FUNCTION_LINES (`module:qualified.name`), with the reason."""

LAYERS: list[set[str]] = [
    {"errors", "readers"},  # import-free helpers every layer shares
    {"budget"},
    {"core"},
    {"policies"},
    {"engine", "(root)"},  # the package's own __init__ re-exports up to the engine
    {"client"},  # the budget service's HTTP client, for front ends and users
    {"offline", "sim", "service", "k8s"},  # front ends: never one another
    {"lab"},  # experiments over several front ends (`dpsched[lab]`)
    {"cli", "__main__"},
]
FRONT_ENDS = LAYERS[6]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The dpsched modules `name` imports (a submodule when one is named, else the package)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "dpsched")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "dpsched":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                yield full if full in known else target


def layer_name(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def layer_of(module: str) -> int:
    name = layer_name(module)
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) & set(known) for name, path in known.items()}


def test_every_module_sits_in_a_layer() -> None:
    unplaced = {layer_name(m) for m in modules()} - set().union(*LAYERS)
    assert not unplaced, f"add {sorted(unplaced)} to LAYERS"


def test_layers_only_import_downwards_and_front_ends_not_each_other() -> None:
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            here, there = layer_of(module), layer_of(target)
            sideways = (
                layer_name(module) in FRONT_ENDS
                and layer_name(target) in FRONT_ENDS
                and layer_name(module) != layer_name(target)
            )
            if there > here or sideways:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_there_are_no_import_circles() -> None:
    edges = graph()
    circles = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert circles == []


def test_modules_stay_short() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in modules().values()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert {k: v for k, v in long.items() if k not in LONGER_MODULES} == {}


def test_functions_stay_short() -> None:
    long = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for node, qualified in _functions(tree, ""):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long[f"{name}:{qualified}"] = lines
    assert {k: v for k, v in long.items() if k not in LONGER_FUNCTIONS} == {}


def _functions(
    node: ast.AST, prefix: str
) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            qualified = f"{prefix}{child.name}"
            yield child, qualified
            yield from _functions(child, f"{qualified}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def test_the_checks_see_a_circle_and_a_long_function(tmp_path: Path) -> None:
    """The scanners themselves: a made-up circle and function are found."""
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("from dpsched.second import x\n")
    second.write_text("def f():\n    from dpsched.first import y\n" + "    pass\n" * 120)
    known = {"dpsched.first": first, "dpsched.second": second}
    assert set(imports("dpsched.first", first, known)) == {"dpsched.second"}
    assert set(imports("dpsched.second", second, known)) == {"dpsched.first"}
    found = list(_functions(ast.parse(second.read_text()), ""))
    assert [(q, n.end_lineno) for n, q in found] == [("f", 122)]
