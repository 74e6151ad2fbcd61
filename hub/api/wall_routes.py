"""GET /api/v1/wall: what the supervisors' wall shows. Live figures (waiting, longest wait, agents ready or busy)
come from routing as they are now; the window's figures (answered, in SLA, offers turned down or missed, abandoned,
first replies, satisfaction answers and the low ones) are counted from the store since `since`, so they survive a
restart and say their time window; each agent's load is what the store says they hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hub.api.auth import PRINCIPAL, Principal
from hub.history import decisions
from hub.history.db import Tx
from hub.keys import DB, ROUTER, SETTINGS
from hub.model import format_time, utcnow
from hub.routing.types import CAPACITY_CLASS


def _since(request: web.Request) -> datetime:
    raw = request.query.get("since")
    if raw is None:
        now = utcnow()
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    epoch = raw.replace(".", "", 1).isdigit()
    try:
        at = datetime.fromtimestamp(float(raw), UTC) if epoch else datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        raise web.HTTPBadRequest(text="since must be an ISO 8601 time (2026-12-06T00:00:00+01:00) or epoch "
                                      "seconds") from None
    if at.tzinfo is None:
        raise web.HTTPBadRequest(text="since needs a UTC offset (Z or +01:00): the wall's day is the viewer's")
    if at > utcnow() + timedelta(minutes=5) or at < utcnow() - timedelta(days=366):
        raise web.HTTPBadRequest(text="since must be within the last year, and not in the future")
    return at.astimezone(UTC)


async def _supervisor(request: web.Request) -> None:
    p: Principal = request[PRINCIPAL]
    role = p.role
    if role == "agent" and p.agent_id is not None:  # an agent token acts with its agent's role
        row = await request.app[DB].read(lambda tx: tx.one("SELECT role FROM agents WHERE id = ?", (p.agent_id,)))
        role = str(row["role"]) if row else role
    if role not in ("admin", "supervisor"):
        raise web.HTTPForbidden(text="the wall is for admins and supervisors")


#: how many of the window's low ratings the wall lists (newest first)
LOW_SHOWN = 10


def satisfaction(tx: Tx, since: str, low_score: int) -> dict[str, Any]:
    """The window's survey answers (counted once, as in the reports: the first answer in time) and its low ones, newest
    first, with the conversation and customer to open."""
    row = tx.one("SELECT COUNT(*) AS n, COALESCE(SUM(score), 0) AS total, "
                 "COALESCE(SUM(CASE WHEN score >= 4 THEN 1 ELSE 0 END), 0) AS satisfied FROM csat_surveys "
                 "WHERE status = 'answered' AND answered_at >= ?", (since,))
    n = int(row["n"]) if row else 0
    low = tx.all(
        "SELECT s.conversation_id, s.score, s.comment, s.answered_at, s.queue, s.agent_id, s.channel, "
        "COALESCE(c.name, '') AS customer, COALESCE(a.name, '') AS agent FROM csat_surveys s "
        "LEFT JOIN customers c ON c.id = s.customer_id LEFT JOIN agents a ON a.id = s.agent_id "
        "WHERE s.status = 'answered' AND s.answered_at >= ? AND s.score <= ? ORDER BY s.answered_at DESC, s.id DESC "
        "LIMIT ?", (since, low_score, LOW_SHOWN))
    return {
        "responses": n,
        "average": round(float(row["total"]) / n, 2) if row and n else None,
        "score": round(int(row["satisfied"]) / n, 4) if row and n else None,  # the reports' csat_score
        "low_score": low_score,
        "low": [{"conversation_id": int(r["conversation_id"]), "score": int(r["score"]),
                 "comment": r["comment"] or "", "answered_at": str(r["answered_at"]), "queue": str(r["queue"]),
                 "channel": r["channel"], "agent_id": r["agent_id"], "agent": str(r["agent"]),
                 "customer": str(r["customer"])} for r in low],
    }


async def wall(request: web.Request) -> web.Response:
    await _supervisor(request)
    since = _since(request)
    stamp = format_time(since)

    low_score = request.app[SETTINGS].csat.low_score

    def load(tx: Tx) -> tuple[dict[str, decisions.QueueFigures], dict[int, dict[str, int]], dict[str, Any]]:
        return decisions.figures(tx, stamp), decisions.holding(tx), satisfaction(tx, stamp, low_score)

    figures, holding, csat = await request.app[DB].read(load)
    queues: list[dict[str, Any]] = []
    for live in await request.app[ROUTER].queue_items():
        queues.append({
            "name": live["name"], "title": live["title"], "sla_wait": live["sla_wait"],
            "first_response": live["first_response"], "first_response_hours": live["first_response_hours"],
            "now": {k: live[k] for k in ("waiting", "longest_wait", "available_agents", "busy_agents")},
            "window": figures.get(live["name"], decisions.QueueFigures()).to_json(),
        })
    agents = []
    for agent_id, channels in sorted(holding.items()):
        classes: dict[str, int] = {}
        for channel, n in channels.items():
            cls = CAPACITY_CLASS.get(channel, channel)
            classes[cls] = classes.get(cls, 0) + n
        agents.append({"id": agent_id, "holding": classes})
    return web.json_response({"since": format_time(since), "queues": queues, "agents": agents, "csat": csat})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/wall", wall)]
