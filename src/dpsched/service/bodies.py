"""What a request may send: the bodies of the service's own routes, and the checks every
request's input passes before it goes to the writer.

A block's and a claim's bodies are the core's `BlockSpec` and `ClaimSpec`; the models
here are the service's own (a tenant, a request id, a consumption). Refusals are
`ApiError`s naming the field as the client wrote it (422), never a pydantic error.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dpsched.core import ClaimSpec, ClaimState
from dpsched.errors import from_validation_error
from dpsched.service.errors import ApiError

MAX_ID = 200
"""Longest claim id or request id, in characters."""

Model = TypeVar("Model", bound=BaseModel)


class TenantBody(BaseModel):
    model_config = {"extra": "forbid"}
    name: str


class RequestBody(BaseModel):
    model_config = {"extra": "forbid"}
    request_id: str


class ConsumeBody(BaseModel):
    model_config = {"extra": "forbid"}
    request_id: str
    fraction: float | None = None
    amount: dict[str, list[float]] | None = None


def model(cls: type[Model], data: dict[str, Any]) -> Model:
    """`data` validated as `cls`, a `request_id` in it checked too."""
    try:
        value = cls.model_validate(data)
    except ValidationError as exc:
        error = from_validation_error("", exc, data)
        raise ApiError(422, error.field, error.reason) from None
    request_id = getattr(value, "request_id", None)
    if request_id is not None:
        check_request_id(request_id)
    return value


def check_request_id(request_id: str) -> None:
    if not 0 < len(request_id) <= MAX_ID:
        raise ApiError(422, "request_id", f"1 to {MAX_ID} characters")


def consume_body(data: dict[str, Any]) -> ConsumeBody:
    body = model(ConsumeBody, data)
    if (body.fraction is None) == (body.amount is None):
        raise ApiError(422, "body", "give exactly one of 'fraction' or 'amount'")
    return body


def claim_spec(data: dict[str, Any]) -> ClaimSpec:
    """A claim as submitted: its id is used in paths, and its arrival is the service's."""
    if "arrival" in data:
        raise ApiError(422, "arrival", "set by the service: the time the claim is submitted")
    spec = model(ClaimSpec, data)
    if len(spec.id) > MAX_ID:
        raise ApiError(422, "id", f"at most {MAX_ID} characters")
    if "/" in spec.id:
        raise ApiError(422, "id", "must not contain '/' (ids are used in paths)")
    return spec


# ------------------------------------------------------------ query parameters
MAX_WAIT_S = 60.0
"""Longest long poll (`GET /v1/claims/{id}?wait=`)."""


def claim_state(wanted: str | None) -> str | None:
    """A listing's `state` filter: one of the claim states, or none."""
    if wanted is not None and wanted not in {s.value for s in ClaimState}:
        states = ", ".join(s.value for s in ClaimState)
        raise ApiError(422, "state", f"unknown state {wanted!r}; one of {states}")
    return wanted


def page_limit(limit: int, most: int) -> int:
    if not 1 <= limit <= most:
        raise ApiError(422, "limit", f"must be between 1 and {most}")
    return limit


def cursor_after(cursor: str | None) -> int:
    """The submission number a listing resumes after (0: from the start)."""
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise ApiError(422, "cursor", "not a cursor this service returned")
    return int(cursor)


def wait_seconds(wait: float) -> float:
    if not 0.0 <= wait <= MAX_WAIT_S:
        raise ApiError(422, "wait", f"must be between 0 and {MAX_WAIT_S:g} seconds")
    return wait


def audit_after(after: int) -> int:
    """The journal sequence number an audit page starts after."""
    if after < 0:
        raise ApiError(422, "after", "must be >= 0")
    return after
