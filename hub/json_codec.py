"""JSON on the hot paths (API answers, console events) through orjson, several times cheaper on the event loop than
the standard library; what orjson refuses (integer keys, integers past 64 bits) goes through `json` as before."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

CONTENT_TYPE = "application/json"


def dumps(data: Any) -> bytes:
    """DATA as compact UTF-8 JSON: the same values `json.dumps` gives, without its spaces or \\u escapes."""
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError: a dict key that is not a string, an integer past 64 bits
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def text(data: Any) -> str:
    """DATA as compact JSON text for the store (journal payloads, message meta): what `json.dumps(data,
    default=str)` means, several times cheaper; a value neither knows becomes its str()."""
    try:
        return orjson.dumps(data, default=str).decode()
    except TypeError:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """aiohttp's web.json_response, serialized by dumps()."""
    return web.Response(body=dumps(data), status=status, headers=headers, content_type=CONTENT_TYPE)
