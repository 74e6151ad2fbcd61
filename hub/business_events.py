"""Business events: what the business knows about a customer (an order placed, a payment failed, a sign-up), sent by
its systems with `POST /api/v1/events` and kept on the customer's timeline as a compact card, so the agent sees it
beside the conversation. Idempotent on the sender's external id; order amounts feed the segments' monetary value."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub import event_log
from hub.history import store
from hub.history.db import Row, Tx
from hub.history.merge import LATER, event_conversation
from hub.identities import parse
from hub.model import format_time

#: a JSON payload is at most this long, serialized (it travels on the timeline and to webhooks)
MAX_PAYLOAD_BYTES = 16_384
_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_ATTRIBUTE = re.compile(r"^[A-Za-z][\w.-]{0,63}$")
#: the types the hub reads fields of; any other type (`delivery.shipped`, `user.signed_up`) carries a payload
ORDER_PLACED, PAYMENT_FAILED = "order.placed", "payment.failed"
TITLES = {ORDER_PLACED: "Order placed", PAYMENT_FAILED: "Payment failed"}


class EventItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    quantity: int = Field(1, ge=1, le=1_000_000)
    price: float | None = Field(None, ge=0, le=1e12)
    sku: str | None = Field(None, max_length=100)


class BusinessEventBody(BaseModel):
    """One business event. Name the customer by `customer_id`, or by `identity` (the customer who owns it, or a new
    one). The same `external_id` again with the same body answers the same result; with another body, a 409."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200, description="the sender's id of the event: the retry key")
    type: str = Field(min_length=3, max_length=64, description="order.placed, payment.failed, or any dotted type")
    customer_id: int | None = Field(None, ge=1, le=2**63 - 1)
    identity: str | None = Field(None, max_length=320, description="kind:value, e.g. email:ann@example.com")
    name: str | None = Field(None, max_length=200, description="the customer's name, if the identity is new")
    occurred_at: datetime | None = Field(None, description="when it happened (default: now), with its offset")
    amount: float | None = Field(None, ge=0, le=1e12, description="order.placed: the order's total")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR")
    items: list[EventItem] = Field(default_factory=list, max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict, description=f"any JSON object, up to {MAX_PAYLOAD_BYTES} "
                                                                      "bytes serialized")
    attributes: dict[str, str | None] = Field(
        default_factory=dict, max_length=50,
        description="custom attributes to set on the customer (null removes one), as automation's set_attribute")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if not _TYPE.match(v):
            raise ValueError("a type is dotted lower-case words, like order.placed")
        return v

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("occurred_at needs its offset (2026-01-31T09:00:00Z)")
        return v

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: dict[str, str | None]) -> dict[str, str | None]:
        for name, value in v.items():
            if not _ATTRIBUTE.match(name):
                raise ValueError(f"attribute {name!r}: a name is a letter then up to 63 letters, digits, . - _")
            if value is not None and len(value) > 4000:
                raise ValueError(f"attribute {name!r} is longer than 4000 characters")
        return v

    @model_validator(mode="after")
    def _fits(self) -> BusinessEventBody:
        if (self.customer_id is None) == (self.identity is None):
            raise ValueError("name the customer by customer_id or by identity (one of them)")
        if self.type == ORDER_PLACED and (self.amount is None or self.currency is None):
            raise ValueError("order.placed needs amount and currency")
        if (self.amount is None) != (self.currency is None):
            raise ValueError("amount and currency go together")
        if len(json.dumps(self.payload)) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is over {MAX_PAYLOAD_BYTES} bytes serialized")
        return self

    def fingerprint(self) -> str:
        """What makes a replay the same request: the body, canonical (key order and spacing do not count)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class Conflict(Exception):
    """The external id was used before for a different event."""


@dataclass(frozen=True)
class Recorded:
    event: dict[str, Any]
    #: the timeline message (the card), and whether this was a replay of an event already recorded
    message_id: int
    duplicate: bool


def summary(type_: str, amount: float | None, currency: str | None, items: int) -> str:
    """The card's one line (also the message text: search and notifications read it)."""
    title = TITLES.get(type_, type_)
    parts = [title]
    if amount is not None:
        parts.append(f"{amount:,.2f} {currency}")
    if items:
        parts.append(f"{items} item{'s' if items != 1 else ''}")
    return " · ".join(parts)


def to_json(row: Row) -> dict[str, Any]:
    body = json.loads(row["body"])
    return {
        "id": int(row["id"]), "external_id": str(row["external_id"]), "type": str(row["type"]),
        "customer_id": int(row["customer_id"]), "amount": row["amount"], "currency": row["currency"],
        "items": body.get("items", []), "payload": body.get("payload", {}), "attributes": body.get("attributes", {}),
        "message_id": row["message_id"], "conversation_id": row["conversation_id"],
        "occurred_at": str(row["occurred_at"]), "created_at": str(row["created_at"]),
    }


