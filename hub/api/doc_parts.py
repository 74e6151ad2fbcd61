"""The small pieces every part of the OpenAPI document is written with (hub.api.openapi, and the parts that areas
contribute to it: automation, segments), kept once so the parts cannot drift apart."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

STR_OR_NULL = {"type": ["string", "null"]}
INT_OR_NULL = {"type": ["integer", "null"]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """A request body: the model's schema, which the document lists under components by the model's name."""
    return {"required": required, "content": {"application/json": {"schema": ref(model.__name__)}}}
