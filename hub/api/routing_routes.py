"""REST API for routing: presence, offers (accept / reject), transfer, and live queue and agent stats."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from hub.agents import list_agents
from hub.api.auth import PRINCIPAL, Principal
from hub.api.errors import read_json
from hub.api.routes import check_conversation
from hub.api.schemas import PresenceBody, TransferBody
from hub.history import store
from hub.history.db import Tx
from hub.keys import DB, ROUTER, SETTINGS
from hub.model import format_time, utcnow
from hub.router import RoutingError


def _agent_id(request: web.Request) -> int:
    p: Principal = request[PRINCIPAL]
    if p.agent_id is None:
        raise web.HTTPBadRequest(text="this needs an agent's token or session (an admin token acts as no agent)")
    return p.agent_id


def _conflict(e: RoutingError) -> web.HTTPConflict:
    return web.HTTPConflict(text=str(e))


async def set_presence(request: web.Request) -> web.Response:
    agent = _agent_id(request)
    body = await read_json(request, PresenceBody)
    try:
        await request.app[ROUTER].set_presence(agent, body.presence)
    except RoutingError as e:
        raise _conflict(e) from None
    return web.json_response({"agent_id": agent, "presence": body.presence})


async def offers(request: web.Request) -> web.Response:
    agent = _agent_id(request)
    now = time.time()

    def load(tx: Tx) -> list[dict[str, Any]]:
        rows = tx.all(
            "SELECT id, customer_id, queue, channel, offer_deadline FROM conversations "
            "WHERE offered_to = ? AND status = 'open' AND offer_deadline > ? ORDER BY offer_deadline",
            (agent, now),
        )
        out = []
        for r in rows:
            first = tx.one(
                "SELECT text FROM messages WHERE conversation_id = ? AND direction = 'in' "
                "ORDER BY created_at DESC, id DESC LIMIT 1",
                (r["id"],),
            )
            preview = str(first["text"]) if first else ""
            out.append({
                "conversation_id": int(r["id"]),
                "queue": r["queue"],
                "channel": r["channel"],
                "deadline": float(r["offer_deadline"]),
                "customer": store.customer(tx, int(r["customer_id"])).to_json(),
                "preview": preview[:140] + ("…" if len(preview) > 140 else ""),
            })
        return out

    return web.json_response({"items": await request.app[DB].read(load)})


async def _conversation(request: web.Request, conv_id: int) -> dict[str, Any]:
    return (await request.app[DB].read(lambda tx: store.conversation(tx, conv_id))).to_json()


async def accept(request: web.Request) -> web.Response:
    agent, conv_id = _agent_id(request), int(request.match_info["id"])
    try:
        await request.app[ROUTER].accept(conv_id, agent)
    except RoutingError as e:
        raise _conflict(e) from None
    return web.json_response(await _conversation(request, conv_id))


async def reject(request: web.Request) -> web.Response:
    agent, conv_id = _agent_id(request), int(request.match_info["id"])
    try:
        await request.app[ROUTER].reject(conv_id, agent)
    except RoutingError as e:
        raise _conflict(e) from None
    return web.json_response(await _conversation(request, conv_id))


async def transfer(request: web.Request) -> web.Response:
    conv_id = int(request.match_info["id"])
    body = await read_json(request, TransferBody)
    if (body.queue is None) == (body.agent_id is None):
        raise web.HTTPUnprocessableEntity(text="transfer to exactly one of queue or agent_id")
    await check_conversation(request, conv_id)
    p: Principal = request[PRINCIPAL]
    try:
        await request.app[ROUTER].transfer(conv_id, body.queue, body.agent_id, body.note or "")
    except RoutingError as e:
        raise _conflict(e) from None
    if body.note:
        now = format_time(utcnow())
        target = f"queue {body.queue}" if body.queue else f"agent {body.agent_id}"

        def note(tx: Tx) -> None:
            c = store.conversation(tx, conv_id)
            store.insert_message(
                tx, conversation_id=conv_id, customer_id=c.customer_id, channel="hub", direction="out", kind="note",
                text=body.note or "", status="internal", agent_id=p.agent_id, now=now,
                meta={"transfer": target},
            )

        await request.app[DB].write(note)
    return web.json_response(await _conversation(request, conv_id))


async def queues(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    router = request.app[ROUTER]
    items = []
    for name, q in settings.routing.queues.items():
        s = await router.engine.queue_stats(name)
        items.append({
            "name": name,
            "title": q.title or name,
            "waiting": s.waiting,
            "longest_wait": s.longest_wait,
            "available_agents": s.available_agents,
            "busy_agents": s.busy_agents,
            "offers_accepted": s.accepted,
            "offers_rejected": s.rejected,
            "offers_timed_out": s.timed_out,
            "answered": s.answered,
            "abandoned": s.abandoned,
            "sla_attainment": s.sla_attainment,
            "sla_wait": q.sla_wait,
        })
    return web.json_response({"items": items})


async def agents(request: web.Request) -> web.Response:
    router = request.app[ROUTER]
    items = []
    for a in await list_agents(request.app[DB]):
        stats = await router.engine.agent_stats(a.id)
        items.append({
            "id": a.id,
            "name": a.name,
            "email": a.email,
            "role": a.role,
            "queues": a.queues,
            "disabled": a.disabled,
            "presence": stats.presence.value if stats else "offline",
            "load": dict(stats.load) if stats else {},
            "capacity": dict(stats.capacity) if stats else {},
        })
    return web.json_response({"items": items})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/agents/me/presence", set_presence),
        web.get("/api/v1/offers", offers),
        web.post(r"/api/v1/conversations/{id:\d+}/accept", accept),
        web.post(r"/api/v1/conversations/{id:\d+}/reject", reject),
        web.post(r"/api/v1/conversations/{id:\d+}/transfer", transfer),
        web.get("/api/v1/queues", queues),
        web.get("/api/v1/agents", agents),
    ]
