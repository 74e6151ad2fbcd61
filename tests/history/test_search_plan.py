"""How a restricted reader's message search reads PostgreSQL (hub.history.search_plan): counted in rows of `messages`
fetched (pg_stat_xact_user_tables, this transaction's own counts: the same however busy the machine is), on a center
seeded by bench.inbox's loader where an agent sees 4% of the history and searches a word in about 1% of messages."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from bench.inbox import Shape, load
from hub.history import search_plan, store
from hub.history.db import Database, Tx

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(("window_rows", "matches", "visible", "missing", "total", "first"), [
    (5000, 40, 1, 19, 1_000_000, True),  # 1% word, 4% seen, 1M: 32,000 matches' cost against a 95,000-row walk
    (5000, 38, 1, 19, 10_000_000, False),  # the same at 10M: 304,000 against 95,000
    (5000, 0, 0, 20, 10_000_000, True),  # a rare word: none in the window, its few matches read
    (5000, 300, 11, 9, 1_000_000, False),  # two common words: the walk ends soon
    (5000, 40, 0, 20, 10_000_000, False),  # none seen yet: a walk is counted as if one were, not as endless
])
def test_matches_first_when_they_cost_fewer_rows(
    window_rows: int, matches: int, visible: int, missing: int, total: int, first: bool
) -> None:
    assert search_plan.matches_first(window_rows, matches, visible, missing, total) is first


def _fetched(tx: Tx) -> int:
    row = tx.one("SELECT idx_tup_fetch + seq_tup_read AS n FROM pg_stat_xact_user_tables WHERE relname = 'messages'")
    return int(row["n"]) if row is not None else 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_an_agent_who_sees_little_reads_a_words_matches_not_the_history(db: Database, db_url: str) -> None:
    """An agent in no queue sees the customers of their own conversations (about 1% of the history) and searches a
    word in about 2.5% of messages: PostgreSQL, guessing they see half, walked messages_pkey through 57,000 of the
    80,000 messages for 20 results (the walk this plan replaces; 1,960 matches)."""
    shape = Shape.of(argparse.Namespace(conversations=2000, messages=80_000, agents=100, queues=50))
    load(db_url, shape, 7, NOW)
    agent, word = 1, "w40"

    def search(tx: Tx) -> tuple[int, int, list[int], list[int]]:
        before = _fetched(tx)
        found = store.search_messages(tx, word, [], agent, 20)
        fetched = _fetched(tx) - before
        matches = tx.one("SELECT count(*) AS n FROM messages WHERE text_search @@ to_tsquery('simple', ?)",
                         (f"{word}:*",))
        assert matches is not None
        # The same page read the plain way: every match, the rule on each, newest first.
        plain = tx.all("SELECT m.id FROM messages m WHERE m.text_search @@ to_tsquery('simple', ?) AND m.customer_id "
                       "IN (SELECT customer_id FROM conversations WHERE agent_id = ?) ORDER BY m.id DESC LIMIT 20",
                       (f"{word}:*", agent))
        return fetched, int(matches["n"]), [m.id for m in found], [int(r["id"]) for r in plain]

    fetched, matches, found, plain = await db.read(search)
    assert found == plain and len(found) == 20
    assert 1000 < matches < 4000
    # The newest id (one row), the newest window walked, then counted, then the word's matches read once.
    assert fetched <= 1 + 2 * search_plan.WINDOW + matches, (fetched, matches)
