"""Set-up for the timeline benchmark (not timed): one customer with a long history, written through the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hub.history import store
from hub.history.db import Database, Tx
from hub.model import Identity, format_time

PHONE = Identity("phone", "+14155550100")
EMAIL = Identity("email", "timeline.customer@example.com")
#: how a long-standing customer reaches the business: (channel, kind), in turn
CHANNELS = (("sms", "text"), ("voice", "call"), ("email", "text"), ("sms", "text"), ("api", "text"))
CONVERSATION_LENGTH = 40
START = datetime(2016, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=17)


def _customer(tx: Tx) -> int:
    now = format_time(START)
    customer_id, _ = store.resolve_identity(tx, PHONE, "Timeline Customer", now)
    tx.exec(
        "INSERT INTO identities (customer_id, kind, value, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kind, value) DO NOTHING",
        (customer_id, EMAIL.kind, EMAIL.value, now),
    )
    return customer_id


def _batch(customer_id: int, first: int, count: int, queue: str) -> Callable[[Tx], None]:
    """Messages FIRST..FIRST+COUNT: conversations of CONVERSATION_LENGTH, opened, answered in turn, resolved."""

    def write(tx: Tx) -> None:
        conv_id = 0
        for i in range(first, first + count):
            at = format_time(START + STEP * i)
            channel, kind = CHANNELS[(i // CONVERSATION_LENGTH) % len(CHANNELS)]
            if i % CONVERSATION_LENGTH == 0 or conv_id == 0:
                conv, _ = store.join_or_open(tx, customer_id, channel, queue, None, 0, at)
                conv_id = conv.id
            inbound = i % 2 == 0
            store.insert_message(
                tx,
                conversation_id=conv_id,
                customer_id=customer_id,
                channel=channel,
                direction="in" if inbound else "out",
                kind=kind,
                text=f"message {i}: " + ("hello, about my order again" if inbound else "thanks, looking into it now"),
                status="received" if inbound else "delivered",
                external_id=f"seed-{i}",
                identity=str(EMAIL if channel == "email" else PHONE),
                now=at,
                created_at=at,
            )
            if i % CONVERSATION_LENGTH == CONVERSATION_LENGTH - 1:
                store.set_conversation_status(tx, conv_id, "resolved", at)

    return write


async def seed_customer(
    db: Database, messages: int, queue: str, progress: Callable[[str], None], batch: int = 5000
) -> int:
    """A customer with MESSAGES messages across channels and conversations; returns the customer id."""
    customer_id = await db.write(_customer)
    start = time.perf_counter()
    for first in range(0, messages, batch):
        count = min(batch, messages - first)
        await db.write(_batch(customer_id, first, count, queue))
        if (first // batch) % 5 == 4 or first + count == messages:
            progress(f"seeded {first + count:,}/{messages:,} messages ({time.perf_counter() - start:.1f}s)")
    return customer_id


def _cursor_at(tx: Tx, customer_id: int, offset: int) -> str:
    row = tx.one(
        "SELECT created_at, id FROM messages WHERE customer_id = ? ORDER BY created_at, id LIMIT 1 OFFSET ?",
        (customer_id, offset),
    )
    assert row is not None
    return store.encode_cursor(row["created_at"], row["id"])


async def deep_cursors(db: Database, customer_id: int, messages: int, count: int = 20) -> list[str]:
    """Cursors (in the server's own format) at COUNT positions spread through the middle 80% of the timeline."""
    offsets = [int(messages * (0.1 + 0.8 * k / max(1, count - 1))) for k in range(count)]
    return await db.read(lambda tx: [_cursor_at(tx, customer_id, o) for o in offsets])
