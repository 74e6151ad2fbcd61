"""The inbox's page (views.page, migration 119) holds the same rows in the same order, with the same previews, labels
and identities, as the query it replaced: compared with that query, kept here as it was, for every built-in view
and a few filters, for an admin, agents of few and of many queues, a supervisor, an agent of no queue and a token
of no agent, on a center seeded by bench.inbox's loader and then given ties in inbox order, conversations of no
queue or with an agent outside their queue, snoozed ones, labels, mentions, notes and subjects."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.inbox import Shape, load
from hub.api.auth import Principal
from hub.api.schemas import ViewFilters
from hub.console import handlers
from hub.console.handlers import _inbox
from hub.customer_profile import display_name
from hub.history.db import Database, Row, Tx
from hub.inbox import labels, views
from hub.model import format_time, parse_time

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TARGETS = {f"q{q:02d}": 300.0 for q in range(0, 12, 2)}  # half the queues have a first-response target


def _by_id(tx: Tx, select: str, ids: list[Any]) -> dict[Any, Row]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = tx.all(f"{select} WHERE id IN ({', '.join('?' for _ in wanted)})", wanted)
    return {r["id"]: r for r in rows}


def _inbox_before(tx: Tx, p: Principal, limit: int, targets: dict[str, float], view: views.View | None = None,
                  ) -> list[dict[str, Any]]:
    """hub.console.handlers._inbox before migration 119, as it was."""
    where, params = views.where(p, view or views.ALL, NOW)
    rows = tx.all(
        "SELECT c.id, c.customer_id, c.status, c.channel, c.queue, c.agent_id, c.created_at, c.updated_at, "
        "c.last_inbound_channel, c.snoozed_until, c.snoozed_by, c.respond_by, cu.name AS customer_name, "
        "EXISTS (SELECT 1 FROM messages m "
        "WHERE m.conversation_id = c.id AND m.direction = 'out' AND m.agent_id IS NOT NULL "
        "AND m.kind NOT IN ('note', 'event')) AS replied, "
        "(SELECT m.id FROM messages m WHERE m.conversation_id = c.id AND m.kind NOT IN ('note', 'event') "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS last_id, "
        "(SELECT i.id FROM identities i WHERE i.customer_id = c.customer_id ORDER BY i.id LIMIT 1) AS identity_id "
        f"FROM (SELECT c.* FROM conversations c WHERE {where} ORDER BY c.updated_at DESC, c.id DESC LIMIT ?) c "
        "JOIN customers cu ON cu.id = c.customer_id ORDER BY c.updated_at DESC, c.id DESC",
        (*params, limit),
    )
    out = []
    conv_labels = labels.of_many(tx, "conversation", [int(r["id"]) for r in rows])
    customer_labels = labels.of_many(tx, "customer", list({int(r["customer_id"]) for r in rows}))
    lasts = _by_id(tx, "SELECT id, channel, direction, kind, text, meta, status, created_at FROM messages",
                   [r["last_id"] for r in rows])
    idents = _by_id(tx, "SELECT id, kind, value FROM identities", [r["identity_id"] for r in rows])
    for r in rows:
        last, ident = lasts.get(r["last_id"]), idents.get(r["identity_id"])
        preview = None
        if last is not None:
            meta = json.loads(last["meta"] or "{}")
            preview = {"id": last["id"], "channel": last["channel"], "direction": last["direction"],
                       "kind": last["kind"], "text": str(last["text"])[:160], "status": last["status"],
                       "subject": meta.get("subject") if isinstance(meta, dict) else None,
                       "created_at": last["created_at"]}
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
                                                      [(str(ident["kind"]), str(ident["value"]))] if ident else []),
                         "identity": f"{ident['kind']}:{ident['value']}" if ident else None,
                         "labels": customer_labels[int(r["customer_id"])]},
            "last_message": preview,
        })
    return out


def _vary(tx: Tx) -> None:
    """What bench.inbox's center does not have, and a page must keep straight."""
    tie = format_time(NOW.replace(hour=0))
    # Ties in inbox order across queues and agents (the order is then by id), at the top of every page.
    tx.exec("UPDATE conversations SET updated_at = ? WHERE status <> 'resolved' AND id % 7 = 0", (tie,))
    tx.exec("UPDATE conversations SET queue = NULL WHERE status = 'assigned' AND id % 11 = 0")
    # Agent 1 holds conversations of queues they are not in.
    tx.exec("UPDATE conversations SET agent_id = 1, status = 'assigned' WHERE status <> 'resolved' AND id % 17 = 0")
    tx.exec("UPDATE conversations SET status = 'snoozed', snoozed_until = ?, snoozed_by = agent_id "
            "WHERE status = 'assigned' AND id % 13 = 0", (format_time(NOW.replace(month=7)),))
    tx.exec("UPDATE conversations SET respond_by = 1780000000.5 WHERE id % 19 = 0")
    stamp = format_time(NOW)
    for name in ("vip", "b-late", "a-refund"):
        labels.ensure(tx, name, stamp)
    tx.exec("INSERT INTO conversation_labels (conversation_id, label) SELECT id, 'vip' FROM conversations "
            "WHERE id % 5 = 0")
    tx.exec("INSERT INTO conversation_labels (conversation_id, label) SELECT id, 'a-refund' FROM conversations "
            "WHERE id % 10 = 0")
    tx.exec("INSERT INTO customer_labels (customer_id, label) SELECT id, 'b-late' FROM customers WHERE id % 6 = 0")
    tx.exec("INSERT INTO customer_labels (customer_id, label) SELECT id, 'vip' FROM customers WHERE id % 4 = 0")
    # The last message is a note (not shown), or carries a subject; a customer has no identity.
    tx.exec("UPDATE messages SET kind = 'note' WHERE id % 3 = 0")
    tx.exec("UPDATE messages SET meta = '{\"subject\": \"Re: your order\"}' WHERE id % 4 = 1")
    tx.exec("DELETE FROM identities WHERE customer_id % 23 = 0")
    tx.exec("INSERT INTO mentions (message_id, conversation_id, agent_id, created_at) "
            "SELECT id, conversation_id, 1, ? FROM messages WHERE id % 29 = 0", (stamp,))


