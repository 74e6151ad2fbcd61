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


#: Up to this many queues (and the agent's own), a page is the merge of each one's first rows; past it, one walk of
#: every active conversation in inbox order. The walk reads about LIMIT / (the share of active conversations P may
#: act on) rows, the merge LIMIT per queue: for an agent of 2 of 50 queues 5,000 against 600, for a supervisor of
#: all 50 queues 200 against 10,200. Eight is where the two meet when queues are alike (sqrt of 50 and more).
MERGE_UP_TO = 8


def page(p: Principal, view: View, now: datetime, limit: int) -> tuple[str, list[Any]]:
    """SQL selecting the view's first LIMIT conversations for P in inbox order (every column; the caller orders
    them), and its parameters: the rows of `... WHERE where(p, view, now) ORDER BY updated_at DESC, id DESC LIMIT
    limit`, read from the indexes that keep active conversations in that order (conversations_active, and per queue
    and per agent since migration 119)."""
    if view.id == "mentions":
        sql, params = mentions_condition(p)
    else:
        sql, params = condition(view.filters, now)
    parts = visibility.work_parts(p, "c.")
    f = view.filters
    # A view of one of P's queues, or of P's own (Mine), is inside the rule already: one walk of that index.
    own = (f.queue is not None and f.queue in p.queues) or (f.agent_id is not None and f.agent_id == p.agent_id)
    if parts is None or own or len(parts) > MERGE_UP_TO:
        work, work_params = visibility.work_condition(p, "c.")
        return (f"SELECT c.* FROM conversations c WHERE {sql} AND {work} ORDER BY c.updated_at DESC, "
                "c.id DESC LIMIT ?", [*params, *work_params, limit])
    if not parts:
        return "SELECT c.* FROM conversations c WHERE 1 = 0", []
    # Each part in inbox order from its own index, merged: PostgreSQL's Merge Append and SQLite's merge of a
    # compound SELECT stop once the page is full. The parts are disjoint (UNION ALL, nothing read twice to drop it).
    merged: list[str] = []
    merged_params: list[Any] = []
    for n, (part, part_params) in enumerate(parts):
        merged.append(f"SELECT * FROM (SELECT c.* FROM conversations c WHERE {sql} AND {part} "
                      f"ORDER BY c.updated_at DESC, c.id DESC LIMIT ?) p{n}")
        merged_params += [*params, *part_params, limit]
    return (f"SELECT * FROM ({' UNION ALL '.join(merged)}) c ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
            [*merged_params, limit])


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
