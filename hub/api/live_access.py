"""Live channels follow authorization changes at once: which bus events may change what a socket's principal may
see (a token revoked, a session ended, an agent disabled or given another role or queues), and the principal as the
store says now. Carried by the event bus, so a change made through one hub process reaches sockets in every one."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api.auth import AUTH_VIA, Principal
from hub.console.sessions import SESSIONS
from hub.events import Event
from hub.keys import AUTH

TOKEN_REVOKED = "token.revoked"
AGENT_UPDATED = "agent.updated"
SESSION_ENDED = "session.ended"


def concerns(event: Event, p: Principal) -> bool:
    """Whether EVENT may have changed what P may do."""
    data: dict[str, Any] = event.data
    if event.type == TOKEN_REVOKED:
        return p.token_id != 0 and data.get("token_id") == p.token_id
    if event.type == AGENT_UPDATED:
        agent = data.get("agent")
        return p.agent_id is not None and isinstance(agent, dict) and agent.get("id") == p.agent_id
    if event.type == SESSION_ENDED:
        return p.agent_id is not None and data.get("agent_id") == p.agent_id
    return False


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def current(request: web.Request) -> Principal | None:
    """The principal behind REQUEST's credentials as the store says now (no cache), or None if they no longer
    work: revoked, signed out, expired, disabled."""
    if request.get(AUTH_VIA, "token") == "session":
        sessions = request.app[SESSIONS]
        found = await sessions.verify(request.cookies.get(sessions.cookie_name, ""))
        return found.principal if found is not None else None
    return await request.app[AUTH].verify_now(_bearer(request))
