"""Message text search (migration 9), on SQLite (FTS5) and a real PostgreSQL (GIN): words as prefixes, every word
required, edits re-indexed, and an agent finds only messages of their queues and own conversations."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hub.config import Settings
from hub.events import MemoryBus
from hub.history import store
from hub.history.db import Database
from hub.ingest import Ingest
from hub.metrics import Metrics
from hub.model import Identity, Inbound, format_time, utcnow


@pytest.fixture
def ingest(db: Database, make_settings: Callable[..., Settings]) -> Ingest:
    return Ingest(db, make_settings(), MemoryBus(), Metrics())


def _in(identity: str, text: str) -> Inbound:
    kind, _, value = identity.partition(":")
    return Inbound(channel="api", identity=Identity(kind, value), text=text)


async def _search(db: Database, q: str, queues: list[str] | None = None, agent: int | None = None) -> list[str]:
    found = await db.read(lambda tx: store.search_messages(tx, q, queues, agent, 20))
    return [m.text for m in found]


async def test_words_prefixes_and_order(db: Database, ingest: Ingest) -> None:
    await ingest.ingest(_in("phone:+14155550100", "My order #4821 arrived with a cracked lid"))
    await ingest.ingest(_in("email:ann@example.com", "Where is the invoice for order 4821?"))
    await ingest.ingest(_in("email:bob@example.com", "Café crème was délicieux; write to bob@example.com"))
    assert await _search(db, "4821") == ["Where is the invoice for order 4821?",
                                         "My order #4821 arrived with a cracked lid"]  # newest first
    assert await _search(db, "crack") == ["My order #4821 arrived with a cracked lid"]  # a word's start
    assert await _search(db, "ORDER invoice") == ["Where is the invoice for order 4821?"]  # every word
    assert await _search(db, "CRÈME Délicieux") == ["Café crème was délicieux; write to bob@example.com"]
    assert await _search(db, "bob@example") == ["Café crème was délicieux; write to bob@example.com"]
    assert await _search(db, "lid invoice") == []
    assert await _search(db, "  ;:!  ") == []
    # Query syntax of either engine is just text here.
    assert await _search(db, 'order" OR "x') == []
    assert await _search(db, "order & !invoice | 48:*") == ["Where is the invoice for order 4821?"]


async def test_edits_are_reindexed(db: Database, ingest: Ingest) -> None:
    first = await ingest.ingest(_in("phone:+14155550100", "typo in mesage"))
    now = format_time(utcnow())
    await db.write(lambda tx: store.edit_message(tx, first.message.id, "fixed message", now, now))
    assert await _search(db, "mesage") == []
    assert await _search(db, "fixed") == ["fixed message"]


async def test_agents_find_only_what_they_may_see(db: Database, ingest: Ingest) -> None:
    support = await ingest.ingest(_in("phone:+14155550100", "refund please"))
    sales = await ingest.ingest(_in("phone:+14155550101", "refund for 50 seats"))
    await db.write(lambda tx: tx.exec("UPDATE conversations SET queue = 'sales' WHERE id = ?",
                                      (sales.conversation.id,)))
    assert sorted(await _search(db, "refund")) == ["refund for 50 seats", "refund please"]  # admin: no filter
    assert await _search(db, "refund", ["support"], 999) == ["refund please"]
    assert await _search(db, "refund", [], 999) == []
    now = format_time(utcnow())
    agent = await db.write(lambda tx: tx.one(
        "INSERT INTO agents (name, email, role, password_hash, created_at) VALUES ('A', 'a@x.com', 'agent', 'x', ?) "
        "RETURNING id", (now,)))
    assert agent is not None
    await db.write(lambda tx: tx.exec("UPDATE conversations SET agent_id = ? WHERE id = ?",
                                      (agent["id"], sales.conversation.id)))
    assert sorted(await _search(db, "refund", ["support"], int(agent["id"]))) == ["refund for 50 seats",
                                                                                   "refund please"]
    assert support.conversation.queue == "support"
