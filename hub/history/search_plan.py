"""Message search on PostgreSQL for a reader the visibility rule restricts: which rows to read, decided from what the
newest messages show. PostgreSQL cannot estimate what share of a word's matches a reader may see (the rule is a
per-row probe; it guesses half), so it walked `messages_pkey` backwards for a word in 1% of messages where an agent
sees 4% of them (68,000 rows for 20 results at 1,000,000 messages) when sorting the word's 7,859 matches from the GIN
index took a quarter of that. Here the newest WINDOW messages are walked first; when they do not fill the page, their
counts (matches, visible matches) say whether walking on or reading every older match costs fewer rows."""

from __future__ import annotations

from typing import Any

from hub.history.db import Row, Tx

#: Messages walked first, newest first. A page a common word fills stops early; 5,000 rows cost 3-5 ms.
WINDOW = 5_000
#: What reading one match from the GIN index (a bitmap heap fetch, then a sort) costs against walking one row of
#: messages_pkey and checking its stored words: about 2 at 1,000,000 messages in memory, more when the heap is cold.
MATCH_COST = 4


def matches_first(window_rows: int, window_matches: int, window_visible: int, missing: int, total_rows: int) -> bool:
    """Whether reading every older match (about TOTAL_ROWS times the window's share of matches, each MATCH_COST) reads
    fewer rows than walking on until MISSING more visible matches are found (at the window's rate of visible
    matches, counted as one when the window had none: a walk is never assumed endless)."""
    matches = total_rows * window_matches / max(1, window_rows)
    walk = missing * window_rows / max(1, window_visible)
    return matches * MATCH_COST < walk


def search(
    tx: Tx, columns: str, query: str, served: str, served_params: list[Any], limit: int, window: int = WINDOW
) -> list[Row]:
    """The newest LIMIT messages matching the tsquery QUERY whose customer passes SERVED (a condition on m.customer_id,
    checked row by row), with COLUMNS (of alias m), the newest WINDOW messages walked first. The same rows, in the
    same order, whatever is read first."""
    top = tx.one("SELECT max(id) AS id FROM messages")
    if top is None or top["id"] is None:
        return []
    total = int(top["id"])
    bottom = total - window + 1  # ids a rolled-back insert skipped make the window only smaller
    rows = _walk(tx, columns, "m.id >= ?", bottom, query, served, served_params, limit)
    if len(rows) == limit or bottom <= 1:
        return rows
    counts = tx.one(f"SELECT count(*) AS n, count(*) FILTER (WHERE {_WORDS}) AS matches "
                    "FROM (SELECT m.text_search, m.kind FROM messages m WHERE m.id >= ? OFFSET 0) m", (query, bottom))
    assert counts is not None
    missing = limit - len(rows)
    if not matches_first(int(counts["n"]), int(counts["matches"]), len(rows), missing, total):
        return rows + _walk(tx, columns, "m.id < ?", bottom, query, served, served_params, missing)
    # m.id + 0: no index gives this order, so PostgreSQL reads the older matches from the GIN index and sorts them;
    # the rule is then probed on them newest first until the page is full.
    return rows + tx.all(f"SELECT {columns} FROM (SELECT {columns} FROM messages m WHERE {_WORDS} AND m.id < ? "
                         f"ORDER BY m.id + 0 DESC OFFSET 0) m WHERE {served} LIMIT ?",
                         (query, bottom, *served_params, missing))


_WORDS = "m.text_search @@ to_tsquery('simple', ?) AND m.kind <> 'event'"


def _walk(tx: Tx, columns: str, where: str, bound: int, query: str, served: str, served_params: list[Any],
          limit: int) -> list[Row]:
    """Messages in WHERE (on m.id), newest first along messages_pkey, their words and the rule checked row by row:
    OFFSET 0 keeps the words out of the subquery, so no plan reads the GIN index instead."""
    return tx.all(f"SELECT {columns} FROM (SELECT {columns}, m.text_search FROM messages m WHERE {where} "
                  f"ORDER BY m.id DESC OFFSET 0) m WHERE {_WORDS} AND {served} LIMIT ?",
                  (bound, query, *served_params, limit))
