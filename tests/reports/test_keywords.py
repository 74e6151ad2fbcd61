"""Keyword trends: the words a message counts (Unicode-aware, no stop words, numbers, ids, links or addresses), the
weekly counts the roller keeps from messages that came in through the inbound path, on SQLite and PostgreSQL, and
that rebuilding from the events gives exactly what the incremental roller kept."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from bench.mailgen import generate
from hub.business_hours import zone
from hub.channels.email.parse import parse_email
from hub.config import Settings
from hub.events import MemoryBus
from hub.history.db import Database, Params, Row, Tx
from hub.ingest import Ingest
from hub.metrics import Metrics
from hub.model import Identity, Inbound, format_time
from hub.reports import query
from hub.reports.keywords import runs, terms
from hub.reports.rollup import FIRST_PAGE, KEYWORDS_A_ROW, SLICE_ROWS, RollRules, plan, rebuild, roll
from tests.counting import CountingTx

RULES = RollRules(time_zone="Europe/Madrid")


@pytest.mark.parametrize(("text", "expected"), [
    ("My REFUND is late", {"refund", "late"}),  # a stop word between two words: no phrase
    ("Refund LATE again", {"refund", "late", "refund late"}),
    ("¿Dónde está mi reembolso? Pedido roto", {"reembolso", "pedido", "roto", "pedido roto"}),
    ("Order #12345, ref A1B2C3 and id_77 x", {"order", "ref"}),  # numbers, ids and one-letter words go
    ("see https://shop.example.com/track?id=9 or mail ann@example.com", {"see", "mail"}),
    ("The app won't open. Crashes again", {"app", "open", "crashes"}),  # a sentence ends a phrase
    ("Straße café naïve", {"straße", "café", "naïve", "straße café", "café naïve"}),
    ("", set()),
])
def test_the_terms_a_message_counts(text: str, expected: set[str]) -> None:
    assert terms(text) == expected


def test_phrases_can_be_left_out() -> None:
    assert terms("refund late", phrases=False) == {"refund", "late"}


MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Madrid

#: (week offset, channel, sender, text): last week billing talk, this week the app crashing
MESSAGES = [
    (-1, "sms", "+34600000001", "My invoice is wrong, invoice number 4411"),
    (-1, "sms", "+34600000002", "Wrong invoice again"),
    (-1, "telegram", "5001", "invoice wrong please fix"),
    (0, "sms", "+34600000001", "The app crashes on login"),
    (0, "telegram", "5001", "app crashes at login"),
    (0, "telegram", "5002", "La app se cierra, app crashes"),
    (0, "sms", "+34600000003", "invoice ok now, but app crashes"),
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url)


async def ingest_history(db: Database, settings: Settings) -> None:
    """Each message through the inbound path; its events then moved to its week (ingest stamps them now)."""
    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    for n, (week, channel, sender, text) in enumerate(MESSAGES):
        kind = "telegram" if channel == "telegram" else "phone"
        got = await ingest.ingest(Inbound(channel=channel, identity=Identity(kind, sender), text=text,
                                          external_id=f"k{n}"))
        at = format_time(MONDAY + timedelta(weeks=week, hours=n))

        def move(tx: Tx, message: int = got.message.id, at: str = at) -> None:
            assert tx.exec("UPDATE conversation_events SET at = ? WHERE message_id = ?", (at, message)) == 1

        await db.write(move)


async def keywords(db: Database) -> list[tuple[Any, ...]]:
    """(dim, value, week, word, n): the counts for everything, each channel and each queue, as the reports sum them
    from the rows kept by week, channel and queue."""
    rows = await db.read(lambda tx: tx.all(
        "SELECT 'all' AS dim, '' AS value, week, word, SUM(n) AS n FROM report_keywords_by_queue GROUP BY week, word "
        "UNION ALL SELECT 'channel', channel, week, word, SUM(n) FROM report_keywords_by_queue WHERE channel <> '' "
        "GROUP BY channel, week, word UNION ALL SELECT 'queue', queue, week, word, SUM(n) FROM "
        "report_keywords_by_queue WHERE queue <> '' GROUP BY queue, week, word ORDER BY 1, 2, 3, 4"))
    return [(r["dim"], r["value"], r["week"], r["word"], int(r["n"])) for r in rows]


async def kept_rows(db: Database) -> list[tuple[Any, ...]]:
    """The keyword rows as kept: (week, channel, queue, word, n)."""
    rows = await db.read(lambda tx: tx.all("SELECT week, channel, queue, word, n FROM report_keywords_by_queue "
                                           "ORDER BY week, channel, queue, word"))
    return [(r["week"], r["channel"], r["queue"], r["word"], int(r["n"])) for r in rows]


async def test_the_roller_counts_each_weeks_keywords_and_rebuild_agrees(db: Database, settings: Settings) -> None:
    await ingest_history(db, settings)
    while await db.write(lambda tx: roll(tx, RULES, cutoff="9999", limit=3)):
        pass  # small batches: the counts of one week add up across them
    kept = await keywords(db)
    counts = {(dim, value, week, word): n for dim, value, week, word, n in kept}
    assert counts[("all", "", "2026-02-23", "invoice")] == 3  # messages, not occurrences
    assert counts[("all", "", "2026-03-02", "app crashes")] == 4
    assert counts[("channel", "telegram", "2026-03-02", "app")] == 2
    assert counts[("queue", settings.routing.default_queue, "2026-02-23", "wrong invoice")] == 1
    words = {w for *_, w, _ in kept}
    assert not words & {"the", "la", "se", "on", "4411", "number 4411", "my"}
    rows = await kept_rows(db)
    assert await rebuild(db, RULES) == len(MESSAGES)
    assert await keywords(db) == kept
    assert await kept_rows(db) == rows


async def test_keywords_rise_and_fall_against_the_weeks_before(db: Database, settings: Settings) -> None:
    await ingest_history(db, settings)
    while await db.write(lambda tx: roll(tx, RULES, cutoff="9999")):
        pass
    w = query.keyword_weeks(MONDAY + timedelta(days=1), MONDAY + timedelta(days=3), zone(RULES.time_zone))
    assert (w.previous, w.first, w.end, w.weeks) == ("2026-02-23", "2026-03-02", "2026-03-09", 1)
    rising, falling = await db.read(lambda tx: query.keyword_changes(tx, "all", "", w, 3, 3))
    assert rising == [("app", 4, 0), ("app crashes", 4, 0), ("crashes", 4, 0)]
    assert falling == [("wrong", 0, 3), ("invoice", 1, 3)]  # "invoice wrong" was counted once: noise
    rising, falling = await db.read(lambda tx: query.keyword_changes(tx, "channel", "telegram", w, 2, 10))
    assert rising == [("app", 2, 0), ("app crashes", 2, 0), ("crashes", 2, 0)]
    assert falling == []


def _terms_by_runs(text: str) -> set[str]:
    """The definition `terms` must keep: each significant word, and each two adjacent ones of a run."""
    out: set[str] = set()
    for run in runs(text):
        out.update(run)
        out.update(f"{a} {b}" for a, b in pairwise(run))
    return out


def test_terms_are_the_runs_words_and_adjacent_pairs_on_varied_text() -> None:
    # Generated emails (long, varied; some non-ASCII) and hand-written cases: links, addresses, typographic
    # apostrophes, hyphens and underscores.
    texts = [p.inbound.text for p in map(parse_email, generate(300, 50)) if p.inbound is not None]
    texts += ["l\u2019été d\u2019or", "a@b@c.com next word", "@lead@x.org then", "www.x.com http://y z",
              "don't stop. now", "word-word word_word ÁRBOL árbol"]
    for text in texts:
        assert terms(text) == _terms_by_runs(text), text
        assert terms(text, phrases=False) == {w for run in runs(text) for w in run}


class _CountingTx:
    """A transaction that counts the statements that write report_keywords."""

    def __init__(self, tx: Tx) -> None:
        self.tx, self.dialect, self.for_update, self.keyword_statements = tx, tx.dialect, tx.for_update, 0

    def _count(self, sql: str) -> None:
        self.keyword_statements += "report_keywords" in sql

    def one(self, sql: str, params: Params = ()) -> Row | None:
        self._count(sql)
        return self.tx.one(sql, params)

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        self._count(sql)
        return self.tx.all(sql, params)

    def exec(self, sql: str, params: Params = ()) -> int:
        self._count(sql)
        return self.tx.exec(sql, params)

    def script(self, sql: str) -> None:
        self._count(sql)
        self.tx.script(sql)


class _Mail:
    """Email-like text through the inbound path: every message brings words and phrases no other has, so each is
    many keyword rows."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.rnd = random.Random(16)
        self.ingest = Ingest(db, settings, MemoryBus(), Metrics())
        self.sent: list[str] = []

    async def send(self, n: int) -> None:
        for _ in range(n):
            text = " ".join("".join(self.rnd.choices("abcdefghijklmnopqrstuvwxyz", k=self.rnd.randint(4, 9)))
                            for _ in range(30))
            self.sent.append(text)
            await self.ingest.ingest(Inbound(channel="sms", identity=Identity("phone", f"+3460{len(self.sent):07d}"),
                                             text=text, external_id=f"w{len(self.sent)}"))


