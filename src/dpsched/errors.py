"""Exceptions shared by every layer.

Kept in a module with no imports of dpsched's own (nor any third-party one) so
that the lowest layer (`budget`) can raise the same errors the CLI later turns
into one line.
"""

from __future__ import annotations


class DpschedError(Exception):
    """Base class: every error the library raises on bad input or a refused operation."""


class InputError(DpschedError, ValueError):
    """Bad input: names the offending field and the reason, and nothing was changed."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class LedgerError(DpschedError):
    """A ledger operation was refused; the ledger state is exactly as before the call."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"{subject}: {reason}")


def from_validation_error(prefix: str, exc: Exception, data: object = None) -> InputError:
    """A pydantic ValidationError as one InputError naming the dotted path of its first field.

    Given the validated `data`, the path follows it: list elements that have an `id`
    are named by it (`tasks.t2.demand`, as the user wrote it, rather than
    `tasks[2].demand`), and the names pydantic adds for union members (`mechanism`,
    `laplace`) are dropped because the input has no such key. Duck-typed (anything
    with `.errors()`) so this module stays import-free.
    """
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return InputError(prefix or "input", str(exc))
    first = errors[0]
    loc = list(first.get("loc", ()))
    missing = first.get("type") == "missing"
    parts = _follow(loc, data, missing) if data is not None else _strip_tags(loc)
    location = ".".join([prefix, *parts]) if prefix else ".".join(parts)
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "extra_forbidden":
        message = "unknown key"
    return InputError(location or prefix or "input", message.removeprefix("Value error, "))


def _strip_tags(loc: list[object]) -> list[str]:
    parts: list[str] = []
    for raw in loc:
        part = str(raw)
        if isinstance(raw, int) and parts:
            parts[-1] += f"[{raw}]"
        elif not _is_union_tag(part) and (not parts or parts[-1] != part):
            parts.append(part)
    return parts


def _follow(loc: list[object], data: object, missing: bool) -> list[str]:
    """The error path walked through the input: only keys and positions it really has,
    plus the missing key itself when one is missing."""
    parts: list[str] = []
    node = data
    for i, raw in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and raw in node:
            if not last and not isinstance(node[raw], dict | list | tuple):
                continue  # a union tag that happens to equal a key, e.g. `mechanism`
            parts.append(str(raw))
            node = node[raw]
        elif isinstance(node, list | tuple) and isinstance(raw, int) and 0 <= raw < len(node):
            item = node[raw]
            name = item.get("id") if isinstance(item, dict) else None
            if isinstance(name, str) and name and len(parts) == 1:
                parts.append(name)
            elif parts:
                parts[-1] += f"[{raw}]"
            else:
                parts.append(f"[{raw}]")
            node = item
        elif last and missing:
            parts.append(str(raw))
    return parts


def _is_union_tag(part: str) -> bool:
    """Pydantic puts union-member names (e.g. 'function-after[...]', 'epsilon') in error paths."""
    return part.startswith(("function-", "tagged-union")) or "[" in part
