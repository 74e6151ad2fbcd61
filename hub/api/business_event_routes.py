"""POST /api/v1/events: a business event (an order, a failed payment, any typed event with a JSON payload) onto a
customer's timeline, idempotent on its external id (hub.business_events)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.api.auth import require_admin
from hub.api.errors import error, read_json
from hub.business_events import BusinessEventBody, Conflict, Recorded, record
from hub.events import Event
from hub.history import store
from hub.history.db import Tx
from hub.keys import BUS, DB, SETTINGS
from hub.model import format_time, utcnow


async def post_event(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request, BusinessEventBody)
    region = request.app[SETTINGS].identities.default_region
    now = format_time(utcnow())

    def write(tx: Tx) -> Recorded:
        return record(tx, body, region, now)

    try:
        done = await request.app[DB].write(write)
    except Conflict as e:
        return error(409, str(e))
    if not done.duplicate:
        def load(tx: Tx) -> dict[str, Any]:
            msg = store.message(tx, done.message_id)
            return {"message": msg.to_json(), "conversation": store.conversation(tx, msg.conversation_id).to_json(),
                    "customer": store.customer(tx, msg.customer_id).to_json()}

        # The console shows the card at once; the automation runner wakes on it too.
        await request.app[BUS].publish(Event("message.created", await request.app[DB].read(load)))
    return web.json_response({"event": done.event, "duplicate": done.duplicate}, status=200 if done.duplicate else 201)


def routes() -> list[web.RouteDef]:
    return [web.post("/api/v1/events", post_event)]
