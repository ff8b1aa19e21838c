"""The OpenAPI document's request bodies.

Handlers read their bodies themselves (to size-check them and refuse NaN literals with
the field's path), so FastAPI cannot describe them: a route names its body model with
`openapi_extra=request_body(Model)`, and `install` adds the models' schemas to the
document's components.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

_SCHEMAS: dict[str, Any] = {}
"""The schemas of every body a route names, filled as the routes are defined."""


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is a `model`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _SCHEMAS.update(schema.pop("$defs", {}))
    _SCHEMAS[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def install(app: FastAPI) -> None:
    """Build the app's document with the bodies' schemas in it (once, when first asked)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = plain()
            document.setdefault("components", {}).setdefault("schemas", {}).update(_SCHEMAS)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
