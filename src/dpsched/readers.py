"""Input files (instances, run configs, sweeps) read into plain data, errors as one line.

One reader for every front end, so every file gets the same rules: UTF-8 text;
`.json` files are JSON, everything else YAML. YAML is parsed by `yaml-rs` (Rust,
YAML 1.2), which loads a 50 MB instance in seconds where PyYAML, even with
libyaml's C parser, takes over a minute; it also refuses duplicate keys, which
PyYAML silently overwrites. A syntax error is reported as
`FILE:LINE:COLUMN: invalid YAML: <what>` (or JSON), the form editors jump to.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml_rs

from dpsched.errors import InputError

_POSITION = re.compile(r"line (\d+), column (\d+)")


def read_text(path: str | Path, field: str) -> str:
    """The file's text; a missing file, a directory or non-UTF-8 bytes name `field`."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise InputError(field, f"no such file: {file}") from None
    except IsADirectoryError:
        raise InputError(field, f"{file} is a directory, not a file") from None
    except OSError as exc:
        raise InputError(field, f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            field,
            f"{file} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
        ) from None


def parse_yaml(text: str, source: str) -> Any:
    """YAML text as plain data; a syntax error names `source`, the line and the column."""
    try:
        return yaml_rs.loads(text)
    except yaml_rs.YAMLDecodeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        what = lines[-1] if lines else "cannot parse"
        position = _POSITION.search(str(exc))
        where = f"{source}:{position[1]}:{position[2]}" if position else source
        raise InputError(where, f"invalid YAML: {what}") from None


def parse_json(text: str, source: str) -> Any:
    """JSON text as plain data; a syntax error names `source`, the line and the column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}") from None


def read_data(path: str | Path, field: str) -> Any:
    """A `.json` file as JSON, any other as YAML."""
    file = Path(path)
    text = read_text(file, field)
    if file.suffix.lower() == ".json":
        return parse_json(text, str(file))
    return parse_yaml(text, str(file))


def read_mapping(path: str | Path, field: str) -> dict[str, Any]:
    """A data file that must hold a mapping of keys (a config, a sweep, an instance)."""
    data = read_data(path, field)
    if not isinstance(data, dict):
        raise InputError(field, f"{path} must hold a mapping of keys, not {_kind(data)}")
    return data


def parse_value(raw: str, field: str) -> Any:
    """One command-line value read as YAML: `1`, `0.5`, `true`, `[1, 2]`, `{a: 1}`, `text`."""
    if not raw.strip():
        return ""
    try:
        return yaml_rs.loads(raw)
    except yaml_rs.YAMLDecodeError:
        raise InputError(field, f"cannot read value {raw!r}") from None


def _kind(data: Any) -> str:
    if data is None:
        return "nothing (the file is empty)"
    if isinstance(data, list):
        return "a list"
    return f"a single value ({type(data).__name__})"
