"""Exceptions shared by every layer.

Kept in a module with no imports of its own so that the lowest layer
(`budget`) can raise the same errors the CLI later turns into one line.
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


def from_validation_error(prefix: str, exc: Exception) -> InputError:
    """A pydantic ValidationError as one InputError naming the dotted path of its first field.

    Duck-typed (anything with `.errors()`) so this module stays import-free.
    """
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return InputError(prefix, str(exc))
    first = errors[0]
    parts: list[str] = []
    for raw in first.get("loc", ()):
        part = str(raw)
        if isinstance(raw, int) and parts:
            parts[-1] += f"[{raw}]"
        elif not _is_union_tag(part) and (not parts or parts[-1] != part):
            parts.append(part)
    location = ".".join([prefix, *parts]) if prefix else ".".join(parts)
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "extra_forbidden":
        message = "unknown key"
    return InputError(location or "input", message.removeprefix("Value error, "))


def _is_union_tag(part: str) -> bool:
    """Pydantic puts union-member names (e.g. 'function-after[...]', 'epsilon') in error paths."""
    return part.startswith(("function-", "tagged-union")) or "[" in part