async def test_keyword_writes_per_batch_do_not_grow_with_the_messages(db: Database, settings: Settings) -> None:
    mail = _Mail(db, settings)
    send, sent = mail.send, mail.sent

    async def roll_counted() -> int:
        def run(tx: Tx) -> int:
            counting = _CountingTx(tx)
            roll(counting, RULES, cutoff="9999", rows=10**6)  # one slice of them all: statements, not rows
            return counting.keyword_statements

        counted: int = await db.write(run)
        return counted

    await send(5)
    few = await roll_counted()
    await send(40)
    many = await roll_counted()
    # One statement for the week, channel and queue, however many rows it writes.
    assert few == many == 1
    expected: Counter[str] = Counter(t for text in sent for t in terms(text))
    kept = {word: n for dim, _value, _week, word, n in await keywords(db) if dim == "all"}
    assert kept == dict(expected)
    assert len(kept) > 45 * 50  # the rows the statements wrote


class _ReadCountingTx(_CountingTx):
    """A transaction that counts the events and message texts its reads return."""

    def __init__(self, tx: Tx) -> None:
        super().__init__(tx)
        self.events = self.texts = 0

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        rows = super().all(sql, params)
        self.events += len(rows) if "FROM conversation_events" in sql else 0
        self.texts += len(rows) if "FROM messages" in sql else 0
        return rows


