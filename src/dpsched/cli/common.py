"""What every CLI command shares: the console and the one-line error reporting."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from dpsched.errors import DpschedError

console = Console()
P = ParamSpec("P")
R = TypeVar("R")


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Report a DpschedError as one line on stderr with exit status 2 (no traceback)."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except DpschedError as exc:
            Console(stderr=True, soft_wrap=True).print(
                f"error: {exc}", highlight=False, markup=False
            )
            raise typer.Exit(2) from None

    return wrapper
