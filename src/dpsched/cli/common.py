"""What every CLI command shares: consoles, one-line errors, output files, help layout.

This module and `cli.app` import nothing heavy (no numpy, pydantic, dp-accounting
or matplotlib): commands import what they need when they run, so `dpsched --help`
and `--version` answer at once.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from dpsched.errors import DpschedError, InputError

console = Console()
errors = Console(stderr=True, soft_wrap=True, highlight=False)
P = ParamSpec("P")
R = TypeVar("R")
STDOUT = "-"
"""`--json -` writes the JSON to standard output, and nothing else goes there."""
JsonOut = Annotated[
    Path | None,
    typer.Option(
        "--json",
        metavar="FILE",
        help="also write the result as JSON to FILE ('-': only JSON, to standard output)",
    ),
]


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Report a DpschedError as one line on stderr with exit status 2 (no traceback)."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except DpschedError as exc:
            errors.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None

    return wrapper


def check_output_file(path: Path | None, option: str) -> None:
    """Refuse, before any work is done, an output file that could not be written."""
    if path is None or str(path) == STDOUT:
        return
    if path.is_dir():
        raise InputError(option, f"{path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path()
    if not parent.is_dir():
        raise InputError(option, f"directory {parent} does not exist")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise InputError(option, f"cannot write to {target} (permission denied)")


def check_output_dir(path: Path | None, option: str) -> None:
    """Refuse, before any work is done, an output directory that could not be created."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise InputError(option, f"{path} exists and is not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(option, f"{existing} is not a directory")
    if not os.access(existing, os.W_OK):
        raise InputError(option, f"cannot write to {existing} (permission denied)")


def write_json(path: Path, data: Any, option: str = "--json") -> None:
    """JSON to a file (or to stdout for `-`); a write that fails is a one-line error."""
    try:
        text = _dumps(data)
    except ValueError:  # an infinite or NaN number: JSON has none, write null
        text = _dumps(_finite(data))
    if str(path) == STDOUT:
        sys.stdout.write(text)
        return
    try:
        path.write_text(text)
    except OSError as exc:
        raise InputError(option, f"cannot write {path}: {exc.strerror or exc}") from None
    errors.print(f"wrote {path}", markup=False)


PRETTY_LIMIT = 1_000_000
"""Characters up to which JSON is indented for people; larger reports (hundreds of
thousands of claims) are written compact, which is several times faster."""


def _dumps(data: Any) -> str:
    text = json.dumps(data, allow_nan=False, default=_jsonable, separators=(",", ":"))
    if len(text) <= PRETTY_LIMIT:
        text = json.dumps(data, indent=2, allow_nan=False, default=_jsonable)
    return text + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    """Numbers numpy hands back (np.float64 is a float; np.int64 is not an int)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_to_stdout(path: Path | None) -> bool:
    return path is not None and str(path) == STDOUT


@contextmanager
def loading(show: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A transient progress line on stderr for long loads; `show` False makes it silent."""
    if not show:
        yield lambda _phase, _done, _total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=errors,
        transient=True,
    ) as bar:
        task = bar.add_task("loading", total=None)

        def update(phase: str, done: int, total: int) -> None:
            bar.update(task, description=phase, completed=done, total=total or None)

        yield update


class Command(TyperCommand):
    """Help that reads like a man page: `INSTANCE` in the usage line, `KEY=VALUE` rather
    than `<list[str]>`, and nothing after flags (`--quick`, `--help`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
            if isinstance(param, TyperArgument):
                # The argument's name (INSTANCE, CONFIG) says what it is; typer would
                # add its Python type (`<path>`, `<str>`).
                setattr(param, "display_type_rich", _no_type)  # noqa: B010
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.display_name_raw.upper() + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


def _no_type(ctx: Any) -> None:
    return None


class Group(TyperGroup):
    """The same help layout for command groups."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


def command_group(help: str) -> typer.Typer:
    """A group of commands (`dpsched claim ...`): the same help layout as the root, and
    its help when given no command."""
    return typer.Typer(cls=Group, help=help, no_args_is_help=True, rich_markup_mode="markdown")