async def test_a_slice_of_emails_reads_about_the_events_it_folds(db: Database, settings: Settings) -> None:
    """An email's words fill a slice (SLICE_ROWS) after a few events: the slice reads its events and their texts a
    page at a time, not BATCH events and their texts to fold three of them (the roller then cost more than storing
    the emails did)."""
    mail = _Mail(db, settings)
    await mail.send(80)

    def first_slice(tx: Tx) -> tuple[int, int, int]:
        counting = _ReadCountingTx(tx)
        batch = plan(counting, RULES, cutoff="9999")
        assert batch is not None
        return len(batch.ids), counting.events, counting.texts

    folded, events, texts = await db.read(first_slice)
    assert 1 <= folded < FIRST_PAGE  # about 60 keyword counts and 20 other rows a message: full after a few dozen
    assert events == texts == FIRST_PAGE  # one page read, of the 80 events waiting
    # and the slices fold every event once: each message's terms counted once
    rolled = 0
    while done := await db.write(lambda tx: roll(tx, RULES, cutoff="9999")):
        rolled += done
    assert rolled == 80
    expected: Counter[str] = Counter(t for text in mail.sent for t in terms(text))
    assert {word: n for dim, _value, _week, word, n in await keywords(db) if dim == "all"} == dict(expected)


class _SliceCountingTx(CountingTx):
    """A transaction that counts the rows its statements wrote, keyword counts apart from the rest."""

    def __init__(self, tx: Tx) -> None:
        super().__init__(tx)
        self.keyword_rows = 0

    def exec(self, sql: str, params: Params = ()) -> int:
        n = super().exec(sql, params)
        if "report_keywords" in sql:
            self.keyword_rows += n
            self.rows -= n
        return n


