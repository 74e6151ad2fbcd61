"""REST API for routing: presence, offers (accept / reject), transfer, live queue and agent stats, and the routing
config itself (queues, rules, agents' routing profiles), changed live by an admin or supervisor."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from hub.agents import list_agents
from hub.api.auth import PRINCIPAL, Principal
from hub.api.errors import BadBody, read_json
from hub.api.params import path_id
from hub.api.responses import PresenceResult, answer
from hub.api.routes import check_conversation
from hub.api.schemas import PresenceBody, RoutingAgentBody, RoutingRulesBody, TransferBody
from hub.config import QueueSettings
from hub.history import store
from hub.history.db import Tx
from hub.keys import DB, ROUTER, SETTINGS
from hub.model import format_time, utcnow
from hub.routing.admin import AGENT, QUEUE, RULES
from hub.routing.config import RoutingConfigError
from hub.routing.service import RoutingError
from hub.slugs import SlugError, check_new


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
    return answer(PresenceResult(agent_id=agent, presence=body.presence))


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
            # A call card says how well the hub knows the caller before the agent answers.
            earlier = tx.one("SELECT COUNT(*) AS n FROM conversations WHERE customer_id = ? AND id <> ?",
                             (r["customer_id"], r["id"]))
            out.append({
                "conversation_id": int(r["id"]),
                "queue": r["queue"],
                "channel": r["channel"],
                "deadline": float(r["offer_deadline"]),
                "customer": store.customer(tx, int(r["customer_id"])).to_json(),
                "preview": preview[:140] + ("…" if len(preview) > 140 else ""),
                "earlier_conversations": int(earlier["n"]) if earlier else 0,
            })
        return out

    return web.json_response({"items": await request.app[DB].read(load)})


async def _conversation(request: web.Request, conv_id: int) -> dict[str, Any]:
    return (await request.app[DB].read(lambda tx: store.conversation(tx, conv_id))).to_json()


async def accept(request: web.Request) -> web.Response:
    agent, conv_id = _agent_id(request), path_id(request)
    try:
        await request.app[ROUTER].accept(conv_id, agent)
    except RoutingError as e:
        raise _conflict(e) from None
    return web.json_response(await _conversation(request, conv_id))


async def reject(request: web.Request) -> web.Response:
    agent, conv_id = _agent_id(request), path_id(request)
    try:
        await request.app[ROUTER].reject(conv_id, agent)
    except RoutingError as e:
        raise _conflict(e) from None
    return web.json_response(await _conversation(request, conv_id))


async def transfer(request: web.Request) -> web.Response:
    conv_id = path_id(request)
    body = await read_json(request, TransferBody)
    if (body.queue is None) == (body.agent_id is None):
        raise web.HTTPUnprocessableEntity(text="transfer to exactly one of queue or agent_id")
    return web.json_response(await transfer_conversation(request, conv_id, body.queue, body.agent_id, body.note))


async def transfer_conversation(request: web.Request, conv_id: int, queue: str | None, agent_id: int | None,
                                note: str | None = None) -> dict[str, Any]:
    """Transfer to a queue or an agent, as POST .../transfer and a macro's assign (to a teammate) do it."""
    await check_conversation(request, conv_id)
    p: Principal = request[PRINCIPAL]
    try:
        await request.app[ROUTER].transfer(conv_id, queue, agent_id, note or "")
    except RoutingError as e:
        raise _conflict(e) from None
    if note:
        now = format_time(utcnow())
        target = f"queue {queue}" if queue else f"agent {agent_id}"

        def write(tx: Tx) -> None:
            c = store.conversation(tx, conv_id)
            store.insert_message(
                tx, conversation_id=conv_id, customer_id=c.customer_id, channel="hub", direction="out", kind="note",
                text=note, status="internal", agent_id=p.agent_id, now=now,
                meta={"transfer": target},
            )

        await request.app[DB].write(write)
    return await _conversation(request, conv_id)


async def queues(request: web.Request) -> web.Response:
    return web.json_response({"items": await request.app[ROUTER].queue_items()})


async def agents(request: web.Request) -> web.Response:
    router = request.app[ROUTER]
    # Contact details are for the people who manage agents; everyone sees names, queues and presence.
    manager = await _role(request) in ("admin", "supervisor")
    items = []
    for a in await list_agents(request.app[DB]):
        stats = await router.engine.agent_stats(a.id)
        items.append({
            "id": a.id,
            "name": a.name,
            "role": a.role,
            "queues": a.queues,
            "disabled": a.disabled,
            "presence": stats.presence.value if stats else "offline",
            "load": dict(stats.load) if stats else {},
            "capacity": dict(stats.capacity) if stats else {},
            **({"email": a.email, "phone": a.phone, "voice_client": a.voice_client, "created_at": a.created_at}
               if manager else {}),
        })
    return web.json_response({"items": items})


