"""One error shape for the API and webhooks: `{"error": {"status", "message", "details"?}}`, never a bare 500."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import psycopg
import redis.exceptions
from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub.history.merge import MergeError
from hub.history.store import NotFound
from hub.identities import IdentityError
from hub.json_codec import json_response
from hub.outbox import ReplyError

log = logging.getLogger("hub.http")

# The database is down or locked past its timeout: a provider should retry, not give up.
DATABASE_DOWN: tuple[type[Exception], ...] = (sqlite3.OperationalError, psycopg.OperationalError)
#: the routing state's Redis down or restarting: the store holds what was decided, the reconciler does the rest
ROUTING_DOWN: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


def error(status: int, message: str, details: Any = None, headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"status": status, "message": message}
    if details is not None:
        body["details"] = details
    return json_response({"error": body}, status=status, headers=headers)


def _field_errors(e: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        out.append({"field": where, "message": msg})
    return out


class BadBody(Exception):
    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


async def read_json(request: web.Request, model: type[M], max_bytes: int | None = None) -> M:
    """The request body as MODEL, or a 4xx that says exactly what is wrong with it. MAX_BYTES raises the
    server-wide body limit for this one request (replies carrying files)."""
    if request.content_type != "application/json":
        raise BadBody(415, f"send Content-Type: application/json (got {request.content_type or 'none'})")
    if max_bytes is None:
        raw = await request.read()  # raises 413 past server.max_body_bytes
    else:
        raw = await _read_up_to(request, max_bytes)
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise BadBody(400, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        fields = _field_errors(e)
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        raise BadBody(422, f"invalid body: {summary}", fields) from None


# Deeper than any body of ours: refused before Python's recursion limit is anywhere near.
MAX_JSON_DEPTH = 32


def parse_json(raw: bytes | str) -> Any:
    """RAW as JSON, or BadBody(400) that says why not; strings in it are clean text (no NUL, which PostgreSQL
    cannot hold, no lone surrogates) and it nests at most MAX_JSON_DEPTH deep."""
    try:
        # orjson first, a tenth of json's cost on every request. What it refuses (NaN, 1e400, escaped lone
        # surrogates, a BOM, invalid UTF-8, deep nesting) and any body with a float (orjson reads an integer past
        # 64 bits as one) go through `json` as before: the same values, or the same answer.
        data = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        pass
    else:
        if _plain_text_object(raw, data) or not _check_json(data):
            return data
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadBody(400, f"malformed JSON: {e}") from None
    except RecursionError:
        raise BadBody(400, f"the JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    _check_json(data)
    return data


#: the one value type of a plain text object
_TEXT = frozenset({str})


def _plain_text_object(raw: bytes | str, data: Any) -> bool:
    """Whether DATA, read by orjson from RAW, is an object of strings that _check_json would pass without a walk
    (the usual inbound body): no nesting, no float, and no escape in RAW that could make a NUL or a lone surrogate
    (orjson refuses both as raw bytes: a control character, invalid UTF-8)."""
    return (isinstance(raw, bytes) and type(data) is dict and set(map(type, data.values())) <= _TEXT
            and (b"\\u" not in raw or (b"\\u0000" not in raw and b"\\ud" not in raw and b"\\uD" not in raw)))


def _check_json(data: Any) -> bool:
    """Raises BadBody for what parse_json refuses; returns whether DATA holds a float."""
    floats = False
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadBody(400, f"the JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
        if isinstance(value, dict):
            for k, v in value.items():
                stack.append((k, where or "(body)", depth + 1))
                stack.append((v, f"{where}.{k}" if where else str(k), depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
        elif isinstance(value, str):
            if "\x00" in value:
                raise BadBody(422, f"{where or '(body)'}: contains a NUL character, which text may not hold")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadBody(422, f"{where or '(body)'}: contains a lone surrogate, not text") from None
        elif isinstance(value, float):
            floats = True
    return floats


async def _read_up_to(request: web.Request, max_bytes: int) -> bytes:
    if request.content_length is not None and request.content_length > max_bytes:
        raise BadBody(413, f"the body is {request.content_length} bytes; this endpoint takes at most {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65_536):
        size += len(chunk)
        if size > max_bytes:
            raise BadBody(413, f"the body is over {max_bytes} bytes, the most this endpoint takes")
        chunks.append(chunk)
    return b"".join(chunks)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadBody as e:
        return error(e.status, e.message, e.details)
    except NotFound as e:
        return error(404, str(e))
    except (IdentityError, ReplyError) as e:
        return error(422, str(e))
    except MergeError as e:
        return error(409, str(e))
    except DATABASE_DOWN as e:
        log.error("database unavailable on %s %s: %s", request.method, request.path, e)
        return error(503, "the store is unavailable; nothing was stored, retry shortly", None, {"Retry-After": "5"})
    except ROUTING_DOWN as e:
        log.error("routing state unreachable on %s %s: %s", request.method, request.path, e)
        return error(503, "routing is unreachable for the moment; retry shortly", None, {"Retry-After": "5"})
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "application/json":
            raise
        message = e.text if e.text and e.text != f"{e.status}: {e.reason}" else e.reason
        resp = error(e.status, message or e.reason)
        for k, v in e.headers.items():
            if k.lower() not in ("content-type", "content-length"):
                resp.headers[k] = v
        return resp
    # Anything else goes on to hub.api.request_guard, the one place that answers 500.
