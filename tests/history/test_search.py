"""Message text search (migration 9), on SQLite (FTS5) and a real PostgreSQL (GIN): words as prefixes, every word
required, edits re-indexed, and an agent finds only messages of their queues and own conversations."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from hub.config import Settings
from hub.events import MemoryBus
from hub.history import store
from hub.history.db import Database, Tx, open_database
from hub.history.schema import migrate
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


# Texts whose words split and fold in every way the two indexes could disagree on: case, accents FTS5 folds (and
# letters it keeps, like ł and ø), punctuation inside words, e-mail addresses, digits, underscores, other scripts.
_TEXTS = (
    "My order #4821 arrived with a cracked lid",
    "Where is the invoice for order 4821?",
    "Café CRÈME was délicieux; write to bob@example.com",
    "Ångström units, Łódź office, Søren's invoice, Straße 5",
    "naïve résumé: jalapeño piñata, ÜBER-cool façade",
    "Ḑeal: Ẽxtended Ḹatin ǅ and ȘȚ letters",
    "snake_case words and CamelCase and x-ray and e.g. and 3.14",
    "Δημήτρης ρώτησε για την παραγγελία, Дмитрий спросил о заказе",  # noqa: RUF001
    "東京の注文 and 서울 order",
    "emoji 😀 order!!! refund??? +1 (415) 555-0100",
    "REFUND refunded refunds Refundable",
    "tab\tand\nnewline, O'Brien's order",
)
_QUERIES = (
    "order", "ORDER", "ord", "4821", "48", "creme", "CRÈME", "cre", "delicieux", "délic", "bob@example",
    "example.com", "angstrom", "Ångström", "lodz", "łódź", "ł", "soren", "søren", "strasse", "straße", "naive",
    "resume", "jalapeno", "pinata", "uber", "facade", "deal", "extended", "latin", "dz", "st", "snake", "case",
    "snake_case", "camelcase", "x-ray", "ray", "14", "3", "δημήτρης", "δημητρης", "ΔΗΜ", "дмитрий", "ДМИТ",
    "заказ", "東京", "서울", "😀", "refund", "REFUND refunded", "refund order", "415", "555-0100", "o'brien",
    "brien", "newline", "tab", "", "   ", "!!!", "lid invoice", "order & !invoice", 'order" OR "x', "a:* | b",
)


async def test_the_same_messages_on_sqlite_and_postgresql(
    pg_url: str, _sqlite_migrated_template: Path, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """The API promises one search whatever the database: the same messages stored on both, every query in every
    scope finds the same messages in the same order."""
    path = tmp_path / "same.db"
    shutil.copyfile(_sqlite_migrated_template, path)
    found: dict[str, list[list[str]]] = {}
    for url in (f"sqlite:///{path}", pg_url):
        db = open_database(url)
        try:
            await migrate(db)
            ingest = Ingest(db, make_settings(url), MemoryBus(), Metrics())
            for i, text in enumerate(_TEXTS):
                stored = await ingest.ingest(_in(f"phone:+1415555{i:04d}", text))
                if i % 3 == 1:  # some customers served through another queue
                    await db.write(partial(_move, conversation=stored.conversation.id, queue="sales"))
            results = []
            for q in _QUERIES:
                for queues, agent in ((None, None), (["support"], 999), (["sales"], 999), ([], 999)):
                    results.append([f"{q!r} {queues}", *await _search(db, q, queues, agent)])
            found[db.dialect] = results
        finally:
            await db.close()
    assert found["postgresql"] == found["sqlite"]
    # Not two empty lists: most queries find something, and the folding is exercised both ways.
    assert sum(len(r) > 1 for r in found["sqlite"]) > 80
    everything = {r[0]: r[1:] for r in found["sqlite"]}
    assert everything["'creme' None"] == ["Café CRÈME was délicieux; write to bob@example.com"]
    assert everything["'lodz' None"] == []  # FTS5 keeps ł, so PostgreSQL must too
    assert everything["'łódź' None"] == ["Ångström units, Łódź office, Søren's invoice, Straße 5"]


def _move(tx: Tx, conversation: int, queue: str) -> None:
    tx.exec("UPDATE conversations SET queue = ? WHERE id = ?", (queue, conversation))


# Words many stored words begin with: the forms of one word, words that begin others, a numbered tail (more than
# store.PREFIX_WORDS of it begin "w1"), letters FTS5 folds and keeps, and words of other scripts.
_VARIANTS = ("refund", "refunds", "refunded", "refundable", "refunding", "ref", "re", "return", "r2d2", "Řefund",
             "refundé", "refundł", "café", "cafés", "caffeine", "ρεφ", "ρεφουντ", "заказ", "заказы", "order",
             "orders", "ordered", "o", *(f"w{n}" for n in range(200)))


def _old_query(tx: Tx, q: str, limit: int) -> list[int]:
    """What message search ran before migration 118: every word a prefix query of FTS5's."""
    terms = store.search_terms(q)
    if not terms:
        return []
    rows = tx.all("SELECT m.id FROM messages_fts f JOIN messages m ON m.id = f.rowid WHERE messages_fts MATCH ? "
                  "AND m.kind <> 'event' ORDER BY f.rowid DESC LIMIT ?", (" ".join(f'"{t}"*' for t in terms), limit))
    return [int(r["id"]) for r in rows]


