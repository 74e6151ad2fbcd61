"""The demo workspace's own data, so every screen has something real to show: customer attributes (and Jordan's
values), labels, team canned responses and the macros built from them. Written once; a second run adds nothing."""

from __future__ import annotations

import json

from hub.history.db import Tx
from hub.inbox import labels

# key, label, type, options
ATTRIBUTES = [
    ("plan", "Plan", "list", ["Free", "Plus", "Business"]),
    ("lifetime_orders", "Lifetime orders", "number", []),
    ("member_since", "Member since", "date", []),
    ("preferred_carrier", "Preferred carrier", "list", ["UPS", "FedEx", "USPS"]),
    ("account_manager", "Account manager", "text", []),
]
# What the shop knows about Jordan (the customer on file).
JORDAN_VALUES = {"plan": "Plus", "lifetime_orders": "7", "member_since": "2024-03-18", "preferred_carrier": "UPS"}
# name, title, color
LABELS = [("order-status", "Order status", "#2563eb"), ("refund", "Refund", "#b91c1c"),
          ("sales-lead", "Sales lead", "#15803d")]
# shortcut, title, body (variables filled when sent)
CANNED = [
    ("where", "Where is my order",
     "Hi {{customer.first_name}}, thanks for your patience! Your order has left our warehouse and is on its way with "
     "{{attributes.preferred_carrier}}. You'll get the tracking link by email within the hour.\n\n"
     "{{agent.first_name}}"),
    ("refund", "Refund on its way",
     "Hi {{customer.first_name}}, I've issued your refund. It shows on your statement within 3-5 business days. "
     "Sorry for the trouble!\n\n{{agent.first_name}}"),
    ("volume", "Volume pricing",
     "Hello {{customer.first_name}}, thanks for asking! From 20 seats our Business plan is 15% off, and we can "
     "invoice you monthly. I've asked our sales team to send you a quote today.\n\n{{agent.first_name}}"),
]
# name, actions; a reply names its canned response by shortcut (its id is known once written)
MACROS = [
    ("Order shipped: reply and resolve", [{"type": "label", "label": "order-status"},
                                          {"type": "reply", "canned": "where"}, {"type": "resolve"}]),
    ("Refund issued", [{"type": "label", "label": "refund"}, {"type": "reply", "canned": "refund"},
                       {"type": "resolve"}]),
    ("Sales lead: take it", [{"type": "label", "label": "sales-lead"}, {"type": "assign"},
                             {"type": "reply", "canned": "volume"}]),
]


def write(tx: Tx, customer_id: int, now: str) -> None:
    """Everything above, each piece only if it is not there yet (an admin may have changed or removed it since:
    what they removed comes back only with a fresh data folder)."""
    if tx.one("SELECT key FROM customer_attribute_definitions LIMIT 1") is None:
        for position, (key, label, kind, options) in enumerate(ATTRIBUTES):
            tx.exec("INSERT INTO customer_attribute_definitions (key, label, type, options, position, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", (key, label, kind, json.dumps(options), position,
                                                                  now, now))
        for key, value in JORDAN_VALUES.items():
            tx.exec("INSERT INTO customer_attributes (customer_id, name, value, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (customer_id, name) DO NOTHING", (customer_id, key, value, now))
    for name, title, color in LABELS:
        tx.exec("INSERT INTO labels (name, title, color, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING", (name, title, color, now, now))
    if tx.one("SELECT id FROM canned_responses WHERE agent_id IS NULL LIMIT 1") is not None:
        return  # the team's responses (and so the macros) were written before
    ids: dict[str, int] = {}
    for shortcut, title, body in CANNED:
        row = tx.one("INSERT INTO canned_responses (agent_id, shortcut, title, body, created_at, updated_at) "
                     "VALUES (NULL, ?, ?, ?, ?, ?) RETURNING id", (shortcut, title, body, now, now))
        assert row is not None
        ids[shortcut] = int(row["id"])
    for name, actions in MACROS:
        stored = [{"type": "reply", "canned_response_id": ids[str(a["canned"])]} if a["type"] == "reply" else a
                  for a in actions]
        for a in stored:
            if a["type"] == "label":
                labels.ensure(tx, str(a["label"]), now)
        tx.exec("INSERT INTO macros (name, actions, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING", (name, json.dumps(stored), now, now))
