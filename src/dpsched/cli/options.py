"""Parsing of repeated `key=value` command-line options."""

from __future__ import annotations

from typing import Any

from dpsched.errors import InputError
from dpsched.readers import parse_value


def parse_key_values(pairs: list[str] | None, field: str) -> dict[str, Any]:
    """`key=value` pairs; values read as YAML scalars or flow collections (1, 0.5, true, [..])."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(field, f"expected key=value, got {pair!r}")
        values[key.strip()] = parse_value(raw, f"{field} {key.strip()}")
    return values
