"""Who may see and do what with customers' history: the one rule every endpoint, search and socket applies.

- An admin sees and does everything.
- Anyone else (agent or supervisor) *sees* a customer, with that customer's whole history on every channel (every
  conversation, message, internal note and file), once any conversation of that customer is or was in one of their
  queues or with them: whoever serves a customer must not ask them to repeat themselves.
- *Acting* on a conversation (replying, notes, resolving, transferring, calling, typing) stays with its queue's
  members and the agent it is with.
- What someone may not see does not exist for them: the same 404, with the same words, as for something absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.history.db import Tx

if TYPE_CHECKING:
    from hub.api.auth import Principal


def hidden(kind: str, ident: int) -> web.HTTPNotFound:
    """The refusal for something outside P's reach: worded exactly as the store words an absent row (the store
    applies this module's rule in its queries, so this module does not import it)."""
    return web.HTTPNotFound(text=f"{kind} {ident} does not exist")


def sees_everything(p: Principal) -> bool:
    return p.is_admin


def served_customers(queues: Sequence[str], agent_id: int | None) -> tuple[str, list[Any]]:
    """SQL for the ids of customers served through QUEUES or by AGENT_ID (a subquery), with its parameters."""
    marks = ", ".join("?" for _ in queues) or "NULL"
    # Two halves, not one OR: each reads its own index (conversations_queue_customer, conversations_agent_customer).
    return (f"SELECT customer_id FROM conversations WHERE queue IN ({marks}) "
            "UNION ALL SELECT customer_id FROM conversations WHERE agent_id = ?",
            [*queues, agent_id])


def served_customer(
    queues: Sequence[str], agent_id: int | None, column: str, probe: bool = False
) -> tuple[str, list[Any]]:
    """The same rule as served_customers, as a condition on COLUMN checked row by row (an index probe each): for a
    query that reads rows in its own order and stops at a limit, where building the whole served set first would
    cost more than the page. PROBE: PostgreSQL must probe it row by row (message search), never hash every
    conversation the reader serves first, which it chose for a few matches (a supervisor: all 50,000 read); customer
    search leaves the choice to it (measured 2-3 times slower when forced)."""
    marks = ", ".join("?" for _ in queues) or "NULL"
    # LIMIT 1 OFFSET 0: an EXISTS with an OFFSET is not turned into a semi-join.
    return (f"EXISTS (SELECT 1 FROM conversations v WHERE v.customer_id = {column} "
            f"AND (v.queue IN ({marks}) OR v.agent_id = ?){' LIMIT 1 OFFSET 0' if probe else ''})",
            [*queues, agent_id])


def customer_condition(p: Principal, column: str) -> tuple[str, list[Any]]:
    """A WHERE condition on COLUMN (a customer id) that keeps only customers P sees; for use before any LIMIT."""
    if sees_everything(p):
        return "1 = 1", []
    sql, params = served_customers(p.queues, p.agent_id)
    return f"{column} IN ({sql})", params


def sees_customer(tx: Tx, p: Principal, customer_id: int) -> bool:
    if sees_everything(p):
        return True
    marks = ", ".join("?" for _ in p.queues) or "NULL"
    row = tx.one(f"SELECT id FROM conversations WHERE customer_id = ? AND (queue IN ({marks}) OR agent_id = ?) LIMIT 1",
                 (customer_id, *p.queues, p.agent_id))
    return row is not None


def may_act(p: Principal, queue: str | None, agent_id: int | None) -> bool:
    """Whether P may reply to, resolve, transfer or otherwise change a conversation in QUEUE with AGENT_ID."""
    return sees_everything(p) or queue in p.queues or (agent_id is not None and agent_id == p.agent_id)


def work_condition(p: Principal, alias: str = "") -> tuple[str, list[Any]]:
    """A WHERE condition keeping the conversations P may act on (their work list)."""
    if sees_everything(p):
        return "1 = 1", []
    marks = ", ".join("?" for _ in p.queues) or "NULL"
    return f"({alias}queue IN ({marks}) OR {alias}agent_id = ?)", [*p.queues, p.agent_id]


def work_parts(p: Principal, alias: str = "") -> list[tuple[str, list[Any]]] | None:
    """work_condition as disjoint conditions whose union it is (one per queue, then the agent's own outside them),
    each read from one index (conversations_active_queue, conversations_active_agent); None when P sees everything
    (no condition at all)."""
    if sees_everything(p):
        return None
    queues = list(dict.fromkeys(p.queues))
    parts: list[tuple[str, list[Any]]] = [(f"{alias}queue = ?", [q]) for q in queues]
    if p.agent_id is not None:  # `agent_id = NULL` holds for no row
        # Outside P's queues only, so that no conversation is in two parts.
        outside = (f" AND ({alias}queue IS NULL OR {alias}queue NOT IN ({', '.join('?' for _ in queues)}))"
                   if queues else "")
        parts.append((f"{alias}agent_id = ?{outside}", [p.agent_id, *queues]))
    return parts
