"""Explicit customer merge: one transaction moves everything to the survivor and says so on the timeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.history import store
from hub.history.db import Tx
from hub.inbox import labels
from hub.model import Identity
from hub.reports.schema import CUSTOMER_COLUMNS
from hub.reports.segment_rollups import lock, move_merged


class MergeError(ValueError):
    """A merge that cannot be done; the message says why."""


def merge_customers(tx: Tx, survivor_id: int, merged_id: int, now: str, agent_id: int | None = None) -> int:
    """Move MERGED's identities, conversations and messages to SURVIVOR. Returns the timeline event's message id.

    If both have an open conversation, the merged one is resolved: a customer has at most one open conversation,
    and its messages stay on the survivor's timeline either way.
    """
    if survivor_id == merged_id:
        raise MergeError("a customer cannot be merged into itself")
    for cid in sorted((survivor_id, merged_id)):  # fixed lock order: no deadlock between two opposite merges
        tx.one("SELECT id FROM customers WHERE id = ?" + tx.for_update, (cid,))
    survivor = store.customer(tx, survivor_id)
    merged = store.customer(tx, merged_id)
    for c in (survivor, merged):
        if c.merged_into is not None:
            raise MergeError(f"customer {c.id} was already merged into customer {c.merged_into}")

    survivor_open = store.open_conversation(tx, survivor_id)
    merged_open = store.open_conversation(tx, merged_id)
    resolved_id = None
    if survivor_open is not None and merged_open is not None:
        resolved_id = merged_open.id
        tx.exec(
            "UPDATE conversations SET status = 'resolved', resolved_at = ?, updated_at = ? WHERE id = ?",
            (now, now, merged_open.id),
        )
    tx.exec("UPDATE identities SET customer_id = ? WHERE customer_id = ?", (survivor_id, merged_id))
    tx.exec("UPDATE conversations SET customer_id = ? WHERE customer_id = ?", (survivor_id, merged_id))
    tx.exec("UPDATE messages SET customer_id = ? WHERE customer_id = ?", (survivor_id, merged_id))
    _merge_facts(tx, survivor_id, merged_id)
    # A survey out with the merged customer is answered by the survivor now (hub.csat matches answers by customer).
    tx.exec("UPDATE csat_surveys SET customer_id = ? WHERE customer_id = ?", (survivor_id, merged_id))
    labels.move_customer(tx, survivor_id, merged_id)
    # Custom attributes: the survivor's values win; the merged customer's fill the gaps.
    tx.exec("INSERT INTO customer_attributes (customer_id, name, value, updated_at, updated_by) "
            "SELECT ?, name, value, updated_at, updated_by FROM customer_attributes a WHERE a.customer_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM customer_attributes b WHERE b.customer_id = ? AND b.name = a.name)",
            (survivor_id, merged_id, survivor_id))
    tx.exec("DELETE FROM customer_attributes WHERE customer_id = ?", (merged_id,))
    tx.exec(
        "UPDATE customers SET merged_into = ?, updated_at = ? WHERE id = ?", (survivor_id, now, merged_id)
    )
    if not survivor.name and merged.name:
        tx.exec("UPDATE customers SET name = ?, updated_at = ? WHERE id = ?", (merged.name, now, survivor_id))

    target = survivor_open or merged_open
    if target is None:
        row = tx.one(
            "SELECT id FROM conversations WHERE customer_id = ? ORDER BY updated_at DESC, id DESC LIMIT 1",
            (survivor_id,),
        )
        conversation_id = int(row["id"]) if row else _event_conversation(tx, survivor_id, now)
    else:
        conversation_id = target.id
    moved = ", ".join(str(i) for i in merged.identities) or "no identities"
    label = f"{merged.name} " if merged.name else ""
    return store.insert_message(
        tx,
        conversation_id=conversation_id,
        customer_id=survivor_id,
        channel="hub",
        direction="in",
        kind="event",
        text=f"Merged customer {label}#{merged_id} ({moved}) into this customer",
        status="received",
        agent_id=agent_id,
        # resolved_conversation_id: the merged customer's open conversation, closed here (routing must let it go)
        meta={"event": "customer.merged", "merged_customer_id": merged_id, "survivor_customer_id": survivor_id,
              "resolved_conversation_id": resolved_id},
        now=now,
    )


# The later of two times (NULL: none), for the upserts below and the roller's.
LATER = ("CASE WHEN customer_stats.{c} IS NULL OR customer_stats.{c} < excluded.{c} THEN excluded.{c} "
         "ELSE customer_stats.{c} END")


def _merge_facts(tx: Tx, survivor_id: int, merged_id: int) -> None:
    """The segments' facts about MERGED (contacts, channels, orders, business events) become SURVIVOR's."""
    # The roller's lock before any of the tables it writes (a later one could deadlock with a fold in progress).
    lock(tx)
    tx.exec("UPDATE business_events SET customer_id = ? WHERE customer_id = ?", (survivor_id, merged_id))
    row = tx.one("SELECT contacts, last_contact_at, orders, order_value, last_order_at, csat_answers, csat_total "
                 "FROM customer_stats WHERE customer_id = ?", (merged_id,))
    if row is not None:
        sums = ", ".join(f"{c} = customer_stats.{c} + excluded.{c}"
                         for c in ("contacts", "orders", "order_value", "csat_answers", "csat_total"))
        tx.exec(
            "INSERT INTO customer_stats (customer_id, contacts, last_contact_at, orders, order_value, last_order_at, "
            "csat_answers, csat_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (customer_id) DO UPDATE SET "
            f"{sums}, last_contact_at = {LATER.format(c='last_contact_at')}, "
            f"last_order_at = {LATER.format(c='last_order_at')}",
            (survivor_id, row["contacts"], row["last_contact_at"], row["orders"], row["order_value"],
             row["last_order_at"], row["csat_answers"], row["csat_total"]),
        )
        tx.exec("DELETE FROM customer_stats WHERE customer_id = ?", (merged_id,))
    # Their report figures too, so a segment the survivor is in counts the merged customer's past contacts (the
    # segments' own sums first, while the merged customer's rows are still theirs).
    move_merged(tx, survivor_id, merged_id)
    cols = ", ".join(CUSTOMER_COLUMNS)
    tx.exec(f"INSERT INTO report_customer_rollups (customer_id, grain, bucket, {cols}) SELECT ?, grain, bucket, {cols} "
            "FROM report_customer_rollups WHERE customer_id = ? ON CONFLICT (customer_id, grain, bucket) DO UPDATE SET "
            + ", ".join(f"{c} = report_customer_rollups.{c} + excluded.{c}" for c in CUSTOMER_COLUMNS),
            (survivor_id, merged_id))
    tx.exec("DELETE FROM report_customer_rollups WHERE customer_id = ?", (merged_id,))
    tx.exec("INSERT INTO customer_channels (customer_id, channel) SELECT ?, channel FROM customer_channels "
            "WHERE customer_id = ? ON CONFLICT (customer_id, channel) DO NOTHING", (survivor_id, merged_id))
    tx.exec("DELETE FROM customer_channels WHERE customer_id = ?", (merged_id,))


def survivor(tx: Tx, customer_id: int) -> int:
    """The customer CUSTOMER_ID is now (itself, or whom it was merged into, through any chain of merges)."""
    for _ in range(100):
        row = tx.one("SELECT merged_into FROM customers WHERE id = ?", (customer_id,))
        if row is None or row["merged_into"] is None:
            return customer_id
        customer_id = int(row["merged_into"])
    return customer_id


def event_conversation(tx: Tx, customer_id: int, now: str) -> int:
    """The conversation a timeline event about CUSTOMER_ID goes on: the open one, else the latest, else a resolved
    one of its own (an event never opens work for an agent)."""
    current = store.open_conversation(tx, customer_id)
    if current is not None:
        return current.id
    row = tx.one(
        "SELECT id FROM conversations WHERE customer_id = ? ORDER BY updated_at DESC, id DESC LIMIT 1", (customer_id,)
    )
    return int(row["id"]) if row else _event_conversation(tx, customer_id, now)


def _event_conversation(tx: Tx, customer_id: int, now: str) -> int:
    # Neither customer ever wrote: keep the merge on record in a resolved conversation of its own.
    row = tx.one(
        "INSERT INTO conversations (customer_id, status, channel, created_at, updated_at, resolved_at) "
        "VALUES (?, 'resolved', 'hub', ?, ?, ?) RETURNING id",
        (customer_id, now, now, now),
    )
    assert row is not None
    return int(row["id"])


@dataclass(frozen=True)
class Linked:
    """What `link_identity` did: CUSTOMER_ID holds both identities now (None: neither was known, nothing done);
    EVENT_ID is the timeline event written (None: they were linked already); MERGED_CUSTOMER_ID the customer
    merged into it (the new identity had become a customer of its own first)."""

    customer_id: int | None
    event_id: int | None = None
    merged_customer_id: int | None = None


def link_identity(
    tx: Tx, old: Identity, new: Identity, now: str, *, channel: str, text: str, meta: dict[str, Any],
    occurred_at: str | None = None,
) -> Linked:
    """The provider states that NEW now reaches whoever OLD reached (a Telegram group upgraded to a supergroup):
    give NEW to the customer owning OLD (or the reverse), and say so on the timeline. Never a guess: only called on
    such a statement. If NEW already became a customer of its own, it is merged into OLD's (the provider says they
    are one party; the merge is on the timeline too). Idempotent: once linked, a repeat does nothing."""
    owner = store.customer_by_identity(tx, old)
    other = store.customer_by_identity(tx, new)
    if owner is None and other is None:
        return Linked(None)
    if owner == other:
        return Linked(owner)
    merged_id: int | None = None
    if owner is not None and other is not None:
        merge_customers(tx, owner, other, now)
        merged_id, customer_id = other, owner
    else:
        found = owner if owner is not None else other
        assert found is not None
        customer_id = found
        missing = new if owner is not None else old
        claimed = tx.one(
            "INSERT INTO identities (customer_id, kind, value, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, value) DO NOTHING RETURNING id",
            (customer_id, missing.kind, missing.value, now),
        )
        if claimed is None:  # another process got there first: it linked them, or a message made it a customer
            holder = store.customer_by_identity(tx, missing)
            if holder is None or holder == customer_id:
                return Linked(customer_id)
            survivor, merged = (customer_id, holder) if owner is not None else (holder, customer_id)
            merge_customers(tx, survivor, merged, now)
            customer_id, merged_id = survivor, merged
    conversation_id = event_conversation(tx, customer_id, now)
    # Inbound on the channel, from the new identity: a reply in this conversation goes to the new identity.
    event_id = store.insert_message(
        tx, conversation_id=conversation_id, customer_id=customer_id, channel=channel, direction="in",
        kind="event", text=text, status="received", identity=str(new), meta=meta, now=now, created_at=occurred_at,
    )
    return Linked(customer_id, event_id, merged_id)
