"""Reading what a client put in a URL: path ids, query numbers and query text, each checked strictly and refused
with a 400 that says what is wrong (never int() on raw input: it takes '²' and numbers no column can hold)."""

from __future__ import annotations

import re

from aiohttp import web

from hub.api.errors import BadBody

# The largest id either store can hold (BIGINT); a bigger number names nothing.
MAX_ID = 2**63 - 1
_WHOLE = re.compile(r"[0-9]{1,19}")


def whole_number(raw: str, name: str, lowest: int = 0, highest: int = MAX_ID) -> int:
    """RAW as an int from LOWEST to HIGHEST: ASCII digits only, so '²', '1e999', '-1' and ' 5' are refused."""
    if not _WHOLE.fullmatch(raw) or not lowest <= int(raw) <= highest:
        raise BadBody(400, f"{name} must be a whole number from {lowest} to {highest} (got {raw[:40]!r})")
    return int(raw)


def optional_number(raw: str) -> int | None:
    """RAW as a whole number (0 .. 2^63-1) if it is one, else None: for values of our own URLs that a provider
    echoes back, where a missing or odd one means "not given"."""
    return int(raw) if _WHOLE.fullmatch(raw) and int(raw) <= MAX_ID else None


def path_id(request: web.Request, name: str = "id") -> int:
    """The {NAME} of the path as an id (1 .. 2^63-1)."""
    return whole_number(request.match_info[name], name, 1)


def query_id(request: web.Request, name: str) -> int | None:
    """?NAME= as an id, or None when absent."""
    raw = request.query.get(name)
    return None if raw is None else whole_number(raw, name, 1)


def limit(request: web.Request, default: int = 50, most: int = 200) -> int:
    raw = request.query.get("limit")
    return default if raw is None else whole_number(raw, "limit", 1, most)
