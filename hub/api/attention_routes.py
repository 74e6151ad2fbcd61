"""/api/v1/attention: the events the hub could not place (see hub.attention), for supervisors and admins: list,
show, download the raw event, and replay, attach to a customer or dismiss, each action journaled."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import PRINCIPAL, Principal
from hub.api.errors import read_json
from hub.api.routes import _int, _limit
from hub.attention import Attention, AttentionError, count, listing, raw_bytes, show
from hub.keys import CHANNELS, DB, INGEST


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=10_000, description="why; kept with the action")


class AttachBody(ActionBody):
    customer_id: int | None = Field(None, description="an existing customer")
    identity: str | None = Field(None, max_length=320, description="or who sent it, e.g. email:ann@example.com "
                                 "(the customer who owns it, or a new one)")
    name: str | None = Field(None, max_length=200, description="the new customer's name")


class DismissBody(ActionBody):
    note: str = Field(min_length=1, max_length=10_000, description="why nothing is to be done; kept")


async def _operator(request: web.Request) -> Principal:
    """Supervisors and admins: an agent's token acts with its agent's role."""
    p: Principal = request[PRINCIPAL]
    role = p.role
    if role == "agent" and p.agent_id is not None:
        row = await request.app[DB].read(lambda tx: tx.one("SELECT role FROM agents WHERE id = ?", (p.agent_id,)))
        role = str(row["role"]) if row else role
    if role not in ("admin", "supervisor"):
        raise web.HTTPForbidden(text="flagged events are for supervisors and admins")
    return p


def actor(p: Principal) -> str:
    return f"agent {p.agent_id}" if p.agent_id is not None else f"{p.role} token {p.token_id}"


async def list_flagged(request: web.Request) -> web.Response:
    await _operator(request)
    q = request.query
    before = _int_query(q.get("before"))
    limit = _limit(request)

    def load(tx: Any) -> dict[str, Any]:
        channel, reason = q.get("channel") or None, q.get("reason") or None
        items = listing(tx, channel, reason, limit, before)
        # What the list holds with these filters, over all its pages: the console's badge shows this number.
        return {"items": [i.to_json() for i in items], "count": count(tx, channel, reason),
                "next": str(items[-1].id) if len(items) == limit else None}

    return web.json_response(await request.app[DB].read(load))


def _int_query(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise web.HTTPBadRequest(text="before must be an event id (the `next` of the previous page)")
    return int(value)


async def get_flagged(request: web.Request) -> web.Response:
    await _operator(request)
    jid = _int(request, "id")
    event, body = await request.app[DB].read(lambda tx: show(tx, jid))
    data, ctype, filename = raw_bytes(body)
    out = event.to_json()
    out["raw"] = {"content_type": ctype, "filename": filename, "size": len(data),
                  "text": data[:200_000].decode("utf-8", "replace")}
    return web.json_response(out)


async def get_raw(request: web.Request) -> web.Response:
    await _operator(request)
    jid = _int(request, "id")
    _event, body = await request.app[DB].read(lambda tx: show(tx, jid))
    data, ctype, filename = raw_bytes(body)
    return web.Response(body=data, content_type=ctype, headers={
        # What a stranger sent never runs as a page of ours.
        "Content-Disposition": f'attachment; filename="{jid}-{filename}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
    })


def _service(request: web.Request) -> Attention:
    return Attention(request.app[INGEST], request.app[CHANNELS])


async def replay(request: web.Request) -> web.Response:
    p = await _operator(request)
    jid = _int(request, "id")
    body = await read_json(request, ActionBody) if request.body_exists else ActionBody()
    try:
        return web.json_response(await _service(request).replay(jid, actor(p), body.note))
    except AttentionError as e:
        raise web.HTTPConflict(text=str(e)) from None


async def attach(request: web.Request) -> web.Response:
    p = await _operator(request)
    jid = _int(request, "id")
    body = await read_json(request, AttachBody)
    try:
        return web.json_response(await _service(request).attach(
            jid, actor(p), body.customer_id, body.identity, body.name, body.note))
    except AttentionError as e:
        raise web.HTTPConflict(text=str(e)) from None


async def dismiss(request: web.Request) -> web.Response:
    p = await _operator(request)
    jid = _int(request, "id")
    body = await read_json(request, DismissBody)
    try:
        return web.json_response(await _service(request).dismiss(jid, actor(p), body.note))
    except AttentionError as e:
        raise web.HTTPConflict(text=str(e)) from None


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/attention", list_flagged),
        web.get(r"/api/v1/attention/{id:\d+}", get_flagged),
        web.get(r"/api/v1/attention/{id:\d+}/raw", get_raw),
        web.post(r"/api/v1/attention/{id:\d+}/replay", replay),
        web.post(r"/api/v1/attention/{id:\d+}/attach", attach),
        web.post(r"/api/v1/attention/{id:\d+}/dismiss", dismiss),
    ]
