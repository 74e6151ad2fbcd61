"""Views: the inbox's lists. Built-in ones (All open, Mine, Unassigned, each queue, Snoozed, Resolved, Mentions) and
saved filters, an agent's own or shared with the team. Each is a set of filters turned into one SQL condition, used
both for the list and for its count, always inside what the principal may act on (hub.visibility.work_condition)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub import visibility
from hub.api.auth import Principal
from hub.api.schemas import ViewFilters
from hub.history.db import Tx
from hub.model import format_time

ACTIVE = "c.status IN ('open', 'assigned')"


@dataclass(frozen=True)
class View:
    id: str  # "mine", "queue:support", "saved:12"
    name: str
    kind: str  # builtin | personal | shared
    filters: ViewFilters


#: the default: every open conversation the principal may act on (the inbox's sections)
ALL = View("all", "All open", "builtin", ViewFilters())


def condition(f: ViewFilters, now: datetime) -> tuple[str, list[Any]]:
    """The WHERE condition (on conversations as `c`) that keeps what F asks for."""
    parts = [ACTIVE if f.status is None else "c.status = ?"]
    params: list[Any] = [] if f.status is None else [f.status]
    if f.channel:
        parts.append("(c.channel = ? OR c.last_inbound_channel = ?)")
        params += [f.channel, f.channel]
    if f.queue:
        parts.append("c.queue = ?")
        params.append(f.queue)
    if f.label:
        # A conversation's own label, or its customer's (a VIP customer's every conversation).
        parts.append("(EXISTS (SELECT 1 FROM conversation_labels l WHERE l.conversation_id = c.id AND l.label = ?) "
                     "OR EXISTS (SELECT 1 FROM customer_labels cl WHERE cl.customer_id = c.customer_id "
                     "AND cl.label = ?))")
        params += [f.label, f.label]
    if f.agent_id is not None:
        parts.append("c.agent_id = ?")
        params.append(f.agent_id)
    if f.unassigned is not None:
        parts.append("c.agent_id IS NULL" if f.unassigned else "c.agent_id IS NOT NULL")
    if f.waiting_seconds:
        # The customer has waited that long: a message of theirs that old, with no agent reply after it.
        parts.append("EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in' "
                     "AND m.created_at <= ? AND NOT EXISTS (SELECT 1 FROM messages r WHERE r.conversation_id = c.id "
                     "AND r.direction = 'out' AND r.agent_id IS NOT NULL AND r.kind NOT IN ('note', 'event') "
                     "AND r.created_at > m.created_at))")
        params.append(format_time(now - timedelta(seconds=f.waiting_seconds)))
    return " AND ".join(parts), params


def mentions_condition(p: Principal) -> tuple[str, list[Any]]:
    """The Mentions view: conversations, open or not, whose internal notes @mention P (hub.mentions)."""
    if p.agent_id is None:
        return "1 = 0", []  # an admin token is nobody to mention
    return "EXISTS (SELECT 1 FROM mentions mn WHERE mn.conversation_id = c.id AND mn.agent_id = ?)", [p.agent_id]


def builtin(p: Principal, queues: list[tuple[str, str]]) -> list[View]:
    """The built-in views P has: Mine (an admin token acts as no agent), one per queue (name, title) they work in."""
    out = [ALL]
    if p.agent_id is not None:
        out.append(View("mine", "Mine", "builtin", ViewFilters(agent_id=p.agent_id)))
    out.append(View("unassigned", "Unassigned", "builtin", ViewFilters(unassigned=True)))
    out += [View(f"queue:{q}", title, "builtin", ViewFilters(queue=q)) for q, title in _queue_titles(p, queues)]
    out.append(View("snoozed", "Snoozed", "builtin", ViewFilters(status="snoozed")))
    out.append(View("resolved", "Resolved", "builtin", ViewFilters(status="resolved")))
    out.append(View("mentions", "Mentions", "builtin", ViewFilters()))
    return out


def _queue_titles(p: Principal, queues: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(q, title) for q, title in queues if visibility.sees_everything(p) or q in p.queues]


def saved(tx: Tx, p: Principal) -> list[View]:
    rows = tx.all("SELECT id, agent_id, name, filters FROM saved_views WHERE agent_id IS NULL OR agent_id = ? "
                  "ORDER BY agent_id IS NULL, name, id", (p.agent_id if p.agent_id is not None else -1,))
    return [View(f"saved:{r['id']}", str(r["name"]), "shared" if r["agent_id"] is None else "personal",
                 ViewFilters.model_validate(json.loads(r["filters"]))) for r in rows]


def where(p: Principal, view: View, now: datetime) -> tuple[str, list[Any]]:
    """The view's full condition for P: its filters, inside P's work list."""
    work, work_params = visibility.work_condition(p, "c.")
    if view.id == "mentions":
        sql, params = mentions_condition(p)
    else:
        sql, params = condition(view.filters, now)
    return f"{sql} AND {work}", [*params, *work_params]


def count(tx: Tx, p: Principal, view: View, now: datetime) -> int:
    sql, params = where(p, view, now)
    row = tx.one(f"SELECT COUNT(*) AS n FROM conversations c WHERE {sql}", params)
    return int(row["n"]) if row else 0


def to_json(view: View, n: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": view.id, "name": view.name, "kind": view.kind,
                           "filters": view.filters.model_dump(exclude_none=True)}
    if n is not None:
        out["count"] = n
    return out