async def test_a_prefix_finds_the_pages_fts5s_prefix_query_found(
    _sqlite_migrated_template: Path, tmp_path: Path, make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite searches a word as the stored words it begins (store._fts_prefix): the same messages, in the same order,
    as FTS5's prefix query, for every prefix of every word, alone and in pairs, in every page size and scope."""
    path = tmp_path / "variants.db"
    shutil.copyfile(_sqlite_migrated_template, path)
    url = f"sqlite:///{path}"
    db = open_database(url)
    try:
        await migrate(db)
        ingest = Ingest(db, make_settings(url), MemoryBus(), Metrics())
        rng = random.Random(18)
        for i in range(400):
            stored = await ingest.ingest(_in(f"phone:+1415555{i % 40:04d}", " ".join(rng.choices(_VARIANTS, k=4))))
            if i % 40 == 7:
                await db.write(partial(_move, conversation=stored.conversation.id, queue="sales"))
        # Words left only in the index's history: edited away, so FTS5 holds their deletions too.
        edited = await ingest.ingest(_in("phone:+14155550999", "refundzzz wzzz"))
        now = format_time(utcnow())
        await db.write(lambda tx: store.edit_message(tx, edited.message.id, "order", now, now))

        words = sorted({w for v in _VARIANTS for w in store.search_terms(v)} | {"refundzzz", "wzzz"})
        queries = sorted({w[:n] for w in words for n in range(1, len(w) + 1)})
        queries += [f"{a} {b}" for a, b in zip(queries, rng.sample(queries, len(queries)), strict=True)]
        queries += ["refund order", "ref w1", "w1 w10", "w order", "refundzzz", "café order", "zzz", "re re"]

        def compare(tx: Tx) -> int:
            found = 0
            for q in queries:
                for limit in (5, 20, 1000):
                    new = [m.id for m in store.search_messages(tx, q, None, None, limit)]
                    assert new == _old_query(tx, q, limit), (q, limit)
                    found += bool(new)
            return found

        assert await db.read(compare) > len(queries)  # most queries find something
        # Both ways of reading a word were taken: its few stored words, or FTS5's prefix query for a short one.
        expanded = await db.read(lambda tx: [store._fts_prefix(tx, w) for w in ("refund", "w1", "w19", "refundzzz")])
        assert expanded == [
            '("refund" OR "refundable" OR "refunde" OR "refunded" OR "refunding" OR "refunds" OR "refundł")',
            '"w1"*',
            '(' + " OR ".join(f'"w19{n}"' for n in ["", *range(10)]) + ')',
            "",
        ]
        # Agents' scopes, against the prefix query itself (every word read as FTS5's prefix query).
        scoped = [(q, queues) for q in queries[::7] for queues in (["support"], ["sales"], [])]
        mine = await db.read(lambda tx: [[m.id for m in store.search_messages(tx, q, queues, 999, 20)]
                                         for q, queues in scoped])
        monkeypatch.setattr(store, "PREFIX_WORDS", 0)
        theirs = await db.read(lambda tx: [[m.id for m in store.search_messages(tx, q, queues, 999, 20)]
                                           for q, queues in scoped])
        assert mine == theirs and sum(map(bool, mine)) > len(scoped) // 5
    finally:
        await db.close()


async def test_a_search_in_the_transaction_that_stored_the_message_finds_it(db: Database, ingest: Ingest) -> None:
    """FTS5 holds a transaction's new words in memory until it commits: its vocabulary must see them too."""
    await ingest.ingest(_in("phone:+14155550100", "refund please"))

    def store_and_search(tx: Tx) -> list[str]:
        customer = tx.one("SELECT customer_id, conversation_id FROM messages")
        assert customer is not None
        tx.exec("INSERT INTO messages (conversation_id, customer_id, channel, direction, kind, text, status, "
                "created_at, updated_at) VALUES (?, ?, 'api', 'in', 'text', 'refundable now', 'received', ?, ?)",
                (customer["conversation_id"], customer["customer_id"], format_time(utcnow()), format_time(utcnow())))
        return [m.text for m in store.search_messages(tx, "refunda", None, None, 20)]

    assert await db.write(store_and_search) == ["refundable now"]
