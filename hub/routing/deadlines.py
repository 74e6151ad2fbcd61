"""First-response deadlines: computed once when a conversation enters its queue (in business hours or calendar time,
by the queue's first_response_hours) and stored on the conversation, by the inbound transaction that opens it (or
the reconciler, for one that has none), so a rebuilt routing state, the console and reports (an agent's reply
records it: hub.reports.events.record_reply) all count against the same instant, even after the hours change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hub.automation import hours as business_hours
from hub.history.db import Tx
from hub.routing.types import ConversationId, QueueConfig


def compute(queue: QueueConfig, arrived: float, hours: Mapping[str, business_hours.BusinessHours]) -> float | None:
    """The deadline (epoch seconds) of a conversation that entered QUEUE at ARRIVED; None: the queue has no target.
    Business hours (HOURS by name) are the queue's own, else the default; with none set (always open), or hours that
    hold too little open time in the coming year, the target counts calendar time."""
    if queue.first_response <= 0:
        return None
    calendar = arrived + queue.first_response
    if queue.first_response_hours != "business":
        return calendar
    bh = hours.get(queue.id) or hours.get(business_hours.DEFAULT)
    due = bh.deadline(datetime.fromtimestamp(arrived, UTC), queue.first_response) if bh else None
    return calendar if due is None else due.timestamp()


def starting(tx: Tx, queue: QueueConfig, arrived: float) -> float | None:
    """The deadline of a conversation entering QUEUE at ARRIVED, computed in the transaction that opens (or reopens)
    it and stored by that transaction: the business hours are read there (the queue's own, else the default), and
    only when the queue counts them. None: the queue has no target."""
    if queue.first_response <= 0:
        return None
    hours: dict[str, business_hours.BusinessHours] = {}
    if queue.first_response_hours == "business" and (bh := business_hours.for_queue(tx, queue.id)) is not None:
        hours[queue.id] = bh
    return compute(queue, arrived, hours)


def _hours(tx: Tx) -> dict[str, business_hours.BusinessHours]:
    rows = business_hours.listing(tx)
    return {name: business_hours.BusinessHours.model_validate(body) for name, body in rows.items()}


def store_many(tx: Tx, items: Sequence[tuple[ConversationId, QueueConfig, float]]) -> dict[ConversationId, float]:
    """Each conversation's stored deadline; one that has none yet gets it computed and stored, once (a deadline
    already there wins, whoever wrote it first). A few queries for the lot, not a few per conversation (the
    reconciler stores a page at a time). Left out: those without a target."""
    hours = _hours(tx) if any(q.first_response_hours == "business" for _, q, _ in items) else {}
    dues = {cid: due for cid, q, arrived in items if (due := compute(q, arrived, hours)) is not None}
    if not dues:
        return {}
    ids = list(dues)
    marks = ", ".join("?" for _ in ids)
    cases = " ".join("WHEN ? THEN ?" for _ in ids)
    params: list[Any] = [v for cid in ids for v in (cid, dues[cid])]
    written = tx.all(f"UPDATE conversations SET respond_by = CASE id {cases} END WHERE id IN ({marks}) "
                     "AND respond_by IS NULL RETURNING id, respond_by", (*params, *ids))
    out = {int(r["id"]): float(r["respond_by"]) for r in written}
    others = [cid for cid in ids if cid not in out]
    if others:  # already had one: that one holds
        marks = ", ".join("?" for _ in others)
        for r in tx.all(f"SELECT id, respond_by FROM conversations WHERE id IN ({marks}) AND respond_by IS NOT NULL",
                        tuple(others)):
            out[int(r["id"])] = float(r["respond_by"])
    return out
