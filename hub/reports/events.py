"""Conversation events: one append-only row per thing that happened to a conversation, written by the path that made
it happen, in the same transaction. Nothing else is computed here: the roller (hub.reports.rollup) turns them into
figures later, so the inbound path pays for one INSERT and never waits on a shared counter row."""

from __future__ import annotations

from hub.history.db import Tx
from hub.model import Conversation
from hub.routing.events import (
    Assigned,
    Offered,
    OfferTimedOut,
    Overflowed,
    Rejected,
    Resolved,
    RoutingEvent,
    Transferred,
)

#: every event type, with what it means (docs/reports.md builds each figure from these)
TYPES = {
    "opened": "a customer's message opened a conversation (it counts as that message too)",
    "reopened": "a customer's message reopened a conversation resolved moments ago (it counts as that message too)",
    "message_in": "a customer's message joined the open conversation",
    "message_out": "a reply to the customer was written (agent_id: who; none for automatic messages; seconds: for an "
                   "agent's, the conversation's first-response deadline as routing stored it, epoch seconds)",
    "resolved": "an agent or admin resolved the conversation",
    "offered": "routing offered the conversation to an agent",
    "assigned": "an agent took the conversation (seconds: how long it waited in the queue)",
    "rejected": "the agent rejected the offer",
    "offer_timed_out": "the agent let the offer time out",
    "transferred": "the conversation was moved to another queue or agent (queue: where to)",
    "overflowed": "the conversation overflowed to another queue (queue: where to)",
    "abandoned": "the conversation left its queue before any agent took it (the customer gave up or hung up)",
    "csat": "the customer answered the satisfaction survey (seconds: the score, 1-5; agent_id: who had resolved it)",
}


def record(
    tx: Tx,
    type: str,
    conversation_id: int,
    at: str,
    *,
    customer_id: int | None = None,
    channel: str = "",
    queue: str | None = "",
    agent_id: int | None = None,
    seconds: float | None = None,
    message_id: int | None = None,
) -> None:
    if type not in TYPES:
        raise ValueError(f"unknown conversation event {type!r}")
    tx.exec(
        "INSERT INTO conversation_events (conversation_id, customer_id, type, at, channel, queue, agent_id, seconds, "
        "message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (conversation_id, customer_id, type, at, channel, queue or "", agent_id, seconds, message_id),
    )


def record_reply(tx: Tx, conversation_id: int, at: str, *, customer_id: int, channel: str, queue: str | None,
                 agent_id: int | None) -> None:
    """A reply written to the customer (message_out). An agent's carries in `seconds` the first-response deadline
    routing stored on the conversation then (epoch seconds; none: no target), read in the same statement, for the
    first-response attainment of reports."""
    if agent_id is None:
        record(tx, "message_out", conversation_id, at, customer_id=customer_id, channel=channel, queue=queue)
        return
    tx.exec(
        "INSERT INTO conversation_events (conversation_id, customer_id, type, at, channel, queue, agent_id, seconds) "
        "SELECT ?, ?, 'message_out', ?, ?, ?, ?, respond_by FROM conversations WHERE id = ?",
        (conversation_id, customer_id, at, channel, queue or "", agent_id, conversation_id),
    )


def record_routing(tx: Tx, e: RoutingEvent, at: str) -> None:
    """The routing decisions reports count, from the event routing just wrote to the store."""
    if isinstance(e, Offered):
        record(tx, "offered", e.conversation, at, channel=e.channel, queue=e.queue, agent_id=e.agent)
    elif isinstance(e, Assigned):
        record(tx, "assigned", e.conversation, at, channel=e.channel, queue=e.queue, agent_id=e.agent,
               seconds=max(0.0, e.waited))
    elif isinstance(e, Rejected):
        record(tx, "rejected", e.conversation, at, queue=e.queue, agent_id=e.agent)
    elif isinstance(e, OfferTimedOut):
        record(tx, "offer_timed_out", e.conversation, at, queue=e.queue, agent_id=e.agent)
    elif isinstance(e, Transferred):
        record(tx, "transferred", e.conversation, at, queue=e.to_queue or e.from_queue, agent_id=e.from_agent)
    elif isinstance(e, Overflowed):
        record(tx, "overflowed", e.conversation, at, queue=e.to_queue)
    elif isinstance(e, Resolved) and e.agent is None and not e.snoozed:
        record(tx, "abandoned", e.conversation, at, queue=e.queue)


def record_inbound(tx: Tx, conversation: Conversation, how: str, channel: str, customer_id: int, at: str,
                   message_id: int | None = None) -> None:
    """A customer's message on the inbound path: it opened or reopened its conversation, or joined it. One row
    either way: the inbound path pays for a single insert. MESSAGE_ID: the message, whose keywords the roller counts."""
    kind = how if how in ("opened", "reopened") else "message_in"
    record(tx, kind, conversation.id, at, customer_id=customer_id, channel=channel, queue=conversation.queue,
           message_id=message_id)
