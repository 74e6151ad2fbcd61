"""The last line between a client's bytes and a 500: refuses headers and query strings that are not clean text,
turns errors that only client input can cause deep inside a handler into 4xx answers with a reason, and answers
anything else with a 500 that names an incident id in the log (a test proves no input reaches it)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from itertools import chain

import psycopg
from aiohttp import web

from hub.api.errors import error

log = logging.getLogger("hub.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Raised by a store when a value from a client cannot be held: a number past 64 bits, a NUL in PostgreSQL text.
_OUT_OF_RANGE: tuple[type[Exception], ...] = (OverflowError, psycopg.errors.NumericValueOutOfRange)
_UNSTORABLE_TEXT: tuple[type[Exception], ...] = (
    psycopg.errors.UntranslatableCharacter, psycopg.errors.CharacterNotInRepertoire, ValueError,
)


def unclean(text: str) -> str | None:
    """Why TEXT cannot be taken as text (bytes that were not UTF-8, a NUL), or None when it can."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


def _check_request(request: web.Request) -> web.Response | None:
    # Every header at once first: ASCII without a NUL is clean, and nearly every request is (aiohttp decodes bytes
    # that are not UTF-8 as surrogates, which are not ASCII). Only the others are looked at one by one.
    headers = "".join(chain.from_iterable(request.headers.items()))
    if not headers.isascii() or "\x00" in headers:
        refused = _check_headers(request)
        if refused is not None:
            return refused
    for name, value in request.query.items():
        why = unclean(name) or unclean(value)
        if why:
            return error(400, f"query parameter {name.encode('utf-8', 'replace').decode()!r} {why}")
    return None


def _check_headers(request: web.Request) -> web.Response | None:
    for name, value in request.headers.items():
        why = unclean(name) or unclean(value)
        if why:
            return error(400, f"header {name!r} {why}")
    return None


def incident_response(exc: BaseException, method: str, path: str) -> web.Response:
    """A 500 for a bug of ours: the traceback goes to the log under an incident id, never to the client."""
    incident = uuid.uuid4().hex[:12]
    log.error("unhandled error on %s %s (incident %s)", method, path, incident, exc_info=exc)
    return error(500, f"internal error; the server log has the details under incident {incident}")


@web.middleware
async def request_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    refused = _check_request(request)
    if refused is not None:
        return refused
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except RecursionError:
        return error(400, "the input is nested too deeply")
    except _OUT_OF_RANGE:
        return error(400, "a number in the request is out of range (ids go up to 2^63-1)")
    except _UNSTORABLE_TEXT as e:
        if isinstance(e, ValueError) and "NUL" not in str(e):
            return incident_response(e, request.method, request.path)
        return error(422, "text in the request contains a NUL character or is not valid UTF-8")
    except Exception as e:
        return incident_response(e, request.method, request.path)
