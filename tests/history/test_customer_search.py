"""Customer search (migration 92), on SQLite (FTS5 trigram tables) and PostgreSQL (pg_trgm GIN indexes): the
same customers as the substring scan it replaced, for every kind of text and scope, read from the indexes, kept up
to date through creations, renames, merges and links, and still working (slower, with a warning) on a PostgreSQL
where the hub may not install pg_trgm."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from hub.history import schema, store
from hub.history.db import Database, Tx, open_database
from hub.history.merge import link_identity, merge_customers
from hub.model import Identity, format_time, utcnow
from hub.visibility import served_customer

NOW = format_time(utcnow())


def _old_search(tx: Tx, q: str, limit: int, queues: Sequence[str] | None, agent: int | None) -> list[int]:
    """The query customer search ran before the trigram indexes (a LIKE scan), kept as the reference."""
    like = f"%{q.strip().lower()}%"
    where, params = "", list[Any]()
    if queues is not None:
        served, params = served_customer(queues, agent, "c.id")
        where = f" AND {served}"
    rows = tx.all(
        "SELECT DISTINCT c.id FROM customers c LEFT JOIN identities i ON i.customer_id = c.id "
        f"WHERE c.merged_into IS NULL AND (lower(c.name) LIKE ? OR lower(i.value) LIKE ?){where} ORDER BY c.id LIMIT ?",
        (like, like, *params, limit),
    )
    return [int(r["id"]) for r in rows]


def _new_search(tx: Tx, q: str, limit: int, queues: Sequence[str] | None, agent: int | None) -> list[int]:
    return [c.id for c in store.search_customers(tx, q, limit, queues, agent)]


async def _found(db: Database, q: str, limit: int = 20, queues: Sequence[str] | None = None,
                 agent: int | None = None, *, old: bool = False) -> list[int]:
    search = _old_search if old else _new_search
    return await db.read(lambda tx: search(tx, q, limit, queues, agent))


# (name, identities, queue of their conversation or None, whether agent 7 holds it)
PEOPLE: list[tuple[str, list[str], str | None, bool]] = [
    ("Maria López", ["phone:+14155550100", "email:maria.lopez@example.com"], "support", False),
    ("MARIA Smith", ["email:msmith@example.org"], "sales", False),
    ("Zoë Ödön", ["telegram:1111111"], "sales", True),
    ("José Núñez", ["webchat:abc-visitor-9"], None, False),
    ("Ann O'Reilly", ["email:ann@example.com"], "support", False),  # merged into Maria López below
    ("Tom Reed", ["phone:+14155550199"], "billing", False),  # renamed Thomas Reed below
    ("", ["email:noname@example.net"], "support", False),
    ("Δημήτρης Παπαδόπουλος", ["phone:+306912345678"], "support", False),
    ("李小龙", ["webchat:visitor-li"], "sales", False),
    ('Quote "Q" Person', ["email:q@example.com"], "billing", True),
]

CASES = ["maria", "MARIA", "Maria L", "lópez", "LÓPEZ", "zoë", "ödön", "ÖDÖN", "josé", "núñez", "ann", "o'reilly",
         "thomas", "tom reed", "reed", "+1415", "4155550", "555", "example", "EXAMPLE.COM", "@example.org",
         "1111111", "visitor", "abc-visitor-9", "δημήτρης", "ΠΑΠΑΔΌΠΟΥΛΟΣ", "小龙", "李", '"q"', 'e "q', "a", "é",
         "ma", "  ma  ", "", "   ", "zz", "nobody here", "noname", "69123"]


async def _people(db: Database) -> dict[str, int]:
    """PEOPLE as customers, with their conversations; Ann merged into Maria, Tom renamed, a Telegram id linked."""
    def make(tx: Tx) -> dict[str, int]:
        ids: dict[str, int] = {}
        for agent in (3, 7):
            tx.exec("INSERT INTO agents (id, name, email, role, password_hash, created_at) "
                    "VALUES (?, ?, ?, 'agent', 'x', ?)", (agent, f"Agent {agent}", f"a{agent}@example.com", NOW))
        for name, identities, queue, agents in PEOPLE:
            kind, _, value = identities[0].partition(":")
            cid, _ = store.resolve_identity(tx, Identity(kind, value), name, NOW)
            for extra in identities[1:]:
                kind, _, value = extra.partition(":")
                tx.exec("INSERT INTO identities (customer_id, kind, value, created_at) VALUES (?, ?, ?, ?)",
                        (cid, kind, value, NOW))
            if queue is not None:
                conv, _ = store.join_or_open(tx, cid, "sms", queue, None, 0, NOW)
                if agents:
                    tx.exec("UPDATE conversations SET agent_id = 7 WHERE id = ?", (conv.id,))
            ids[name] = cid
        merge_customers(tx, ids["Maria López"], ids["Ann O'Reilly"], NOW)
        tx.exec("UPDATE customers SET name = ?, updated_at = ? WHERE id = ?", ("Thomas Reed", NOW, ids["Tom Reed"]))
        link_identity(tx, Identity("phone", "+14155550199"), Identity("telegram", "2222222"), NOW, channel="telegram",
                      text="linked", meta={})
        return ids

    return await db.write(make)


SCOPES: list[tuple[Sequence[str] | None, int | None]] = [
    (None, None),  # an admin
    (["support"], 3),  # an agent of support
    (["sales", "billing"], 7),  # an agent of two queues who holds two conversations
    ([], 7),  # no queue: only what agent 7 holds
]


@pytest.mark.parametrize("scan_first", [1, 3, 1000])  # the indexes, both, the first customers read in id order
async def test_the_same_customers_as_the_substring_scan(
    db: Database, scan_first: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "SCAN_FIRST", scan_first)
    ids = await _people(db)
    found_any = 0
    for q in CASES:
        for queues, agent in SCOPES:
            for limit in (20, 1):
                old = await _found(db, q, limit, queues, agent, old=True)
                new = await _found(db, q, limit, queues, agent)
                assert new == old, (q, queues, agent, limit)
                found_any += bool(new)
    assert found_any > 100
    # A few spelled out, so the comparison above is not between two empty lists.
    assert await _found(db, "maria") == [ids["Maria López"], ids["MARIA Smith"]]
    assert await _found(db, "ann@") == [ids["Maria López"]]  # merged
    assert await _found(db, "2222") == [ids["Tom Reed"]]  # linked
    assert await _found(db, "reed", 20, ["sales"], 3) == []  # not served there
    assert await _found(db, "reed", 20, [], 7) == []
    assert await _found(db, "example", 20, [], 7) == [ids['Quote "Q" Person']]


async def test_a_phone_number_as_people_type_it(db: Database) -> None:
    ids = await _people(db)
    maria = ids["Maria López"]
    for typed in ("+1 415 555", "(415) 555-0100", "415.555.01", "+1 (415) 555 0100", "555-0100"):
        assert maria in await _found(db, typed), typed
    assert await _found(db, "+1 415 555 01") == [maria, ids["Tom Reed"]]
    assert await _found(db, "+30 691", 20, ["support"], 3) == [ids["Δημήτρης Παπαδόπουλος"]]
    assert await _found(db, "+30 691", 20, ["sales"], 3) == []  # the visibility rule holds
    assert await _found(db, "1 2 3") == []  # three digits are not a phone


async def test_percent_and_underscore_mean_themselves(db: Database) -> None:
    def make(tx: Tx) -> dict[str, int]:
        return {v: store.resolve_identity(tx, Identity("telegram", v), v, NOW)[0]
                for v in ("ann_smith", "annXsmith", "50% off", "500 off", "back\\slash")}

    ids = await db.write(make)
    for q, expected in (("ann_s", ["ann_smith"]), ("n_", ["ann_smith"]), ("50%", ["50% off"]), ("%", ["50% off"]),
                        ("0% o", ["50% off"]), ("k\\s", ["back\\slash"]), ("\\", ["back\\slash"])):
        assert await _found(db, q) == [ids[e] for e in expected], q


async def test_read_from_the_trigram_indexes(db: Database) -> None:
    await _people(db)

    def plan(tx: Tx) -> str:
        if tx.dialect == "sqlite":
            sql, params = _captured_sql(tx, "maria")
            return " ".join(str(tuple(r)) for r in tx.all(f"EXPLAIN QUERY PLAN {sql}", params))
        tx.exec("SET LOCAL enable_seqscan = off")  # a few rows: make the planner show what it would use at scale
        sql, params = _captured_sql(tx, "maria")
        return " ".join(str(r) for r in tx.all(f"EXPLAIN {sql}", params))

    shown = await db.read(plan)
    if "customers_name_fts" in shown:  # SQLite
        assert "identities_value_fts" in shown, shown
        assert not re.search(r"\bSCAN [cin]\b", shown), shown  # no table read row by row
    else:
        assert "customers_name_trgm" in shown and "identities_value_trgm" in shown, shown


def _captured_sql(tx: Tx, q: str) -> tuple[str, tuple[Any, ...]]:
    """The statement search_customers sends for Q, caught on its way to the database."""
    seen: list[tuple[str, tuple[Any, ...]]] = []

    class Spy:
        """Many customers, none of the first of them holding Q: the statement asks the indexes."""
        dialect = tx.dialect

        def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any]:
            return {"id": 1000}

        def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
            seen.append((sql, tuple(params)))
            return []

    store.search_customers(Spy(), q, 20)  # type: ignore[arg-type]
    return seen[-1]


async def test_the_migration_indexes_customers_already_there(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = open_database(db_url)
    try:
        monkeypatch.setattr(schema, "MIGRATIONS", [m for m in schema.MIGRATIONS if m[0] != 92])
        monkeypatch.setattr(schema, "customer_search_indexes", lambda tx: False)  # as before migration 92
        await schema.migrate(db)
        ids = await _people(db)
        monkeypatch.undo()
        assert 92 in await schema.migrate(db)

        def indexed(tx: Tx) -> list[str]:
            if tx.dialect == "sqlite":
                return [r["name"] for r in tx.all("SELECT name FROM sqlite_master WHERE name LIKE '%_fts' "
                                                  "AND name NOT LIKE 'messages%' ORDER BY name")]
            return [r["indexname"] for r in tx.all("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%_trgm' "
                                                   "AND schemaname = current_schema() ORDER BY indexname")]

        assert await db.read(indexed) in (["customers_name_fts", "identities_value_fts"],
                                          ["customers_name_trgm", "identities_value_trgm"])
        if db.dialect == "postgresql":  # no pending list for searches to read through
            options = await db.read(lambda tx: tx.all("SELECT reloptions FROM pg_class WHERE relname LIKE '%_trgm' "
                                                      "AND relnamespace = current_schema()::regnamespace"))
            assert [r["reloptions"] for r in options] == [["fastupdate=off"]] * 2
        assert await _found(db, "zoë") == [ids["Zoë Ödön"]]
        assert await _found(db, "4155550") == [ids["Maria López"], ids["Tom Reed"]]
        if db.dialect == "sqlite":  # the index's own rows: what the triggers and the rebuild put there
            names = await db.read(lambda tx: tx.all("SELECT rowid FROM customers_name_fts "
                                                    "WHERE customers_name_fts MATCH '\"thomas\"'"))
            assert [r["rowid"] for r in names] == [ids["Tom Reed"]]
    finally:
        await db.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_without_pg_trgm_the_hub_starts_and_search_answers(
    db_url: str, pg_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A role that may not install extensions (no CREATE on the database): the migration still runs, search still
    answers (by reading the tables), and the log says what to run; once installed, the next start builds the
    indexes."""
    import psycopg

    role = f"hub_no_ext_{uuid.uuid4().hex[:8]}"
    schema_name = db_url.rsplit("%3D", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as admin:
        assert admin.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").fetchone() is None
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {schema_name} TO {role}")
    parts = urlsplit(db_url)
    as_role = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
    db = open_database(as_role)
    try:
        with caplog.at_level(logging.WARNING, logger="hub.migrate"):
            await schema.migrate(db)
        warned = [r.getMessage() for r in caplog.records if "pg_trgm" in r.getMessage()]
        assert warned and "CREATE EXTENSION pg_trgm" in warned[0], caplog.records
        ids = await _people(db)
        assert await _found(db, "zoë") == [ids["Zoë Ödön"]]
        assert await _found(db, "+1 415 555 01") == [ids["Maria López"], ids["Tom Reed"]]
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f"CREATE EXTENSION pg_trgm SCHEMA {schema_name}")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hub.migrate"):
            assert await schema.migrate(db) == []
        assert not [r for r in caplog.records if "pg_trgm" in r.getMessage()]
        built = await db.read(lambda tx: tx.all("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%_trgm' "
                                                "AND schemaname = current_schema() ORDER BY indexname"))
        assert [r["indexname"] for r in built] == ["customers_name_trgm", "identities_value_trgm"]
        assert await _found(db, "zoë") == [ids["Zoë Ödön"]]
    finally:
        await db.close()
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
