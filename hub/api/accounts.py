"""Admin API for people and credentials: agent accounts (create, edit, disable, reset password) and API tokens
(create - the secret is shown once - list, revoke). Supervisors may read agents; everything else is admin only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from hub import tasks as background
from hub.agents import AgentConflict, AgentError, AgentNotFound, add_agent, find_agent, update_agent
from hub.api.auth import PRINCIPAL, Principal, create_token, hash_token, require_admin
from hub.api.errors import BadBody, read_json
from hub.api.live_access import AGENT_UPDATED, TOKEN_REVOKED
from hub.api.params import path_id
from hub.api.schemas import AgentCreateBody, AgentPatchBody, TokenCreateBody
from hub.events import Event
from hub.history.db import Tx
from hub.keys import AUTH, BUS, DB, ROUTER
from hub.model import Agent, format_time, utcnow
from hub.routing.service import RoutingError

log = logging.getLogger("hub.api.accounts")

# TOKEN_REVOKED and AGENT_UPDATED are published so every hub process drops what it remembers about a token or agent
# (see forget_on_events), and live sockets re-check their principal (hub.api.live_access).
AGENT_CREATED = "agent.created"


def _supervisor(request: web.Request) -> Principal:
    p: Principal = request[PRINCIPAL]
    if p.role not in ("admin", "supervisor"):
        raise web.HTTPForbidden(text="this needs an admin or supervisor")
    return p


def _agent_json(a: Agent) -> dict[str, Any]:
    return a.to_json()


async def _apply_to_routing(request: web.Request, agent_id: int, disabled: bool) -> None:
    """Queue memberships and disabled state reach the routing engine (here and, through the store, elsewhere)."""
    router = request.app[ROUTER]
    if disabled:
        with contextlib.suppress(RoutingError):  # not known to routing (never signed in): nothing to take away
            await router.set_presence(agent_id, "offline")
    await router.refresh_agents()


# -- agents ------------------------------------------------------------------------------------------------------


async def get_agent(request: web.Request) -> web.Response:
    _supervisor(request)
    agent_id = path_id(request)
    agent = await find_agent(request.app[DB], str(agent_id))
    if agent is None:
        raise web.HTTPNotFound(text=f"agent {agent_id} does not exist")
    return web.json_response(_agent_json(agent))


async def create_agent(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request, AgentCreateBody)
    db = request.app[DB]
    if await find_agent(db, body.email.strip().lower()) is not None:
        raise web.HTTPConflict(text=f"an agent with email {body.email.strip().lower()} already exists")
    try:
        agent = await add_agent(db, body.name.strip(), body.email, body.password, body.role, body.queues,
                                body.phone, body.voice_client)
    except AgentError as e:
        raise BadBody(422, str(e)) from None
    await request.app[BUS].publish(Event(AGENT_CREATED, {"agent": _agent_json(agent)}))
    await _apply_to_routing(request, agent.id, disabled=False)
    log.info("agent %d (%s) created by %s", agent.id, agent.role, _who(request))
    return web.json_response(_agent_json(agent), status=201)


async def patch_agent(request: web.Request) -> web.Response:
    p = require_admin(request)
    agent_id = path_id(request)
    body = await read_json(request, AgentPatchBody)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    for required in ("name", "email", "role", "queues", "disabled", "password"):
        if required in changes and changes[required] is None:
            raise BadBody(422, f"invalid body: {required}: cannot be null")
    if p.agent_id == agent_id and (changes.get("disabled") or changes.get("role", "admin") != "admin"):
        raise web.HTTPConflict(text="you cannot disable yourself or give up your own admin role")
    try:
        before, after = await update_agent(request.app[DB], agent_id, changes)
    except AgentNotFound as e:
        raise web.HTTPNotFound(text=str(e)) from None
    except AgentConflict as e:
        raise web.HTTPConflict(text=str(e)) from None
    except AgentError as e:
        raise BadBody(422, str(e)) from None
    ended = 0
    if (after.disabled and not before.disabled) or ("password" in changes and p.agent_id != agent_id):
        # A disabled agent, or one whose password was reset, is signed out everywhere at once.
        ended = await request.app[DB].write(
            lambda tx: tx.exec("DELETE FROM console_sessions WHERE agent_id = ?", (agent_id,)))
    request.app[AUTH].forget(agent_id=agent_id)
    await request.app[BUS].publish(Event(AGENT_UPDATED, {"agent": _agent_json(after), "sessions_ended": ended}))
    # Phone and Twilio Client identity too: routing offers calls only to agents the hub can ring (hub.calls).
    if (before.queues != after.queues or before.disabled != after.disabled or before.phone != after.phone
            or before.voice_client != after.voice_client):
        await _apply_to_routing(request, agent_id, disabled=after.disabled)
    log.info("agent %d changed (%s) by %s", agent_id, ", ".join(sorted(changes)), _who(request))
    return web.json_response(_agent_json(after))


def _who(request: web.Request) -> str:
    p: Principal = request[PRINCIPAL]
    return f"agent {p.agent_id}" if p.agent_id is not None else f"token {p.token_id}"


# -- API tokens --------------------------------------------------------------------------------------------------

_TOKEN_COLUMNS = ("t.id, t.role, t.agent_id, t.label, t.created_at, t.revoked_at, a.name AS agent_name "
                  "FROM api_tokens t LEFT JOIN agents a ON a.id = t.agent_id")


def _token(row: Any) -> dict[str, Any]:
    return {"id": int(row["id"]), "role": row["role"], "agent_id": row["agent_id"], "agent_name": row["agent_name"],
            "label": row["label"], "created_at": row["created_at"], "revoked_at": row["revoked_at"]}


async def list_tokens(request: web.Request) -> web.Response:
    require_admin(request)
    rows = await request.app[DB].read(
        lambda tx: tx.all(f"SELECT {_TOKEN_COLUMNS} ORDER BY t.revoked_at IS NOT NULL, t.id DESC LIMIT 500"))
    return web.json_response({"items": [_token(r) for r in rows]})


async def create_api_token(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request, TokenCreateBody)
    db = request.app[DB]
    if body.role == "agent":
        if body.agent_id is None:
            raise BadBody(422, "an agent token belongs to an agent: pass agent_id")
        agent = await find_agent(db, str(body.agent_id))
        if agent is None or agent.disabled:
            raise BadBody(422, f"agent {body.agent_id} does not exist or is disabled")
    elif body.agent_id is not None:
        raise BadBody(422, "an admin token acts as no agent: leave agent_id out")
    secret = await create_token(db, body.role, body.agent_id, body.label.strip())
    row = await db.read(lambda tx: tx.one(f"SELECT {_TOKEN_COLUMNS} WHERE t.token_hash = ?", (hash_token(secret),)))
    assert row is not None
    log.info("API token %d (%s) created by %s", row["id"], body.role, _who(request))
    # The only time the secret is ever shown: the store keeps its hash.
    return web.json_response({**_token(row), "token": secret}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    require_admin(request)
    token_id = path_id(request)
    now = format_time(utcnow())

    def write(tx: Tx) -> Any:
        tx.exec("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id))
        return tx.one(f"SELECT {_TOKEN_COLUMNS} WHERE t.id = ?", (token_id,))

    row = await request.app[DB].write(write)
    if row is None:
        raise web.HTTPNotFound(text=f"token {token_id} does not exist")
    request.app[AUTH].forget(token_id=token_id)
    await request.app[BUS].publish(Event(TOKEN_REVOKED, {"token_id": token_id}))
    log.info("API token %d revoked by %s", token_id, _who(request))
    return web.json_response(_token(row))


async def forget_on_events(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: tokens revoked and agents changed by another hub process stop working here at once too."""
    # Not woken for every message; a lagging subscription (events dropped, Redis reconnected) takes the next event
    # of any type, so the cache is still dropped as soon as the hub hears anything.
    sub = app[BUS].subscribe(lambda event: sub.lagged or event.type in (TOKEN_REVOKED, AGENT_UPDATED))

    async def run() -> None:
        async for event in sub:
            if sub.lagged:  # events were dropped: any of them may have been a revocation
                sub.lagged = False
                app[AUTH].forget()
            if event.type == TOKEN_REVOKED and isinstance(event.data.get("token_id"), int):
                app[AUTH].forget(token_id=event.data["token_id"])
            elif event.type == AGENT_UPDATED and isinstance(event.data.get("agent"), dict):
                app[AUTH].forget(agent_id=event.data["agent"].get("id"))

    task = asyncio.create_task(run(), name="hub-auth-forget")
    yield
    sub.close()
    await background.stop([task])


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/agents", create_agent),
        web.get(r"/api/v1/agents/{id:\d+}", get_agent),
        web.patch(r"/api/v1/agents/{id:\d+}", patch_agent),
        web.get("/api/v1/tokens", list_tokens),
        web.post("/api/v1/tokens", create_api_token),
        web.delete(r"/api/v1/tokens/{id:\d+}", revoke_token),
    ]
