"""What a web chat visitor is told before writing: whether anyone can answer now (agents of the queue web chats go
to, available with room for one more chat; business hours: channels.webchat.hours when set, else the queue's stored
business hours, else the default's), and how long the first reply typically takes (when the hub has seen enough
recent conversations to say). GET /webchat/availability, public, for the widget."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hub.business_hours import is_open, parse_span, zone
from hub.config import WebchatSettings
from hub.history.db import Database, Tx
from hub.keys import BUSINESS_HOURS, DB, ROUTER, SETTINGS
from hub.model import format_time, parse_time, utcnow
from hub.routing.rules import Contact
from hub.routing.types import CAPACITY_CLASS, Presence

log = logging.getLogger("hub.routing.availability")

# The typical wait is the median time to the first agent reply over the queue's recent conversations.
WAIT_WINDOW = timedelta(hours=2)
WAIT_MIN_SAMPLES = 3
WAIT_SAMPLES = 200
CACHE_SECONDS = 5.0  # every open widget asks; one answer serves them all for a few seconds


@dataclass
class _Cached:
    at: float
    value: dict[str, Any]


def next_open(spans: list[str], tz: str, now: datetime) -> datetime | None:
    """When the next span of business hours starts after NOW (None: no hours, i.e. always open)."""
    if not spans:
        return None
    local = now.astimezone(zone(tz))
    starts = []
    for span in map(parse_span, spans):
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            if day.weekday() in span.days:
                start = datetime.combine(day, span.start, tzinfo=local.tzinfo)
                if start > local:
                    starts.append(start)
                    break
    return min(starts) if starts else None


def typical_wait(tx: Tx, queue: str, since: str) -> float | None:
    """Median seconds from a conversation's start to its first reply by an agent, over the queue's conversations
    started since SINCE; None below WAIT_MIN_SAMPLES (an estimate from one or two chats would mislead)."""
    rows = tx.all(
        "SELECT c.created_at AS started, MIN(m.created_at) AS replied FROM conversations c "
        "JOIN messages m ON m.conversation_id = c.id AND m.direction = 'out' AND m.agent_id IS NOT NULL "
        "AND m.kind = 'text' WHERE c.queue = ? AND c.created_at >= ? GROUP BY c.id, c.created_at "
        "ORDER BY c.created_at DESC LIMIT ?",
        (queue, since, WAIT_SAMPLES),
    )
    waits = [max(0.0, (parse_time(str(r["replied"])) - parse_time(str(r["started"]))).total_seconds())
             for r in rows]
    return statistics.median(waits) if len(waits) >= WAIT_MIN_SAMPLES else None


async def availability(request: web.Request) -> dict[str, Any]:
    settings: WebchatSettings = request.app[SETTINGS].channels.webchat
    router = request.app[ROUTER]
    db: Database = request.app[DB]
    now = utcnow()
    queue = router.engine.choose_queue(Contact(channel="webchat")).queue
    stats = await router.engine.queue_stats(queue)
    timezone = settings.timezone
    if settings.hours:  # the config's hours win: set before business hours lived in the store
        open_now = is_open(settings.hours, settings.timezone, now)
        opens = next_open(settings.hours, settings.timezone, now)
    else:
        stored = await request.app[BUSINESS_HOURS].for_queue(queue)
        open_now = stored is None or stored.is_open(now)
        opens = stored.next_open(now) if stored is not None else None
        timezone = stored.timezone if stored is not None else timezone

    def read(tx: Tx) -> tuple[list[int], float | None]:
        members = [int(r["agent_id"]) for r in tx.all(
            "SELECT q.agent_id FROM agent_queues q JOIN agents a ON a.id = q.agent_id "
            "WHERE q.queue = ? AND a.disabled = 0", (queue,))]
        return members, typical_wait(tx, queue, format_time(now - WAIT_WINDOW))

    members, wait = await db.read(read)
    free = working = 0
    kind = CAPACITY_CLASS["webchat"]
    for agent in members:
        a = await router.engine.agent_stats(agent)
        if a is None or a.presence != Presence.AVAILABLE:
            continue
        working += 1
        if a.load.get(kind, 0) < a.capacity.get(kind, 0) and a.wrapup_until <= router.clock():
            free += 1
    if not open_now:
        state = "closed"
    elif free:
        state = "online"
    elif working:
        state = "busy"  # agents are at work, every one at their chat capacity: the visitor waits in the queue
    else:
        state = "away"
    opens = opens.astimezone(UTC) if opens is not None and state == "closed" else None
    return {
        "state": state,
        "agents_available": free,
        "waiting": stats.waiting,
        "expected_wait_seconds": round(wait) if wait is not None and state in ("online", "busy") else None,
        "opens_at": format_time(opens) if opens is not None else None,
        "hours": settings.hours,
        "timezone": timezone,
    }


class Availability:
    """The answer, computed at most every CACHE_SECONDS per process."""

    def __init__(self) -> None:
        self.cached: _Cached | None = None

    async def serve(self, request: web.Request) -> web.Response:
        hit = self.cached
        if hit is None or time.monotonic() - hit.at > CACHE_SECONDS:
            try:
                hit = self.cached = _Cached(time.monotonic(), await availability(request))
            except Exception:  # routing state or database unreachable: the widget keeps what it knew
                log.exception("web chat availability could not be worked out")
                return web.json_response({"error": {"status": 503, "message": "availability is unknown right now"}},
                                         status=503, headers={"Access-Control-Allow-Origin": "*",
                                                              "Retry-After": "15"})
        return web.json_response(hit.value, headers={"Access-Control-Allow-Origin": "*",
                                                      "Cache-Control": f"max-age={int(CACHE_SECONDS)}"})


def routes() -> list[web.RouteDef]:
    return [web.get("/webchat/availability", Availability().serve)]
