"""The console's own HTTP surface: the page, its static files, sign in / session / sign out, and the inbox list
(the one REST read the console needs that the API did not have: open work with customer names and a preview)."""

from __future__ import annotations

import dataclasses
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import Field

from hub.api import view_routes
from hub.api.auth import CSRF_HEADER, PRINCIPAL, Principal
from hub.api.errors import read_json
from hub.api.live_access import SESSION_ENDED
from hub.api.schemas import Body
from hub.channels.base import Channel
from hub.console import assets
from hub.console.sessions import SESSIONS, SignInError
from hub.console.throttle import Throttled
from hub.customer_profile import display_name
from hub.events import Event
from hub.history.db import Tx
from hub.inbox import labels, views
from hub.json_codec import json_response
from hub.keys import BUS, CHANNELS, DB, METRICS, SETTINGS
from hub.model import CHANNEL_IDENTITY_KIND, IDENTITY_KINDS, parse_time, utcnow


# The page runs only our own scripts; customer HTML lives in sandboxed srcdoc frames, which inherit this policy
# (so no script runs there even if the sandbox were lost). Inline styles are allowed: emails are made of them.
def _csp(request: web.Request) -> str:
    ws = f"ws://{request.host} wss://{request.host}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:;"
        " media-src 'self' blob:;"
        f" connect-src 'self' {ws}; frame-src 'self' about:; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
    )


class SignInBody(Body):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


def own_origins(request: web.Request) -> set[str]:
    """Origins the console is served from: this request's host, and server.public_url when set (behind a proxy)."""
    origins = {f"{request.scheme}://{request.host}"}
    public = request.app[SETTINGS].server.public_url
    if public:
        parts = urlsplit(public)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and origin in own_origins(request)


def _secure_cookie(request: web.Request) -> bool:
    public: str = request.app[SETTINGS].server.public_url
    return public.startswith("https://")


async def page(request: web.Request) -> web.StreamResponse:
    if request.path == "/console":
        raise web.HTTPFound("/console/")
    resp = assets.respond(request, assets.current().page, "no-cache")
    resp.headers.update({
        "Content-Security-Policy": _csp(request),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    })
    return resp


async def _whoami(request: web.Request, agent_id: int, csrf: str) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    configured = request.app[CHANNELS]

    def load(tx: Tx) -> dict[str, Any]:
        row = tx.one("SELECT id, name, email, role FROM agents WHERE id = ?", (agent_id,))
        assert row is not None
        queues = [str(r["queue"]) for r in tx.all(
            "SELECT queue FROM agent_queues WHERE agent_id = ? ORDER BY queue", (agent_id,))]
        return {"id": int(row["id"]), "name": row["name"], "email": row["email"], "role": row["role"],
                "queues": queues}

    agent = await request.app[DB].read(load)
    return {
        "agent": agent,
        "csrf_token": csrf,
        "server_time": time.time(),
        "channels": configured_channels(configured),
        "queues": [{"name": n, "title": q.title or n} for n, q in settings.routing.queues.items()],
        "max_attachment_bytes": settings.outbox.max_attachment_bytes,
    }


def configured_channels(configured: Mapping[str, Channel]) -> list[dict[str, Any]]:
    """Each configured channel: which identities it reaches and what it can carry (its Capabilities)."""
    channels = []
    for name, ch in sorted(configured.items()):
        kinds = getattr(ch, "identity_kinds", None) or (CHANNEL_IDENTITY_KIND.get(name),)
        caps = getattr(ch, "capabilities", None)
        channels.append({
            "name": name,
            "identity_kinds": [k for k in kinds if k] or list(IDENTITY_KINDS),
            "voice": bool(getattr(caps, "voice", False)),
            "media": bool(getattr(caps, "media", False)),
            "capabilities": dataclasses.asdict(caps) if caps is not None else {},
        })
    return channels


