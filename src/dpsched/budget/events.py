"""Demands from the ecosystem: a `dp_accounting` DpEvent written as JSON, and zCDP.

A DpEvent is written as nested one-key objects named like its class, with the class's
own fields; nested events are objects of the same form:

    {"SelfComposedDpEvent": {"count": 1000, "event":
        {"PoissonSampledDpEvent": {"sampling_probability": 0.01, "event":
            {"GaussianDpEvent": {"noise_multiplier": 1.1}}}}}}

`dp_accounting` builds the event and its accountants price it (the RDP accountant for
a curve, PLD where it supports the event for an epsilon), so no formula is written
here. `{"zcdp": rho}` is dp_accounting's `ZCDpEvent(rho)`: the curve rho * alpha.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dpsched.errors import InputError

if TYPE_CHECKING:
    import dp_accounting

EVENT_SUFFIX = "DpEvent"


def event_from_json(data: Any, field: str) -> dp_accounting.DpEvent:
    """The DpEvent `data` describes; errors name the path of the bad part."""
    import attr
    import dp_accounting

    if not isinstance(data, dict) or len(data) != 1:
        raise InputError(field, "a DpEvent is an object with one key, its class name")
    ((name, fields),) = data.items()
    kind = getattr(dp_accounting, name, None) if name.endswith(EVENT_SUFFIX) else None
    if not (isinstance(kind, type) and issubclass(kind, dp_accounting.DpEvent)):
        raise InputError(field, f"unknown DpEvent {name!r}")
    if kind in (dp_accounting.UnsupportedDpEvent, dp_accounting.NonPrivateDpEvent):
        raise InputError(f"{field}.{name}", f"{name} has no privacy guarantee to charge")
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise InputError(f"{field}.{name}", "the event's fields must be an object")
    known = {a.name for a in attr.fields(kind)}
    for key in fields:
        if key not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise InputError(f"{field}.{name}.{key}", f"not a field of {name} ({expected})")
    values = {key: _value(value, f"{field}.{name}.{key}") for key, value in fields.items()}
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{field}.{name}", f"cannot build {name}: {exc}") from None


def _value(value: Any, field: str) -> Any:
    if isinstance(value, dict):  # no DpEvent field takes a mapping: it is a nested event
        return event_from_json(value, field)
    if isinstance(value, list):
        return [_value(item, f"{field}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, bool) or not isinstance(value, int | float | str | None):
        raise InputError(field, f"not a number, a string or a DpEvent: {value!r}")
    return value


def unsupported_part(event: dp_accounting.DpEvent, supports: Any) -> str | None:
    """The name of the innermost part of `event` an accountant cannot price (None when
    it prices all of it): the error names what to change."""
    if supports(event):
        return None
    for child in _children(event):
        inner = unsupported_part(child, supports)
        if inner is not None:
            return inner
    return type(event).__name__


def _children(event: Any) -> list[Any]:
    inner = getattr(event, "event", None)
    if inner is not None:
        return [inner]
    return list(getattr(event, "events", None) or [])


def canonical(data: Any) -> str:
    """Deterministic JSON of an event description (demands are cached by it)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
