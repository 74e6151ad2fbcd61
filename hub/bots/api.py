"""REST API for bots (admin only): which queue has a bot, where it answers, and where it hands off."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api.auth import require_admin
from hub.api.errors import BadBody, read_json
from hub.api.responses import DeletedName, answer
from hub.bots import registry
from hub.bots.registry import BotBody
from hub.history.db import Tx
from hub.history.store import NotFound
from hub.keys import DB, SETTINGS
from hub.model import format_time, utcnow
from hub.webhooks.subscriptions import new_secret
from hub.webhooks.targets import TargetError, check_url


def _queue(request: web.Request) -> str:
    queue = request.match_info["queue"]
    if queue not in request.app[SETTINGS].routing.queues:
        raise NotFound(f"{queue!r} is not a queue")
    return queue


async def list_bots(request: web.Request) -> web.Response:
    require_admin(request)
    rows = await request.app[DB].read(registry.listing)
    return web.json_response({"items": [registry.to_json(r) for r in rows]})


async def get_bot(request: web.Request) -> web.Response:
    require_admin(request)
    queue = _queue(request)
    row = await request.app[DB].read(lambda tx: registry.get(tx, queue))
    return web.json_response(registry.to_json(row))


async def put_bot(request: web.Request) -> web.Response:
    require_admin(request)
    queue = _queue(request)
    body = await read_json(request, BotBody)
    settings = request.app[SETTINGS]
    try:
        url = check_url(body.url, settings.webhooks.allow_private_targets)
    except TargetError as e:
        raise BadBody(422, f"url: {e}", [{"field": "url", "message": str(e)}]) from None
    if body.handoff_queue not in settings.routing.queues or body.handoff_queue == queue:
        why = f"handoff_queue must be another queue ({', '.join(q for q in settings.routing.queues if q != queue)})"
        raise BadBody(422, why, [{"field": "handoff_queue", "message": why}])
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        old = tx.one("SELECT secret FROM bots WHERE queue = ?", (queue,))
        # The secret stays when the bot is changed (shown whole only when it is new or given).
        secret = body.secret or (str(old["secret"]) if old else new_secret())
        row = registry.save(tx, queue, url, secret, body.handoff_queue, body.enabled, now)
        return registry.to_json(row, with_secret=old is None or body.secret is not None)

    return web.json_response(await request.app[DB].write(write))


async def delete_bot(request: web.Request) -> web.Response:
    require_admin(request)
    queue = _queue(request)
    await request.app[DB].write(lambda tx: registry.delete(tx, queue))
    return answer(DeletedName(deleted=queue))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/bots", list_bots),
        web.get("/api/v1/bots/{queue}", get_bot),
        web.put("/api/v1/bots/{queue}", put_bot),
        web.delete("/api/v1/bots/{queue}", delete_bot),
    ]