async def sign_in(request: web.Request) -> web.Response:
    # Login CSRF: a JSON body cannot be sent cross-site without a CORS preflight, and a browser's Origin must be ours.
    if "Origin" in request.headers and not same_origin(request):
        raise web.HTTPForbidden(text="sign-in is only accepted from the console's own page")
    body = await read_json(request, SignInBody)
    sessions = request.app[SESSIONS]
    ip = request.remote or ""
    try:
        info = await sessions.sign_in(body.email, body.password, ip, request.headers.get("User-Agent", ""))
    except Throttled as e:
        request.app[METRICS].signin_throttled.inc()
        retry = str(int(e.retry_after) + 1)
        return web.json_response({"error": {"status": 429, "message": str(e), "retry_after": int(retry)}},
                                 status=429, headers={"Retry-After": retry})
    except SignInError as e:
        return web.json_response({"error": {"status": 401, "message": str(e)}}, status=401)
    resp = web.json_response(await _whoami(request, info.agent_id, info.csrf_token))
    resp.set_cookie(
        sessions.cookie_name, info.token, path="/", httponly=True, samesite="Strict",
        secure=_secure_cookie(request), max_age=int(sessions.settings.session_lifetime_seconds),
    )
    return resp


async def session(request: web.Request) -> web.Response:
    sessions = request.app[SESSIONS]
    token = request.cookies.get(sessions.cookie_name)
    found = await sessions.verify(token) if token else None
    if found is None:
        return web.json_response({"error": {"status": 401, "message": "not signed in"}}, status=401)
    assert found.principal.agent_id is not None
    return web.json_response(await _whoami(request, found.principal.agent_id, found.csrf_token))


async def sign_out(request: web.Request) -> web.Response:
    sessions = request.app[SESSIONS]
    token = request.cookies.get(sessions.cookie_name)
    if token:
        found = await sessions.verify(token)
        if found is not None:
            # Signing someone out is a write: a cross-site page must not be able to do it either.
            if not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), found.csrf_token.encode()):
                raise web.HTTPForbidden(text=f"missing or wrong {CSRF_HEADER} header")
            await sessions.sign_out(token)
            # Its live sockets, in every hub process, close now (hub.api.live_access).
            await request.app[BUS].publish(Event(SESSION_ENDED, {"agent_id": found.principal.agent_id}))
    resp = web.json_response({"signed_out": True})
    resp.del_cookie(sessions.cookie_name, path="/", secure=_secure_cookie(request), httponly=True,
                    samesite="Strict")
    return resp


# -- inbox -----------------------------------------------------------------------------------------------------