def _principals(shape: Shape) -> list[Principal]:
    every = tuple(f"q{q:02d}" for q in range(shape.queues))
    return [
        Principal(0, "admin", None, ()),
        Principal(0, "agent", 1, tuple(shape.agent_queues(1))),  # two queues: the merge
        Principal(0, "agent", 2, tuple(shape.agent_queues(2))),
        Principal(0, "agent", 3, every[:views.MERGE_UP_TO - 1]),  # the most queues the merge takes
        Principal(0, "agent", 4, every[:views.MERGE_UP_TO]),  # one more: the walk
        Principal(0, "supervisor", shape.agents, tuple(shape.agent_queues(shape.agents))),
        Principal(0, "agent", 5, ()),  # no queue: their own only
        Principal(0, "agent", None, every[3:5]),  # a token of no agent
    ]


def _views(p: Principal, shape: Shape) -> list[views.View]:
    queues = [(f"q{q:02d}", f"Queue {q:02d}") for q in range(shape.queues)]
    filters = [ViewFilters(label="vip"), ViewFilters(label="b-late", status="open"), ViewFilters(channel="sms"),
               ViewFilters(agent_id=2), ViewFilters(unassigned=False), ViewFilters(waiting_seconds=3 * 86400),
               ViewFilters(queue="q05", status="resolved"), ViewFilters(queue="q03")]
    return [*views.builtin(p, queues), *(views.View("filter", "Filtered", "filter", f) for f in filters)]


@pytest.mark.parametrize("limit", [200, 9])
async def test_the_page_is_the_query_it_replaced(db: Database, db_url: str, limit: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shape = Shape.of(argparse.Namespace(conversations=400, messages=8000, agents=40, queues=12))
    load(db_url, shape, 7, NOW)
    await db.write(_vary)
    monkeypatch.setattr(handlers, "utcnow", lambda: NOW)

    def compare(tx: Tx) -> tuple[int, int]:
        pages = full = 0
        for p in _principals(shape):
            for view in _views(p, shape):
                got = _inbox(tx, p, limit, TARGETS, view)
                assert got == _inbox_before(tx, p, limit, TARGETS, view), (p, view)
                pages, full = pages + 1, full + (len(got) == limit)
        return pages, full

    pages, full = await db.read(compare)
    assert pages > 100 and full >= 5, (pages, full)  # every page compared, not only empty ones
