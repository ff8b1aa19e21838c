"""CustomResourceDefinitions generated from the pydantic models (`resources.py`).

Kubernetes wants *structural* OpenAPI v3 schemas: every node typed, no `$ref`, unions
only as plain validation. Pydantic's JSON schemas are converted here: references are
inlined; `X | None` becomes X with `nullable`; a union of object shapes (a demand:
epsilon, rdp, a mechanism, a dp_event, an epsilon range...) becomes one object declaring
every property any shape has, so the API server prunes nothing a user may write; a
property two shapes type differently, a recursive shape (a composition's parts) or a
free-form map (a DpEvent) keeps its value as given (`x-kubernetes-preserve-unknown-fields`).
The operator validates every spec with the models themselves, which is exact; the
schema is the API server's first line and `kubectl explain`'s documentation.

CEL rules (`x-kubernetes-validations`) hold the consumption protocol at the API
server: a claim's request (its demand and block selection) never changes once
submitted, `consumedFraction` only grows, and `release` cannot be undone. CEL sees only
declared fields, so a value kept as given (an epsilon that may be a number or a range)
is compared by the operator, which keeps the request as first submitted and ignores,
with an Event, any later change to it.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml_rs
from pydantic import BaseModel

from dpsched.core import BlockSpec, ClaimSpec
from dpsched.k8s.resources import (
    GROUP,
    NOT_IN_SPEC,
    VERSION,
    ClaimControls,
    PrivacyClaimStatus,
    PrivateBlockStatus,
)

Schema = dict[str, Any]
PRESERVE: Schema = {"x-kubernetes-preserve-unknown-fields": True}
_COPIED = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "enum")

REQUEST_FIELDS = (
    "blocks",
    "demand",
    "demand_by_block",
    "min_demand",
    "min_blocks",
    "max_blocks",
    "min_data",
    "expected_data",
    "weight",
    "timeout",
)
"""What a claim asks for: fixed once it is submitted (CEL `self == oldSelf`)."""


def structural(model: type[BaseModel], drop: frozenset[str] = frozenset()) -> Schema:
    """A structural OpenAPI v3 schema of a pydantic model (minus the `drop` properties)."""
    schema = model.model_json_schema()
    converted = _Converter(schema.get("$defs", {})).node(schema, ())
    for name in drop:
        converted.get("properties", {}).pop(name, None)
    if "required" in converted:
        converted["required"] = [r for r in converted["required"] if r not in drop]
        if not converted["required"]:
            del converted["required"]
    return converted


class _Converter:
    def __init__(self, defs: dict[str, Schema]) -> None:
        self.defs = defs

    def node(self, node: Schema, stack: tuple[str, ...]) -> Schema:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in stack:  # recursive: keep the value as given
                return _described(dict(PRESERVE), node)
            return _described(self.node(self.defs[name], (*stack, name)), node)
        variants = node.get("anyOf") or node.get("oneOf")
        if variants:
            return _described(self.union(variants, stack), node)
        if "const" in node:
            node = {**node, "enum": [node["const"]]}
        kind = node.get("type")
        if kind is None:  # Any
            return _described(dict(PRESERVE), node)
        out: Schema = {"type": kind}
        for key in _COPIED:
            if key in node:
                out[key] = node[key]
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if bound in node:
                out[plain] = node[bound]
                out[bound] = True
        if kind == "object":
            out.update(self.members(node, stack))
        elif kind == "array":
            items = node.get("prefixItems")
            if items:
                out["items"] = self.union(items, stack)
            elif "items" in node:
                out["items"] = self.node(node["items"], stack)
            else:
                out["items"] = dict(PRESERVE)
        return _described(out, node)

    def members(self, node: Schema, stack: tuple[str, ...]) -> Schema:
        if "properties" in node:
            out: Schema = {
                "properties": {k: self.node(v, stack) for k, v in node["properties"].items()}
            }
            if node.get("required"):
                out["required"] = list(node["required"])
            return out
        extra = node.get("additionalProperties", True)
        if isinstance(extra, dict):
            return {"additionalProperties": self.node(extra, stack)}
        return dict(PRESERVE)

    def union(self, variants: list[Schema], stack: tuple[str, ...]) -> Schema:
        nullable = any(v.get("type") == "null" for v in variants)
        shapes = [self.node(v, stack) for v in variants if v.get("type") != "null"]
        flat: list[Schema] = []
        for shape in shapes:
            flat.extend(shape.pop("_variants", [shape]))
        merged = _merge(flat)
        if nullable:
            merged["nullable"] = True
        if len(flat) > 1:
            merged["_variants"] = flat  # lets an enclosing union see every shape
        return merged


def _merge(shapes: list[Schema]) -> Schema:
    """One schema accepting every shape: same type and same constraints -> that; objects
    -> every property (those typed differently kept as given); anything else -> as given."""
    first = _clean(shapes[0])
    if all(_clean(s) == first for s in shapes):
        return copy.deepcopy(first)
    if all(s.get("type") == "object" and "properties" in s for s in shapes):
        properties: dict[str, Schema] = {}
        for shape in shapes:
            for name, prop in shape["properties"].items():
                if name not in properties:
                    properties[name] = _clean(prop)
                elif properties[name] != _clean(prop):
                    properties[name] = _merge([properties[name], _clean(prop)])
        return {"type": "object", "properties": properties}
    kinds = {s.get("type") for s in shapes}
    scalar: Schema
    if kinds <= {"number", "integer"}:
        scalar = {"type": "number" if "number" in kinds else "integer"}
    elif len(kinds) == 1 and kinds <= {"string", "boolean"}:
        scalar = {"type": kinds.pop()}
        if all("enum" in s for s in shapes):
            scalar["enum"] = sorted({v for s in shapes for v in s["enum"]})
    else:
        return dict(PRESERVE)
    if any(s.get("nullable") for s in shapes):
        scalar["nullable"] = True
    return scalar


def _clean(schema: Schema) -> Schema:
    return {k: v for k, v in schema.items() if k not in ("_variants", "description")}


def _described(out: Schema, node: Schema) -> Schema:
    if "description" in node and "description" not in out:
        out["description"] = " ".join(str(node["description"]).split())
    return out


def _strip_variants(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_variants(v) for k, v in schema.items() if k != "_variants"}
    if isinstance(schema, list):
        return [_strip_variants(v) for v in schema]
    return schema


MAX_ITEMS = 4096
MAX_LENGTH = 1024


def bounded(schema: Schema) -> Schema:
    """The schema with every list, map and string of a spec bounded: the API server
    estimates each CEL rule's worst-case cost from these bounds and refuses a CRD whose
    rules could cost too much on unbounded input (4,096 items or keys, 1,024 characters:
    far above any claim; a claim on more blocks names them by a selector)."""
    out = dict(schema)
    kind = out.get("type")
    if kind == "array":
        out.setdefault("maxItems", MAX_ITEMS)
    elif kind == "string" and "enum" not in out:
        out.setdefault("maxLength", MAX_LENGTH)
    elif kind == "object" and "additionalProperties" in out:
        out.setdefault("maxProperties", MAX_ITEMS)
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = bounded(out[key])
    if "properties" in out:
        out["properties"] = {k: bounded(v) for k, v in out["properties"].items()}
    return out


def _unchanged(field: str) -> Schema:
    return {
        "rule": f"has(self.{field}) == has(oldSelf.{field})"
        f" && (!has(self.{field}) || self.{field} == oldSelf.{field})",
        "message": f"{field} cannot change once the claim is submitted",
    }


CLAIM_RULES: list[Schema] = [
    *(_unchanged(field) for field in REQUEST_FIELDS),
    {
        "rule": "!has(oldSelf.consumedFraction) || (has(self.consumedFraction)"
        " && self.consumedFraction >= oldSelf.consumedFraction)",
        "message": "consumedFraction may only grow",
    },
    {
        "rule": "!has(oldSelf.release) || !oldSelf.release || (has(self.release) && self.release)",
        "message": "release cannot be undone",
    },
]


def block_crd() -> Schema:
    spec = structural(BlockSpec, NOT_IN_SPEC)
    spec["description"] = "A block as in the instance format; the object's name is its id."
    return _crd(
        kind="PrivateBlock",
        plural="privateblocks",
        short="pblk",
        scope="Cluster",
        spec=spec,
        status=structural(PrivateBlockStatus),
        columns=[
            {"name": "Dataset", "type": "string", "jsonPath": ".spec.dataset"},
            {"name": "Spent", "type": "number", "jsonPath": ".status.spentEpsilon"},
            {"name": "Unlocked %", "type": "number", "jsonPath": ".status.unlockedPercent"},
            {"name": "Claims", "type": "integer", "jsonPath": ".status.claims"},
        ],
    )


def claim_crd() -> Schema:
    spec = structural(ClaimSpec, NOT_IN_SPEC)
    controls = structural(ClaimControls)
    spec["properties"].update(controls["properties"])
    spec["description"] = (
        "A claim as in the instance format (the object's name is its id), plus "
        "consumedFraction and release for declarative consumption."
    )
    spec = bounded(spec)
    spec["x-kubernetes-validations"] = CLAIM_RULES
    return _crd(
        kind="PrivacyClaim",
        plural="privacyclaims",
        short="pclaim",
        scope="Namespaced",
        spec=spec,
        status=structural(PrivacyClaimStatus),
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Blocks", "type": "integer", "jsonPath": ".status.blockCount"},
            {"name": "Epsilon", "type": "number", "jsonPath": ".status.epsilon"},
        ],
    )


def _crd(
    *,
    kind: str,
    plural: str,
    short: str,
    scope: str,
    spec: Schema,
    status: Schema,
    columns: list[Schema],
) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["dpsched"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": _strip_variants(
                            {
                                "type": "object",
                                "required": ["spec"],
                                "properties": {"spec": spec, "status": status},
                            }
                        )
                    },
                }
            ],
        },
    }


def crds() -> dict[str, Schema]:
    """File name -> CRD, as committed under deploy/kubernetes/crds/."""
    return {"privateblocks.yaml": block_crd(), "privacyclaims.yaml": claim_crd()}


def render(crd: Schema) -> str:
    """A CRD as the YAML file it is committed as (with a header saying where it is from)."""
    header = "# Generated by `dpsched k8s crds` from dpsched's pydantic models: do not edit.\n"
    return header + str(yaml_rs.dumps(crd)).rstrip("\n") + "\n"
