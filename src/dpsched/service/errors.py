"""HTTP errors as JSON: every refusal names the field (or the subject) and the reason.

Status codes are a contract: 401 missing or unknown token, 403 a tenant on an admin
route, 404 a missing claim or another tenant's (the same body either way), 409 a
conflict (a different body for an existing id, a request id reused for another
operation, an operation the claim's state refuses), 413 a body over 1 MB, 422 an
invalid field, 503 a journal that cannot commit. Never a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dpsched.errors import InputError, LedgerError, from_validation_error

MAX_BODY = 1_000_000


class ApiError(Exception):
    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status = status
        self.field = field
        self.reason = reason


def error_response(status: int, field: str, reason: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"status": status, "field": field, "reason": reason}}
    )


def install_handlers(app: FastAPI) -> None:
    """Every error as `{"error": {status, field, reason}}`: the service's own, the core's
    (bad input 422, a refusal of the ledger 409), FastAPI's, and a bug (500)."""

    @app.exception_handler(Exception)
    async def bug(_request: Request, _exc: Exception) -> JSONResponse:
        return error_response(500, "server", "internal error")

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.field, exc.reason)

    @app.exception_handler(InputError)
    async def input_error(_request: Request, exc: InputError) -> JSONResponse:
        return error_response(422, exc.field, exc.reason)

    @app.exception_handler(LedgerError)
    async def refused(_request: Request, exc: LedgerError) -> JSONResponse:
        return error_response(409, exc.subject, exc.reason)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        error = from_validation_error("", exc)
        return error_response(422, error.field, error.reason)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "path", str(exc.detail))


def reply(content: Any, status: int = 200) -> Response:
    """A JSON response rendered here (orjson), so FastAPI neither re-encodes nor
    re-validates it: views are already plain JSON values."""
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object: at most 1 MB, and no NaN or Infinity anywhere (Python's
    json would accept those literals; they are named by their path here)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, "body", f"larger than {MAX_BODY} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "body", f"larger than {MAX_BODY} bytes")
    try:
        data = orjson.loads(raw)  # strict: no NaN, no Infinity, no lone surrogates
    except orjson.JSONDecodeError as exc:
        raise ApiError(422, *_why_invalid(raw, exc)) from None
    if not isinstance(data, dict):
        raise ApiError(422, "body", "must be a JSON object")
    return data


def _why_invalid(raw: bytes, exc: Exception) -> tuple[str, str]:
    """(field, reason) for a body the strict parser refused: Python's lenient parser
    finds the path of a NaN or Infinity literal (or an overflowing number)."""
    try:
        loose = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "body", f"not valid JSON: {exc}"
    path = _non_finite(loose, "")
    if path is not None:
        return path or "body", "must be a finite number (no NaN or Infinity)"
    return "body", f"not valid JSON: {exc}"


def _non_finite(value: Any, path: str) -> str | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _non_finite(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None
