"""Migrations 75 and 76 on a hub that already has history, on SQLite and PostgreSQL: the customers' contacts,
channels and satisfaction answers are filled from the conversation events already folded, a merged customer's
under the customer it became."""

from __future__ import annotations

import pytest

from hub.history import schema
from hub.history.db import Tx, open_database


async def test_existing_contacts_fill_the_customers_facts(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = open_database(db_url)
    try:
        monkeypatch.setattr(schema, "MIGRATIONS", [m for m in schema.MIGRATIONS if m[0] not in (75, 76)])
        await schema.migrate(db)

        def history(tx: Tx) -> None:
            for i in (1, 2, 3):
                tx.exec("INSERT INTO customers (id, name, created_at, updated_at) VALUES (?, '', 'x', 'x')", (i,))
            tx.exec("UPDATE customers SET merged_into = 1 WHERE id = 2")
            for customer, conv, channel, rolled in ((1, 1, "sms", 1), (2, 2, "email", 1), (3, 3, "sms", 1),
                                                    (1, 4, "sms", 1), (3, 5, "voice", 0)):
                tx.exec("INSERT INTO conversation_events (conversation_id, customer_id, type, at, channel, rolled) "
                        "VALUES (?, ?, 'opened', ?, ?, ?)", (conv, customer, f"2026-01-0{conv}T00:00:00.000000Z",
                                                             channel, rolled))
            for customer, score in ((2, 4.0), (3, 1.0), (3, 2.0)):  # answered surveys, as the reports record them
                tx.exec("INSERT INTO conversation_events (conversation_id, customer_id, type, at, seconds, rolled) "
                        "VALUES (1, ?, 'csat', '2026-01-05T00:00:00.000000Z', ?, 1)", (customer, score))

        await db.write(history)
        monkeypatch.undo()
        assert {75, 76} <= set(await schema.migrate(db))
        stats = await db.read(lambda tx: [(int(r["customer_id"]), int(r["contacts"]), r["last_contact_at"]) for r in
                                          tx.all("SELECT customer_id, contacts, last_contact_at FROM customer_stats "
                                                 "ORDER BY customer_id")])
        # The unfolded event (conversation 5) is left for the roller, which adds it when it folds it.
        assert stats == [(1, 3, "2026-01-04T00:00:00.000000Z"), (3, 1, "2026-01-03T00:00:00.000000Z")]
        channels = await db.read(lambda tx: [(int(r["customer_id"]), r["channel"]) for r in tx.all(
            "SELECT customer_id, channel FROM customer_channels ORDER BY customer_id, channel")])
        assert channels == [(1, "email"), (1, "sms"), (3, "sms")]
        csat = await db.read(lambda tx: [(int(r["customer_id"]), int(r["csat_answers"]), float(r["csat_total"]))
                                         for r in tx.all("SELECT customer_id, csat_answers, csat_total "
                                                         "FROM customer_stats ORDER BY customer_id")])
        assert csat == [(1, 1, 4.0), (3, 2, 3.0)]  # the merged customer's answer is the survivor's
        names = await db.read(lambda tx: [str(r["name"]) for r in tx.all("SELECT name FROM segments ORDER BY id")])
        assert names == ["Champions", "Loyal", "At risk", "Lost"]
    finally:
        await db.close()
