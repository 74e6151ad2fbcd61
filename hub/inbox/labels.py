"""Labels: defined by admins (a slug name, a title people read, a color), put on conversations and customers by
agents, rules and bots. One table of definitions; `conversation_labels` and `customer_labels` name them."""

from __future__ import annotations

import re
from typing import Any, Literal

from hub.history.db import Tx

Target = Literal["conversation", "customer"]
COLOR = re.compile(r"#[0-9a-fA-F]{6}")
DEFAULT_COLOR = "#64748b"
_TABLES: dict[Target, tuple[str, str]] = {
    "conversation": ("conversation_labels", "conversation_id"),
    "customer": ("customer_labels", "customer_id"),
}


class UnknownLabel(LookupError):
    """The label is not defined (an admin defines it first)."""


def definitions(tx: Tx) -> list[dict[str, Any]]:
    rows = tx.all("SELECT name, title, color FROM labels ORDER BY title, name")
    return [{"name": str(r["name"]), "title": str(r["title"]), "color": str(r["color"])} for r in rows]


def defined(tx: Tx, name: str) -> bool:
    return tx.one("SELECT 1 AS x FROM labels WHERE name = ?", (name,)) is not None


def ensure(tx: Tx, name: str, now: str) -> None:
    """Define NAME (title = name, default color) if it is not: what a rule or bot set before labels had definitions
    keeps working, and an admin can give it a title and color later."""
    tx.exec("INSERT INTO labels (name, title, color, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING", (name, name, DEFAULT_COLOR, now, now))


def add(tx: Tx, target: Target, target_id: int, name: str) -> bool:
    """Put a defined label on a conversation or customer; False if it was already there."""
    if not defined(tx, name):
        raise UnknownLabel(f"no label named {name!r}: an admin defines labels first (Admin → Labels)")
    table, column = _TABLES[target]
    row = tx.one(f"INSERT INTO {table} ({column}, label) VALUES (?, ?) ON CONFLICT ({column}, label) DO NOTHING "
                 f"RETURNING {column}", (target_id, name))
    return row is not None


def remove(tx: Tx, target: Target, target_id: int, name: str) -> bool:
    table, column = _TABLES[target]
    return tx.exec(f"DELETE FROM {table} WHERE {column} = ? AND label = ?", (target_id, name)) > 0


def of(tx: Tx, target: Target, target_id: int) -> list[str]:
    table, column = _TABLES[target]
    return [str(r["label"]) for r in tx.all(f"SELECT label FROM {table} WHERE {column} = ? ORDER BY label",
                                            (target_id,))]


def of_many(tx: Tx, target: Target, ids: list[int]) -> dict[int, list[str]]:
    """Each id's labels in one query (the inbox lists up to 200 conversations)."""
    if not ids:
        return {}
    table, column = _TABLES[target]
    out: dict[int, list[str]] = {i: [] for i in ids}
    marks = ", ".join("?" for _ in ids)
    for r in tx.all(f"SELECT {column} AS id, label FROM {table} WHERE {column} IN ({marks}) ORDER BY label", ids):
        out[int(r["id"])].append(str(r["label"]))
    return out


def move_customer(tx: Tx, survivor: int, merged: int) -> None:
    """A merge: the merged customer's labels are the survivor's."""
    tx.exec("INSERT INTO customer_labels (customer_id, label) SELECT ?, label FROM customer_labels "
            "WHERE customer_id = ? ON CONFLICT (customer_id, label) DO NOTHING", (survivor, merged))
    tx.exec("DELETE FROM customer_labels WHERE customer_id = ?", (merged,))


def of_page(tx: Tx, conversation_ids: list[int], customer_ids: list[int]) -> tuple[dict[int, list[str]],
                                                                                   dict[int, list[str]]]:
    """of_many for an inbox page's conversations and customers, in one query (a round trip on PostgreSQL)."""
    conversations: dict[int, list[str]] = {i: [] for i in conversation_ids}
    customers: dict[int, list[str]] = {i: [] for i in customer_ids}
    if not conversation_ids:
        return conversations, customers
    conv_marks, cust_marks = ", ".join("?" for _ in conversation_ids), ", ".join("?" for _ in customer_ids)
    rows = tx.all(f"SELECT 'conversation' AS target, conversation_id AS id, label FROM conversation_labels "
                  f"WHERE conversation_id IN ({conv_marks}) UNION ALL SELECT 'customer', customer_id, label "
                  f"FROM customer_labels WHERE customer_id IN ({cust_marks}) ORDER BY label",
                  [*conversation_ids, *customer_ids])
    for r in rows:
        (conversations if r["target"] == "conversation" else customers)[int(r["id"])].append(str(r["label"]))
    return conversations, customers
