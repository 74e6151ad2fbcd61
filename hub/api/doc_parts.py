"""The small pieces every part of the OpenAPI document is written with (hub.api.openapi, and the parts that areas
contribute to it: automation, segments), kept once so the parts cannot drift apart.

Request bodies and answers are pydantic models; a part names the model class where its schema goes, and
components() turns each into a $ref and its schema (and the models it nests) into components/schemas."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel

REF_TEMPLATE = "#/components/schemas/{model}"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


def json_response(schema: dict[str, Any] | type[BaseModel], description: str = "OK") -> dict[str, Any]:
    """An answer: a model (listed under components by its name) or, for what has no model, a schema."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """A request body: the model's schema, which the document lists under components by the model's name."""
    return {"required": required, "content": {"application/json": {"schema": model}}}


def query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """An optional query parameter (a string unless SCHEMA says otherwise)."""
    return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"},
            "description": description}


@functools.cache
def _schemas(model: type[BaseModel]) -> tuple[tuple[str, dict[str, Any]], ...]:
    """MODEL's schema and those of the models it nests, by name (once per model: models do not change)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    return (*schema.pop("$defs", {}).items(), (model.__name__, schema))


def components(tree: Any, schemas: dict[str, Any]) -> Any:
    """TREE (paths) with every model class replaced by a $ref to its schema, which is added to SCHEMAS with the
    schemas of the models it nests. Two different schemas under one name are a mistake, refused here."""
    if isinstance(tree, type) and issubclass(tree, BaseModel):
        for name, sub in _schemas(tree):
            if schemas.setdefault(name, sub) != sub:
                raise ValueError(f"two OpenAPI schemas are named {name}")
        return ref(tree.__name__)
    if isinstance(tree, dict):
        return {k: components(v, schemas) for k, v in tree.items()}
    if isinstance(tree, list):
        return [components(v, schemas) for v in tree]
    return tree
