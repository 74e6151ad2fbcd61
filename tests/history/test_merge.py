"""`link_identity`: a provider's statement that a new identity reaches the same party (a Telegram group upgraded to a
supergroup), on SQLite and a real PostgreSQL: linked once, merged when the new identity got there first, no guess."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hub.config import Settings
from hub.events import MemoryBus
from hub.history import store
from hub.history.db import Database, Tx, open_database
from hub.history.merge import Linked, link_identity
from hub.history.schema import migrate
from hub.ingest import Ingest
from hub.metrics import Metrics
from hub.model import Identity, Inbound, format_time, utcnow

OLD = Identity("telegram", "-4012345678")
NEW = Identity("telegram", "-1002345678901")


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = open_database(db_url, pool_size=4)
    await migrate(database)
    yield database
    await database.close()


@pytest.fixture
def ingest(db: Database, make_settings: Callable[..., Settings]) -> Ingest:
    return Ingest(db, make_settings(), MemoryBus(), Metrics())


def link(tx: Tx) -> Linked:
    return link_identity(tx, OLD, NEW, format_time(utcnow()), channel="telegram", text="Group upgraded",
                         meta={"event": "test"})


async def write_in(ingest: Ingest, ident: Identity, text: str) -> int:
    result = await ingest.ingest(Inbound(channel="telegram", identity=ident, text=text, name="Team"))
    return result.customer.id


async def events(db: Database) -> list[dict[str, Any]]:
    rows = await db.read(lambda tx: tx.all("SELECT customer_id, identity, text FROM messages WHERE kind = 'event'"))
    return [dict(r) for r in rows]


async def test_nothing_is_created_for_chats_the_hub_never_saw(db: Database) -> None:
    assert await db.write(link) == Linked(None)
    assert await db.read(lambda tx: tx.all("SELECT id FROM identities")) == []


async def test_the_new_identity_joins_the_customer_once(db: Database, ingest: Ingest) -> None:
    cid = await write_in(ingest, OLD, "hi")
    first = await db.write(link)
    assert first.customer_id == cid and first.event_id is not None and first.merged_customer_id is None
    assert await db.write(link) == Linked(cid), "a repeat changes nothing"
    assert await db.read(lambda tx: store.identities_of(tx, cid)) == [OLD, NEW]
    assert await events(db) == [{"customer_id": cid, "identity": str(NEW), "text": "Group upgraded"}]
    assert await write_in(ingest, NEW, "again") == cid


async def test_the_old_identity_joins_a_customer_known_only_by_the_new_one(db: Database, ingest: Ingest) -> None:
    cid = await write_in(ingest, NEW, "hi from the supergroup")
    assert (await db.write(link)).customer_id == cid
    assert await db.read(lambda tx: store.identities_of(tx, cid)) == [NEW, OLD]


async def test_a_customer_made_from_the_new_identity_is_merged_into_the_old_ones(
    db: Database, ingest: Ingest
) -> None:
    group = await write_in(ingest, OLD, "hi")
    split = await write_in(ingest, NEW, "hi from the supergroup")
    linked = await db.write(link)
    assert linked.customer_id == group and linked.merged_customer_id == split
    merged = await db.read(lambda tx: store.customer(tx, split))
    assert merged.merged_into == group
    texts = [m["text"] for m in await events(db)]
    assert texts[-1] == "Group upgraded" and texts[0].startswith("Merged customer Team")


async def test_concurrent_statements_link_once(db: Database, ingest: Ingest) -> None:
    cid = await write_in(ingest, OLD, "hi")
    results = await asyncio.gather(*(db.write(link) for _ in range(4)))
    assert {r.customer_id for r in results} == {cid}
    assert len([r for r in results if r.event_id is not None]) == 1
    assert len(await events(db)) == 1
