"""@mentions in internal notes: an agent named in a note as "@Full Name" (or "@" and the part of their email before
the @) is told, live on their console and in their Mentions list, until they read it. Only agents who may see the
customer (hub.visibility) are mentioned: a note cannot show a customer to someone outside their queues."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub import visibility
from hub.api.auth import Principal
from hub.history import store
from hub.history.db import Tx


@dataclass(frozen=True)
class Named:
    """An agent a note may name."""

    id: int
    name: str
    email: str


def named_in(text: str, agents: Sequence[Named]) -> list[int]:
    """The ids of the agents TEXT mentions, in the order they first appear; "@Ann" never matches "@Anna"."""
    found: dict[int, int] = {}
    for a in agents:
        handles = [a.name.strip(), a.email.split("@", 1)[0]]
        for handle in filter(None, handles):
            m = re.search(rf"(?<![\w@])@{re.escape(handle)}(?![\w-])", text, re.IGNORECASE)
            if m is not None:
                found[a.id] = min(found.get(a.id, m.start()), m.start())
    return sorted(found, key=lambda i: found[i])


def _principal(tx: Tx, agent_id: int, role: str) -> Principal:
    queues = tuple(str(r["queue"]) for r in tx.all("SELECT queue FROM agent_queues WHERE agent_id = ?", (agent_id,)))
    return Principal(0, role, agent_id, queues)


def record(tx: Tx, message_id: int, text: str, by_agent: int | None, now: str) -> tuple[list[int], list[str]]:
    """Write the mentions of note MESSAGE_ID (in the note's transaction). Returns the agents mentioned and the names
    of those named who cannot see this customer (not mentioned, so the author can say so another way)."""
    note = tx.one("SELECT conversation_id, customer_id FROM messages WHERE id = ?", (message_id,))
    assert note is not None
    rows = tx.all("SELECT id, name, email, role FROM agents WHERE disabled = 0")
    by_id = {int(r["id"]): r for r in rows}
    mentioned, refused = [], []
    for agent_id in named_in(text, [Named(int(r["id"]), str(r["name"]), str(r["email"])) for r in rows]):
        if agent_id == by_agent:
            continue
        if not visibility.sees_customer(tx, _principal(tx, agent_id, str(by_id[agent_id]["role"])),
                                        int(note["customer_id"])):
            refused.append(str(by_id[agent_id]["name"]))
            continue
        tx.exec("INSERT INTO mentions (message_id, conversation_id, agent_id, by_agent_id, created_at) "
                "VALUES (?, ?, ?, ?, ?)", (message_id, int(note["conversation_id"]), agent_id, by_agent, now))
        mentioned.append(agent_id)
    return mentioned, refused


MENTION_SQL = (
    "SELECT x.id, x.message_id, x.conversation_id, x.agent_id, x.by_agent_id, x.created_at, x.read_at, "
    "m.text, m.customer_id, a.name AS by_name FROM mentions x "
    "JOIN messages m ON m.id = x.message_id LEFT JOIN agents a ON a.id = x.by_agent_id"
)


def to_json(tx: Tx, row: Any) -> dict[str, Any]:
    customer = store.customer(tx, int(row["customer_id"]))
    return {"id": int(row["id"]), "message_id": int(row["message_id"]),
            "conversation_id": int(row["conversation_id"]), "customer_id": customer.id,
            "customer_name": customer.display_name, "agent_id": int(row["agent_id"]),
            "by_agent_id": row["by_agent_id"], "by_agent_name": row["by_name"] or "",
            "text": str(row["text"])[:500], "created_at": row["created_at"], "read_at": row["read_at"]}


def of_agent(tx: Tx, p: Principal, unread_only: bool, limit: int) -> tuple[list[dict[str, Any]], int]:
    """P's mentions, newest first, and how many are unread: only of customers P still sees (queues change)."""
    seen, params = visibility.customer_condition(p, "m.customer_id")
    where = f"x.agent_id = ? AND {seen}" + (" AND x.read_at IS NULL" if unread_only else "")
    rows = tx.all(f"{MENTION_SQL} WHERE {where} ORDER BY x.id DESC LIMIT ?", (p.agent_id, *params, limit))
    unread = tx.one("SELECT COUNT(*) AS n FROM mentions x JOIN messages m ON m.id = x.message_id "
                    f"WHERE x.agent_id = ? AND x.read_at IS NULL AND {seen}", (p.agent_id, *params))
    return [to_json(tx, r) for r in rows], int(unread["n"]) if unread else 0


def of_message(tx: Tx, message_id: int) -> list[dict[str, Any]]:
    return [to_json(tx, r) for r in tx.all(f"{MENTION_SQL} WHERE x.message_id = ? ORDER BY x.id", (message_id,))]


def by_id(tx: Tx, mention_id: int) -> dict[str, Any]:
    row = tx.one(f"{MENTION_SQL} WHERE x.id = ?", (mention_id,))
    assert row is not None
    return to_json(tx, row)