async def test_a_slice_of_emails_merges_the_words_of_several(db: Database, settings: Settings) -> None:
    """A keyword count weighs 1/KEYWORDS_A_ROW of a row in a slice's SLICE_ROWS (the database upserts them from one
    JSON object, in a quarter to a third of a row's time on the writer): a slice folds several emails, so what they
    share is written once (counted as whole rows, an email's counts filled a slice after one or two emails and every
    write merged nothing). The other rows of a slice stay within SLICE_ROWS, its keyword counts within KEYWORDS_A_ROW
    times that, each give or take its last event's."""
    mail = _Mail(db, settings)
    await mail.send(40)
    slices: list[tuple[int, int, int]] = []  # (events, keyword rows, other rows) per slice

    def roll_counted(tx: Tx) -> int:
        counting = _SliceCountingTx(tx)
        done = roll(counting, RULES, cutoff="9999")
        if done:
            slices.append((done, counting.keyword_rows, counting.rows))
        return done

    while await db.write(roll_counted):
        pass
    assert sum(events for events, _, _ in slices) == 40
    a_message = max(len(terms(text)) for text in mail.sent)  # a row a term: its week, channel and queue's
    assert all(other <= SLICE_ROWS + 100 for _, _, other in slices), slices
    assert all(words <= KEYWORDS_A_ROW * SLICE_ROWS + a_message for _, words, _ in slices), slices
    assert len(slices) <= 40 // 5, slices  # five or more emails a slice (two or three before)
    expected: Counter[str] = Counter(t for text in mail.sent for t in terms(text))
    assert {word: n for dim, _value, _week, word, n in await keywords(db) if dim == "all"} == dict(expected)


async def test_a_term_is_one_keyword_row_whatever_the_slices_read(db: Database, settings: Settings) -> None:
    """A message's term is written once, by week, channel and queue (migration 114): the counts for everything, the
    channel and the queue are summed when a trend is read, not written three times (an email's 117 terms were 351
    keyword rows, half the hub process's CPU during an import). The three read as before."""
    mail = _Mail(db, settings)
    await mail.send(12)
    written = 0

    def roll_counted(tx: Tx) -> int:
        nonlocal written
        counting = _SliceCountingTx(tx)
        done = roll(counting, RULES, cutoff="9999", rows=10**6)
        written += counting.keyword_rows
        return done

    assert await db.write(roll_counted) == 12
    expected: Counter[str] = Counter(t for text in mail.sent for t in terms(text))
    assert written == len(expected)  # one row a term (every term here is new): 3 per term before
    assert {(channel, queue) for _, channel, queue, _, _ in await kept_rows(db)} == {
        ("sms", settings.routing.default_queue)}
    week = str((await kept_rows(db))[0][0])
    end = (datetime.fromisoformat(week) + timedelta(weeks=1)).date().isoformat()
    for dim, value in (("all", ""), ("channel", "sms"), ("queue", settings.routing.default_queue)):
        got = await db.read(lambda tx, d=dim, v=value: query.keyword_counts(tx, d, v, week, end, 1))
        assert got == dict(expected), dim
    other = await db.read(lambda tx: query.keyword_counts(tx, "channel", "telegram", week, end, 1))
    assert other == {}


async def test_counts_kept_before_migration_114_are_read_with_the_new(db: Database, settings: Settings) -> None:
    """report_keywords keeps, per slice, what the roller counted before migration 114; a trend reads it with the rows
    kept since, so an upgrade needs no rebuild to show the weeks before it."""
    mail = _Mail(db, settings)
    await mail.send(1)
    assert await db.write(lambda tx: roll(tx, RULES, cutoff="9999")) == 1
    week = str((await kept_rows(db))[0][0])
    end = (datetime.fromisoformat(week) + timedelta(weeks=1)).date().isoformat()
    word = sorted(terms(mail.sent[0]))[0]

    def old_counts(tx: Tx) -> None:
        for dim, value in (("all", ""), ("channel", "sms"), ("queue", settings.routing.default_queue)):
            tx.exec("INSERT INTO report_keywords (dim, value, week, word, n) VALUES (?, ?, ?, ?, 4), (?, ?, ?, ?, 2)",
                    (dim, value, week, word, dim, value, week, "refund"))
        tx.exec("INSERT INTO report_keywords (dim, value, week, word, n) "
                "VALUES ('channel', 'telegram', ?, 'refund', 7)", (week,))

    await db.write(old_counts)
    for dim, value in (("all", ""), ("channel", "sms"), ("queue", settings.routing.default_queue)):
        got = await db.read(lambda tx, d=dim, v=value: query.keyword_counts(tx, d, v, week, end, 2))
        assert got == {word: 5, "refund": 2}, dim
        few = await db.read(lambda tx, d=dim, v=value: query.keyword_counts(tx, d, v, week, end, None, [word]))
        assert few == {word: 5}, dim
    telegram = await db.read(lambda tx: query.keyword_counts(tx, "channel", "telegram", week, end, 1))
    assert telegram == {"refund": 7}