def _inbox(tx: Tx, p: Principal, limit: int, targets: dict[str, float], view: views.View | None = None,
           ) -> list[dict[str, Any]]:
    """TARGETS: each queue's first-response target in seconds (0: none). VIEW: which list (default: all open)."""
    # The work list: what the principal may act on (hub.visibility), not every customer they may read. The page is
    # chosen first (views.page: from the indexes in inbox order), and only its rows are looked into: at a center's
    # scale a condition evaluated before the LIMIT runs for every open conversation.
    page, params = views.page(p, view or views.ALL, utcnow(), limit)
    # One statement for the page, its last messages and identities (each a round trip on PostgreSQL); the inner
    # LIMIT keeps PostgreSQL from merging it into the join, so last_id is computed once a row.
    rows = tx.all(
        "SELECT x.*, lm.channel AS last_channel, lm.direction AS last_direction, lm.kind AS last_kind, "
        "lm.text AS last_text, lm.meta AS last_meta, lm.status AS last_status, lm.created_at AS last_created_at "
        "FROM ("
        "SELECT c.id, c.customer_id, c.status, c.channel, c.queue, c.agent_id, c.created_at, c.updated_at, "
        "c.last_inbound_channel, c.snoozed_until, c.snoozed_by, c.respond_by, cu.name AS customer_name, "
        "EXISTS (SELECT 1 FROM messages m "
        "WHERE m.conversation_id = c.id AND m.direction = 'out' AND m.agent_id IS NOT NULL "
        "AND m.kind NOT IN ('note', 'event')) AS replied, "
        # What was said last, not the hub's own lines ("Snoozed until …", "Reopened by …"); and who to show.
        "(SELECT m.id FROM messages m WHERE m.conversation_id = c.id AND m.kind NOT IN ('note', 'event') "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS last_id, "
        # "kind:value" in one probe (a kind has no colon), not an id looked up again.
        "(SELECT i.kind || ':' || i.value FROM identities i WHERE i.customer_id = c.customer_id ORDER BY i.id "
        "LIMIT 1) AS identity "
        f"FROM ({page}) c JOIN customers cu ON cu.id = c.customer_id LIMIT ?) x "
        "LEFT JOIN messages lm ON lm.id = x.last_id "
        "ORDER BY x.updated_at DESC, x.id DESC",
        (*params, limit),
    )
    out = []
    conv_labels, customer_labels = labels.of_page(tx, [int(r["id"]) for r in rows],
                                                  list({int(r["customer_id"]) for r in rows}))
    for r in rows:
        preview = None
        if r["last_id"] is not None:
            # Most messages have no meta ("{}"): parse only what has some.
            meta = json.loads(r["last_meta"]) if r["last_meta"] and r["last_meta"] != "{}" else {}
            preview = {"id": r["last_id"], "channel": r["last_channel"], "direction": r["last_direction"],
                       "kind": r["last_kind"], "text": str(r["last_text"])[:160], "status": r["last_status"],
                       "subject": meta.get("subject") if isinstance(meta, dict) else None,
                       "created_at": r["last_created_at"]}
        kind, _, value = str(r["identity"]).partition(":")
        ident = (kind, value) if r["identity"] is not None else None
        # When the first agent reply is due (epoch seconds), while none has been sent: the console marks it late.
        # The deadline routing stored as it entered its queue (business hours counted); one opened before
        # deadlines were stored: its arrival plus the queue's target.
        target = targets.get(str(r["queue"]), 0.0)
        if r["replied"]:
            due = None
        elif r["respond_by"] is not None:
            due = float(r["respond_by"])
        else:
            due = parse_time(str(r["created_at"])).timestamp() + target if target > 0 else None
        out.append({
            "conversation": {k: r[k] for k in ("id", "customer_id", "status", "channel", "queue", "agent_id",
                                               "created_at", "updated_at", "last_inbound_channel")},
            "first_reply_due": due,
            "labels": conv_labels[int(r["id"])],
            "snooze": {"until": r["snoozed_until"], "owner": r["snoozed_by"]} if r["status"] == "snoozed" else None,
            "customer": {"id": r["customer_id"], "name": r["customer_name"],
                         "display_name": display_name(int(r["customer_id"]), str(r["customer_name"]),
                                                      [ident] if ident else []),
                         "identity": r["identity"],  # "kind:value" as read, or None
                         "labels": customer_labels[int(r["customer_id"])]},
            "last_message": preview,
        })
    return out


async def inbox(request: web.Request) -> web.Response:
    """?view=<id> (GET /api/v1/views lists them), or filters given as query parameters; default: all open."""
    p = request[PRINCIPAL]
    targets = {name: q.first_response for name, q in request.app[SETTINGS].routing.queues.items()}
    view = await view_routes.requested_view(request)
    items = await request.app[DB].read(lambda tx: _inbox(tx, p, 200, targets, view))
    return json_response({"items": items, "server_time": time.time(), "view": views.to_json(view) if view else None})


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/console", page),
        web.get("/console/", page),
        web.post("/console/session", sign_in),
        web.get("/console/session", session),
        web.delete("/console/session", sign_out),
        web.get("/console/static/{path:.+}", assets.static),
        web.get("/api/v1/inbox", inbox),
    ]