# -- the routing config (admin / supervisor) ------------------------------------------------------------------


async def _role(request: web.Request) -> str:
    p: Principal = request[PRINCIPAL]
    if p.role == "agent" and p.agent_id is not None:  # an agent token acts with its agent's role
        row = await request.app[DB].read(lambda tx: tx.one("SELECT role FROM agents WHERE id = ?", (p.agent_id,)))
        return str(row["role"]) if row else p.role
    return p.role


async def _manager(request: web.Request) -> Principal:
    p: Principal = request[PRINCIPAL]
    if await _role(request) not in ("admin", "supervisor"):
        raise web.HTTPForbidden(text="changing routing needs an admin or supervisor")
    return p


async def _view(request: web.Request) -> dict[str, Any]:
    router = request.app[ROUTER]
    agents = [router.agent_profile(a.id, a.email, {"id": a.id, "email": a.email, "disabled": a.disabled,
                                                   "phone": a.phone, "voice_client": a.voice_client})
              for a in await list_agents(request.app[DB])]
    return router.routing_view(agents)


async def _change(request: web.Request, kind: str, name: str, body: Any) -> web.Response:
    p = await _manager(request)
    try:
        await request.app[ROUTER].change(kind, name, body, p.agent_id)
    except RoutingConfigError as e:
        raise web.HTTPBadRequest(text=str(e)) from None
    except LookupError as e:
        raise web.HTTPNotFound(text=str(e).strip("'\"")) from None
    except RoutingError as e:
        raise _conflict(e) from None
    return web.json_response(await _view(request))


def _known_skills(request: web.Request) -> set[str]:
    """Every skill name the routing config uses now (stored before skills had to be slugs, or since)."""
    router = request.app[ROUTER]
    routing = request.app[SETTINGS].routing
    known: set[str] = set()
    for q in routing.queues.values():
        known.update(q.skills)
        for stage in q.stages:
            known.update(stage.get("skills") or {})
    for a in routing.agents:
        known.update(a.skills)
    for profile in router.overrides.agents.values():
        known.update(profile.get("skills") or {})
    return known


def _slugs(kind: str, names: list[str], known: set[str]) -> None:
    try:
        check_new(kind, names, known)
    except SlugError as e:
        raise BadBody(422, str(e)) from None


async def get_routing(request: web.Request) -> web.Response:
    await _manager(request)
    return web.json_response(await _view(request))


async def put_queue(request: web.Request) -> web.Response:
    await _manager(request)
    body = await read_json(request, QueueSettings)
    name = request.match_info["name"]
    _slugs("queue", [name], set(request.app[SETTINGS].routing.queues))
    skills = [*body.skills, *(k for stage in body.stages if isinstance(stage.get("skills"), dict)
                              for k in stage["skills"])]
    _slugs("skill", [str(k) for k in skills], _known_skills(request))
    return await _change(request, QUEUE, name, body.model_dump())


async def delete_queue(request: web.Request) -> web.Response:
    return await _change(request, QUEUE, request.match_info["name"], None)


async def put_rules(request: web.Request) -> web.Response:
    await _manager(request)
    body = await read_json(request, RoutingRulesBody)
    known = {str(r.get("name")) for r in request.app[SETTINGS].routing.rules if isinstance(r, dict)}
    _slugs("rule", [r["name"] for r in body.rules if isinstance(r, dict) and isinstance(r.get("name"), str)], known)
    return await _change(request, RULES, "", body.model_dump(exclude_none=True))


async def put_agent_profile(request: web.Request) -> web.Response:
    await _manager(request)
    agent_id = path_id(request)
    body = await read_json(request, RoutingAgentBody)
    _slugs("skill", list(body.skills), _known_skills(request))
    if agent_id not in {a.id for a in await list_agents(request.app[DB])}:
        raise web.HTTPNotFound(text=f"no agent {agent_id}")
    return await _change(request, AGENT, str(agent_id), body.model_dump())


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/routing", get_routing),
        web.put("/api/v1/routing/queues/{name}", put_queue),
        web.delete("/api/v1/routing/queues/{name}", delete_queue),
        web.put("/api/v1/routing/rules", put_rules),
        web.put(r"/api/v1/routing/agents/{id:\d+}", put_agent_profile),
        web.post("/api/v1/agents/me/presence", set_presence),
        web.get("/api/v1/offers", offers),
        web.post(r"/api/v1/conversations/{id:\d+}/accept", accept),
        web.post(r"/api/v1/conversations/{id:\d+}/reject", reject),
        web.post(r"/api/v1/conversations/{id:\d+}/transfer", transfer),
        web.get("/api/v1/queues", queues),
        web.get("/api/v1/agents", agents),
    ]
