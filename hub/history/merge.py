"""Explicit customer merge: one transaction moves everything to the survivor and says so on the timeline."""

from __future__ import annotations

from hub.history import store
from hub.history.db import Tx


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
    if survivor_open is not None and merged_open is not None:
        tx.exec(
            "UPDATE conversations SET status = 'resolved', resolved_at = ?, updated_at = ? WHERE id = ?",
            (now, now, merged_open.id),
        )
    tx.exec("UPDATE identities SET customer_id = ? WHERE customer_id = ?", (survivor_id, merged_id))
    tx.exec("UPDATE conversations SET customer_id = ? WHERE customer_id = ?", (survivor_id, merged_id))
    tx.exec("UPDATE messages SET customer_id = ? WHERE customer_id = ?", (survivor_id, merged_id))
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
        meta={"event": "customer.merged", "merged_customer_id": merged_id, "survivor_customer_id": survivor_id},
        now=now,
    )


def _event_conversation(tx: Tx, customer_id: int, now: str) -> int:
    # Neither customer ever wrote: keep the merge on record in a resolved conversation of its own.
    row = tx.one(
        "INSERT INTO conversations (customer_id, status, channel, created_at, updated_at, resolved_at) "
        "VALUES (?, 'resolved', 'hub', ?, ?, ?) RETURNING id",
        (customer_id, now, now, now),
    )
    assert row is not None
    return int(row["id"])
