"""An agent's @mentions through the API: the Mentions list (newest first, with the unread count) and marking them
read. Mentions are written with the note that makes them (hub.api.routes.post_message, hub.mentions)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub import mentions
from hub.api.auth import PRINCIPAL, Principal
from hub.api.errors import read_json
from hub.api.params import limit, path_id
from hub.api.schemas import MentionsReadBody
from hub.history.db import Tx
from hub.keys import DB
from hub.model import format_time, utcnow


def _agent(request: web.Request) -> Principal:
    p: Principal = request[PRINCIPAL]
    if p.agent_id is None:
        raise web.HTTPBadRequest(text="mentions are an agent's: this needs an agent's token or session")
    return p


async def list_mentions(request: web.Request) -> web.Response:
    p = _agent(request)
    unread_only = request.query.get("unread", "false")
    if unread_only not in ("true", "false"):
        raise web.HTTPBadRequest(text="unread must be true or false")
    n = limit(request, 50, 200)
    items, unread = await request.app[DB].read(lambda tx: mentions.of_agent(tx, p, unread_only == "true", n))
    return web.json_response({"items": items, "unread": unread})


async def mark_read(request: web.Request) -> web.Response:
    """One mention; or with no id every unread one of the caller's, or those in one conversation (the console opened
    it): read now (reading twice keeps the first time)."""
    p = _agent(request)
    one = path_id(request) if "id" in request.match_info else None
    body = await read_json(request, MentionsReadBody) if one is None and request.body_exists else MentionsReadBody()
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        if one is not None:
            found = tx.one("SELECT id FROM mentions WHERE id = ? AND agent_id = ?", (one, p.agent_id))
            if found is None:
                raise web.HTTPNotFound(text=f"mention {one} does not exist")
            tx.exec("UPDATE mentions SET read_at = ? WHERE id = ? AND read_at IS NULL", (now, one))
        elif body.conversation_id is not None:
            tx.exec("UPDATE mentions SET read_at = ? WHERE agent_id = ? AND conversation_id = ? AND read_at IS NULL",
                    (now, p.agent_id, body.conversation_id))
        else:
            tx.exec("UPDATE mentions SET read_at = ? WHERE agent_id = ? AND read_at IS NULL", (now, p.agent_id))
        _, unread = mentions.of_agent(tx, p, True, 0)
        return {"unread": unread, **({"mention": mentions.by_id(tx, one)} if one is not None else {})}

    return web.json_response(await request.app[DB].write(write))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/mentions", list_mentions),
        web.post("/api/v1/mentions/read", mark_read),
        web.post(r"/api/v1/mentions/{id:\d+}/read", mark_read),
    ]
