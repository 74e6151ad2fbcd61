"""What the console looks things up with: GET /api/v1/search (customers by name, phone or email, and messages by
their text with a snippet; an agent finds only what their queues and own conversations let them see) and
GET /api/v1/channels (the configured channels and what each can carry)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hub.api.auth import PRINCIPAL, Principal
from hub.api.routes import _limit, _scope
from hub.channels.base import Channel
from hub.console.handlers import configured_channels
from hub.history import store
from hub.history.db import Tx
from hub.keys import CHANNELS, DB, SETTINGS

SNIPPET_CHARS = 160


def snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """The part of TEXT around the first word starting with one of TERMS, on one line, marked with … where cut."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    found = [m.start() for t in terms if (m := re.search(rf"(?<![^\W_]){re.escape(t)}", flat, re.IGNORECASE))]
    at = min(found) if found else 0
    start = max(0, min(at - width // 3, len(flat) - width))
    end = start + width
    return ("…" if start else "") + flat[start:end].strip() + ("…" if end < len(flat) else "")


async def search(request: web.Request) -> web.Response:
    p: Principal = request[PRINCIPAL]
    q = request.query.get("q", "").strip()
    if not q:
        raise web.HTTPBadRequest(text="pass ?q=text: words in a customer's name, phone or email, or in messages")
    limit = _limit(request, default=20, most=50)
    terms = store.search_terms(q)

    def find(tx: Tx) -> dict[str, Any]:
        scope = _scope(p)  # the visibility rule, applied by each query before its limit
        # A phone number as people type it, "(415) 555-0100", is found by its digits too (store.search_customers).
        customers = [c.to_json() for c in store.search_customers(tx, q, limit, *scope)]
        found = store.search_messages(tx, q, *scope, limit)
        names: dict[int, tuple[str, str]] = {}
        messages = []
        for m in found:
            if m.customer_id not in names:
                who = store.customer(tx, m.customer_id)
                names[m.customer_id] = (who.name, who.display_name)
            conv = store.conversation(tx, m.conversation_id)
            out = m.to_json()
            out.pop("html", None)  # the snippet is what a result list shows; the conversation has the rest
            messages.append({
                "message": out,
                "snippet": snippet(m.text, terms),
                "customer": {"id": m.customer_id, "name": names[m.customer_id][0],
                             "display_name": names[m.customer_id][1]},
                "conversation": {"id": conv.id, "status": conv.status, "queue": conv.queue},
            })
        return {"customers": customers, "messages": messages, "terms": terms}

    return web.json_response(await request.app[DB].read(find))


async def channels(request: web.Request) -> web.Response:
    configured: dict[str, Channel] = request.app[CHANNELS]
    return web.json_response({
        "items": configured_channels(configured),
        "max_attachment_bytes": request.app[SETTINGS].outbox.max_attachment_bytes,
    })


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/search", search), web.get("/api/v1/channels", channels)]
