"""The segment export's CSV lines, made by the database, on SQLite and PostgreSQL: byte for byte what the csv writer
makes of the customers the segment pages list (names and identities that need quoting, doubles the databases write
otherwise than Python, averages halfway between two hundredths), one statement a chunk."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from hub.history.db import Database, Tx
from hub.keys import DB
from hub.segments import api as segments_api
from hub.segments import export, segment_store
from hub.segments.criteria import Criteria, cuts
from tests.api.client import Api
from tests.counting import CountingTx

NOW = "2026-12-01T10:00:00.000000Z"
# customer id: (name or None for no customers row, order_value, csat_answers, csat_total, identities oldest first)
CUSTOMERS: dict[int, tuple[str | None, float, int, float, list[tuple[str, str]]]] = {
    1: ("Ann", 900.0, 0, 0.0, [("phone", "+14155550100"), ("email", "ann@example.com")]),
    2: ("Doe, John", 0.1 + 0.2, 1, 4.0, [("email", "john@example.com")]),  # 0.30000000000000004: 17 digits
    3: ('Say "hi"', 123.45, 3, 13.0, []),  # 4.33
    4: ("two\nlines", 1e15, 2, 7.0, [("webchat", 'v,1 "x"')]),  # 1e15: Python 1000000000000000.0
    5: ("carriage\rreturn", 1e-5, 40, 107.0, [("telegram", "1111111")]),  # 1e-05; 2.675: halfway, a double below
    6: (None, 0.0, 8, 17.0, []),  # 2.125: halfway and exact (Python rounds it to even: 2.12)
    7: (' a "b", c ', 1234567.891, 2, 7.0, [("email", "b@example.com"), ("email", "a@example.com")]),  # 3.5
    8: ("ünïcödé", 25.0, 1, 4.0, [("phone", "+14155550108")]),  # 4.0
    9: ("=1+1", 1e14, 20, 61.0, []),  # 100000000000000.0; 3.05
    10: ("Smith, Jane", 0.0001, 3, 10.0, []),  # 3.33
    11: ("", 123456789012345.6, 2, 7.5, []),  # 16 digits; a total that is not whole scores: 3.75
    12: ("Zed", 999999999999999.9, 7, 32.0, []),  # 4.57
}
#: rows the database leaves to the csv writer: a double outside plain digits, an average halfway or of a total that
#: is not whole scores; and on SQLite, doubles whose shortest digits are more than its 15
BY_PYTHON = {"postgresql": {4, 5, 6, 11}, "sqlite": {2, 4, 5, 6, 11, 12}}


def seed(tx: Tx) -> None:
    for cid, (name, value, answers, total, identities) in CUSTOMERS.items():
        if name is not None:
            tx.exec("INSERT INTO customers (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (cid, name, NOW, NOW))
        tx.exec("INSERT INTO customer_stats (customer_id, contacts, last_contact_at, orders, order_value, "
                "last_order_at, csat_answers, csat_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, cid % 4, None if cid % 3 == 0 else NOW, cid % 2, value, NOW if cid % 2 else None, answers,
                 total))
        for kind, value_ in identities:
            if name is not None:
                tx.exec("INSERT INTO identities (customer_id, kind, value, created_at) VALUES (?, ?, ?, ?)",
                        (cid, kind, value_, NOW))


def as_csv_writer_makes_it(tx: Tx, criteria: Criteria) -> str:
    """The export as it was made before the database made the lines: the listed customers through csv.writer."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([*segment_store.FIELDS, "identities"])
    after: int | None = 0
    bounds = cuts(tx)
    while after is not None:
        page, after = segment_store.customers(tx, criteria, after, 5, bounds)
        w.writerows([*(c[k] for k in segment_store.FIELDS), " ".join(c["identities"])] for c in page)
    return out.getvalue()


async def test_the_export_is_byte_for_byte_the_csv_writers(db: Database) -> None:
    await db.write(seed)
    everyone = Criteria()

    def both(tx: Tx) -> tuple[str, str, list[int]]:
        bounds = cuts(tx)
        edges = export.edges(tx, everyone, 4, bounds)  # chunks of 4: each crosses rows of both kinds
        text = export.header() + "".join(export.chunk(tx, everyone, after, upto, bounds)
                                         for after, upto in zip([0, *edges], [*edges, None], strict=True))
        return text, as_csv_writer_makes_it(tx, everyone), edges

    made, expected, edges = await db.read(both)
    assert edges == [4, 8, 12]
    assert made == expected
    assert '"Smith, Jane"' in made and '"Say ""hi"""' in made and "\r\n" in made  # quoting really was needed
    assert ",2.12," in made and ",2.67," in made and ",4.33," in made and ",1000000000000000.0," in made

    # The database made every line but those it cannot make exactly: a fallback for every row would pass the test
    # above too.
    def lines(tx: Tx) -> dict[int, str | None]:
        bounds = cuts(tx)
        return {int(r["id"]): r["line"] for r in export.lines(tx, everyone, 0, None, bounds)}

    by_database = await db.read(lines)
    assert {cid for cid, line in by_database.items() if line is None} == BY_PYTHON[db.dialect]
    assert all(line is None or line in expected for line in by_database.values())


async def test_a_segment_with_criteria_is_exported_in_one_statement_a_chunk(db: Database) -> None:
    """Only its customers, and one statement for each chunk where the database makes every line (its identities
    included)."""
    await db.write(seed)
    buyers = Criteria.model_validate({"orders": {"min": 1}, "order_value": {"min": 100, "max": 1e14}})  # 1, 3, 7, 9

    def export_counted(tx: Tx) -> tuple[str, str, list[int]]:
        counted = CountingTx(tx)
        bounds = cuts(tx)
        edges = export.edges(counted, buyers, 2, bounds)
        assert counted.statements == 1
        text = export.header()
        for after, upto in zip([0, *edges], [*edges, None], strict=True):
            before = counted.statements
            text += export.chunk(counted, buyers, after, upto, bounds)
            assert counted.statements == before + 1
        return text, as_csv_writer_makes_it(tx, buyers), edges

    made, expected, edges = await db.read(export_counted)
    assert made == expected and edges == [3, 9]  # two a chunk: 1 and 3, 7 and 9, then none after 9
    assert [int(r["customer_id"]) for r in csv.DictReader(io.StringIO(made))] == [1, 3, 7, 9]
    got: dict[str, Any] = next(r for r in csv.DictReader(io.StringIO(made)) if r["customer_id"] == "7")
    assert got["identities"] == "email:b@example.com email:a@example.com"  # oldest first, not alphabetical


async def test_the_api_writes_the_chunks_it_reads_at_once_in_order(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments_api, "EXPORT_CHUNK", 2)  # six chunks, two read at once
    db = api.client.app[DB]
    await db.write(seed)
    seg = await api.call("POST", "/api/v1/segments", "/api/v1/segments", {"name": "Everyone", "criteria": {}},
                         expect=201)
    resp = await api.client.get(f"/api/v1/segments/{seg['id']}/customers?format=csv", headers=api.headers)
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert await resp.text() == await db.read(lambda tx: as_csv_writer_makes_it(tx, Criteria()))
