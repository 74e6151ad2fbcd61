"""Snooze and bulk actions through the API. Snooze: until a time or the customer's next message (hub.inbox.snooze);
wake early by DELETE. Bulk: several conversations at once, each through the same function as the single action
(routing's claim and transfer for assign, the resolve path for resolve), each answered on its own."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from hub.api.auth import PRINCIPAL, Principal
from hub.api.errors import BadBody, read_json
from hub.api.label_routes import label_conversation
from hub.api.ownership import claim_conversation
from hub.api.routes import check_conversation, resolve_conversation
from hub.api.routing_routes import transfer_conversation
from hub.api.schemas import BulkBody, SnoozeBody
from hub.history import store
from hub.inbox import snooze as snoozing
from hub.keys import BUS, DB, ROUTER
from hub.model import format_time, utcnow

MOST_AHEAD = timedelta(days=366)


def _until(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise BadBody(422, f"until: {raw!r} is not an ISO 8601 time (e.g. 2026-12-24T09:00:00Z)") from None
    if when.tzinfo is None:
        raise BadBody(422, "until: give the time zone (Z or +01:00), so the hub wakes it when you mean")
    now = utcnow()
    if when <= now:
        raise BadBody(422, "until: that time has passed; snooze until a later time")
    if when - now > MOST_AHEAD:
        raise BadBody(422, "until: at most a year ahead")
    return when


async def snooze_one(request: web.Request, conv_id: int, until: datetime | None) -> dict[str, Any]:
    """Snooze one conversation the caller may act on: the single action and the bulk one."""
    await check_conversation(request, conv_id)
    p: Principal = request[PRINCIPAL]
    now = format_time(utcnow())

    def write(tx: Any) -> snoozing.Snoozed:
        try:
            return snoozing.snooze(tx, conv_id, until, p.agent_id, now)
        except snoozing.SnoozeError as e:
            raise web.HTTPConflict(text=str(e)) from None

    done = await request.app[DB].write(write)
    await snoozing.after_snooze(request.app[DB], request.app[BUS], request.app[ROUTER], done)
    return done.conversation.to_json() | {"snooze": {"until": format_time(until) if until else None,
                                                    "owner": done.conversation.agent_id}}


async def snooze(request: web.Request) -> web.Response:
    conv_id = int(request.match_info["id"])
    body = await read_json(request, SnoozeBody) if request.body_exists else SnoozeBody()
    return web.json_response(await snooze_one(request, conv_id, _until(body.until)))


async def unsnooze(request: web.Request) -> web.Response:
    """Wake it now: back in its queue, offered to its owner first."""
    conv_id = int(request.match_info["id"])
    await check_conversation(request, conv_id)
    p: Principal = request[PRINCIPAL]
    woken = await request.app[DB].write(lambda tx: snoozing.wake(tx, conv_id, format_time(utcnow()),
                                                                early=True, by=p.agent_id))
    if woken is None:
        raise web.HTTPConflict(text=f"conversation {conv_id} is not snoozed")
    await snoozing.after_wake(request.app[DB], request.app[BUS], request.app[ROUTER], woken)
    conv = await request.app[DB].read(lambda tx: store.conversation(tx, conv_id))
    return web.json_response(conv.to_json())


async def bulk(request: web.Request) -> web.Response:
    """POST /conversations/bulk: one action on each listed conversation; `results` says, per conversation, whether it
    was done and, if not, why (the same answer the single action gives)."""
    body = await read_json(request, BulkBody)
    p: Principal = request[PRINCIPAL]
    if body.action in ("label", "unlabel") and not body.label:
        raise BadBody(422, f"{body.action}: name the label")
    if body.action == "assign" and (body.agent_id is None) == (body.queue is None):
        raise BadBody(422, "assign: give exactly one of agent_id or queue")
    until = _until(body.until) if body.action == "snooze" else None
    results: list[dict[str, Any]] = []
    for conv_id in dict.fromkeys(body.conversation_ids):
        try:
            if body.action == "assign" and body.agent_id is not None and body.agent_id == p.agent_id:
                await claim_conversation(request, conv_id)
            elif body.action == "assign":
                await transfer_conversation(request, conv_id, body.queue, body.agent_id)
            elif body.action in ("label", "unlabel"):
                await label_conversation(request, conv_id, str(body.label), body.action == "label")
            elif body.action == "resolve":
                await resolve_conversation(request, conv_id)
            else:
                await snooze_one(request, conv_id, until)
            results.append({"id": conv_id, "ok": True, "status": 200})
        except web.HTTPException as e:
            results.append({"id": conv_id, "ok": False, "status": e.status, "error": e.text or e.reason})
        except store.NotFound as e:
            results.append({"id": conv_id, "ok": False, "status": 404, "error": str(e)})
    done = sum(1 for r in results if r["ok"])
    return web.json_response({"done": done, "failed": len(results) - done, "results": results})


def routes() -> list[web.RouteDef]:
    return [
        web.post(r"/api/v1/conversations/{id:\d+}/snooze", snooze),
        web.delete(r"/api/v1/conversations/{id:\d+}/snooze", unsnooze),
        web.post("/api/v1/conversations/bulk", bulk),
    ]
