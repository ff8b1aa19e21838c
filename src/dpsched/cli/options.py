"""Parsing of repeated `key=value` command-line options."""

from __future__ import annotations

from typing import Any

import yaml

from dpsched.errors import InputError


def parse_key_values(pairs: list[str] | None, field: str) -> dict[str, Any]:
    """`key=value` pairs; values read as YAML scalars or flow collections (1, 0.5, true, [..])."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(field, f"expected key=value, got {pair!r}")
        try:
            values[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise InputError(f"{field} {key.strip()}", f"cannot read value {raw!r}") from None
    return values