_COLUMNS = ("id, external_id, fingerprint, customer_id, type, amount, currency, body, message_id, conversation_id, "
            "occurred_at, created_at")


def _customer(tx: Tx, body: BusinessEventBody, region: str, now: str) -> int:
    if body.customer_id is not None:
        c = store.customer(tx, body.customer_id)  # NotFound: a 404
        return c.merged_into if c.merged_into is not None else c.id
    assert body.identity is not None
    return store.resolve_identity(tx, parse(body.identity, region), body.name, now)[0]  # IdentityError: a 422


def set_attribute(tx: Tx, customer_id: int, name: str, value: str | None) -> None:
    """The one way a customer attribute is written (automation's set_attribute does the same)."""
    tx.exec("DELETE FROM customer_attributes WHERE customer_id = ? AND name = ?", (customer_id, name))
    if value is not None:
        tx.exec("INSERT INTO customer_attributes (customer_id, name, value) VALUES (?, ?, ?)",
                (customer_id, name, value))


def record(tx: Tx, body: BusinessEventBody, region: str, now: str) -> Recorded:
    """Record BODY in TX: the event row, its card on the timeline, the attributes, the customer's order facts, and
    an entry in the event log (rules and webhooks: business_event.received). A replay changes nothing."""
    fingerprint = body.fingerprint()
    known = tx.one(f"SELECT {_COLUMNS} FROM business_events WHERE external_id = ?", (body.external_id,))
    if known is not None:
        if known["fingerprint"] != fingerprint:
            raise Conflict(f"external_id {body.external_id!r} was used for another event (id {known['id']})")
        return Recorded(to_json(known), int(known["message_id"]), True)
    customer_id = _customer(tx, body, region, now)
    occurred = format_time(body.occurred_at) if body.occurred_at else now
    kept = {"items": [i.model_dump(exclude_none=True) for i in body.items], "payload": body.payload,
            "attributes": body.attributes}
    row = tx.one(
        "INSERT INTO business_events (external_id, fingerprint, customer_id, type, amount, currency, body, "
        "occurred_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (external_id) DO NOTHING "
        "RETURNING id",
        (body.external_id, fingerprint, customer_id, body.type, body.amount, body.currency, json.dumps(kept),
         occurred, now),
    )
    if row is None:  # another request with this id committed between our look-up and insert: answer as a replay
        return record(tx, body, region, now)
    event_id = int(row["id"])
    conversation_id = event_conversation(tx, customer_id, now)
    card = {"id": event_id, "type": body.type, "external_id": body.external_id, "amount": body.amount,
            "currency": body.currency, **kept}
    message_id = store.insert_message(
        tx, conversation_id=conversation_id, customer_id=customer_id, channel="hub", direction="in", kind="event",
        text=summary(body.type, body.amount, body.currency, sum(i.quantity for i in body.items)), status="received",
        meta={"event": "business_event", "business_event": card}, now=now, created_at=occurred,
    )
    tx.exec("UPDATE business_events SET message_id = ?, conversation_id = ? WHERE id = ?",
            (message_id, conversation_id, event_id))
    for name, value in body.attributes.items():
        set_attribute(tx, customer_id, name, value)
    if body.type == ORDER_PLACED:
        tx.exec(
            "INSERT INTO customer_stats (customer_id, orders, order_value, last_order_at) VALUES (?, 1, ?, ?) "
            "ON CONFLICT (customer_id) DO UPDATE SET orders = customer_stats.orders + 1, "
            "order_value = customer_stats.order_value + excluded.order_value, "
            f"last_order_at = {LATER.format(c='last_order_at')}",
            (customer_id, body.amount, occurred),
        )
    else:  # every customer the business tells about is in the segments' population
        tx.exec("INSERT INTO customer_stats (customer_id) VALUES (?) ON CONFLICT (customer_id) DO NOTHING",
                (customer_id,))
    event_log.record(tx, "business_event.received", conversation_id, now, message_id=message_id)
    saved = tx.one(f"SELECT {_COLUMNS} FROM business_events WHERE id = ?", (event_id,))
    assert saved is not None
    return Recorded(to_json(saved), message_id, False)


def recompute_orders(tx: Tx) -> None:
    """The customers' order facts again from the events (`hub reports rebuild`)."""
    tx.exec("UPDATE customer_stats SET orders = 0, order_value = 0, last_order_at = NULL")
    for r in tx.all("SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total, MAX(occurred_at) AS last "
                    "FROM business_events WHERE type = ? GROUP BY customer_id", (ORDER_PLACED,)):
        tx.exec("INSERT INTO customer_stats (customer_id, orders, order_value, last_order_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (customer_id) DO UPDATE SET orders = excluded.orders, "
                "order_value = excluded.order_value, last_order_at = excluded.last_order_at",
                (r["customer_id"], r["n"], r["total"] or 0.0, r["last"]))
