"""The roller: folds new conversation events into report_rollups (counts and sums per hour, day and month, by channel,
queue and agent), keeping each conversation's clocks (opened, first response, awaiting a reply) in
report_conversations. Reports read only the rollups, so a year of figures costs a few thousand rows, not a scan of
messages. It also counts the keywords of customers' messages by week, channel and queue (report_keywords_by_queue,
for keyword trends), and keeps each customer's figures and each saved segment's (hub.reports.segment_rollups), for
reports by segment. `rebuild` recomputes everything from the events: the incremental figures must equal it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any, ClassVar

import orjson

from hub import fail_points
from hub.automation import hours as automation_hours
from hub.business_events import recompute_orders
from hub.business_hours import is_open, zone
from hub.config import ReportsSettings, RoutingSettings
from hub.history.db import Database, Row, Tx
from hub.history.merge import LATER, survivor
from hub.inbox import labels
from hub.model import format_time, utcnow
from hub.reports import segment_rollups
from hub.reports.hours import business_seconds
from hub.reports.keywords import terms
from hub.reports.schema import CUSTOMER_COLUMNS, CUSTOMER_METRICS, CUSTOMER_TIMED
from hub.segments.criteria import current_cuts, cuts

log = logging.getLogger("hub.reports")

#: the slices every figure is kept by ("all" has the one value "")
DIMS = ("all", "channel", "queue", "agent")
GRAINS = ("hour", "day", "month")

#: add one customer's figures of one hour or day (survivor, grain, bucket, *customer_values) to what is kept
ADD_CUSTOMER_ROW = (
    f"INSERT INTO report_customer_rollups (customer_id, grain, bucket, {', '.join(CUSTOMER_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in range(3 + len(CUSTOMER_COLUMNS)))}) ON CONFLICT (customer_id, grain, bucket) "
    f"DO UPDATE SET {', '.join(f'{c} = report_customer_rollups.{c} + excluded.{c}' for c in CUSTOMER_COLUMNS)}"
)

#: add (week, channel, queue, {word: n, ...} as JSON) to the keyword counts, by dialect ("WHERE true": SQLite's
#: upsert after a SELECT needs a WHERE to parse). A count is kept once, by week, channel and queue: the counts for
#: everything, a channel or a queue are the sums of these rows, made when a trend is read (query.keyword_counts),
#: not written three times per word of every message
ADD_KEYWORDS = {
    dialect: "INSERT INTO report_keywords_by_queue (week, channel, queue, word, n) "
             f"SELECT ?, ?, ?, key, {n} FROM {each} ON CONFLICT (week, channel, queue, word) "
             "DO UPDATE SET n = report_keywords_by_queue.n + excluded.n"
    for dialect, n, each in (("sqlite", "value", "json_each(?) WHERE true"),
                             ("postgresql", "value::bigint", "json_each_text(?::json)"))
}


def customer_values(sums: dict[str, list[float]]) -> tuple[float, ...]:
    """SUMS (metric -> [n, total]) in CUSTOMER_COLUMNS order. A metric outside CUSTOMER_METRICS, or a total on one
    outside CUSTOMER_TIMED, has no column: it is refused rather than dropped from the segment reports."""
    unknown = set(sums) - set(CUSTOMER_METRICS)
    untimed = {m for m, (_n, total) in sums.items() if total and m not in CUSTOMER_TIMED}
    if unknown or untimed:
        raise ValueError(f"report_customer_rollups has no column for {sorted(unknown | untimed)}")
    none = [0, 0.0]
    return (*(int(sums.get(m, none)[0]) for m in CUSTOMER_METRICS), *(sums.get(m, none)[1] for m in CUSTOMER_TIMED))


_TIMED = frozenset(CUSTOMER_TIMED)


@lru_cache(maxsize=1024)
def _shape(metrics: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(columns, metrics, timed metrics, untimed metrics) of a customer row with METRICS, in column order."""
    ordered = tuple(m for m in CUSTOMER_METRICS if m in metrics)
    timed = tuple(m for m in ordered if m in _TIMED)
    return ((*(f"n_{m}" for m in ordered), *(f"t_{m}" for m in timed)), ordered, timed,
            tuple(m for m in ordered if m not in _TIMED))


def customer_columns(sums: dict[str, list[float]]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The report_customer_rollups columns SUMS adds to, and what it adds: n_<metric> for each of its metrics and
    t_<metric> for each timed one. customer_values without the zeros (a column left out keeps its value, as adding 0
    to it would), refused alike."""
    columns, ordered, timed, untimed = _shape(tuple(sums))
    if len(ordered) != len(sums) or any(sums[m][1] for m in untimed):
        customer_values(sums)  # raises, naming what has no column
    return columns, (*[int(sums[m][0]) for m in ordered], *[sums[m][1] for m in timed])

# Events newer than this may still have company committing with lower ids (PostgreSQL hands out ids before commit):
# the roller leaves them for its next round so a conversation's events are folded in the order they happened.
SETTLE_SECONDS = {"sqlite": 0.0, "postgresql": 2.0}
#: events one slice reads at most
BATCH = 500
#: rows one slice writes at most, give or take its last event's (events marked rolled, rows upserted, keyword counts):
#: a slice holds the SQLite writer, which every inbound acknowledgement shares, for a few ms (about 1,000 rows took
#: 4 ms on a quiet 2-core machine); counted, not timed, so a slice's bounds are the same on every run
SLICE_ROWS = 500
#: keyword counts that weigh one row in SLICE_ROWS: a keyword count is one entry of a JSON object the database unpacks
#: and upserts in one statement (ADD_KEYWORDS), a quarter to a third of the writer's time of a row built in Python and
#: bound by the driver (a slice of emails holds the writer 3.4 ms at the median, one of other rows 2.4-2.9;
#: docs/email.md, "Sixth round"); counted as whole rows, an email's 350 counts filled a slice after one or two
#: emails, whose writes then merged nothing across emails
KEYWORDS_A_ROW = 4
#: events a slice reads at a time, with what folding them reads besides (their conversations' clocks and labels,
#: message texts, last resolves): a slice often fills its SLICE_ROWS after a hundred events, so reading all of BATCH's
#: up front read five times what it folded
LOOKUP = 64
#: events a slice reads first (then LOOKUP at a time): a slice of emails is full after a few dozen (each writes about
#: a hundred keyword counts and a few dozen other rows), so a first read of LOOKUP emails read their texts to fold
#: half of them, and one of 16 read a second page of 64 to fold 24
FIRST_PAGE = 32
#: rows one multi-row statement writes at most
ROWS_A_STATEMENT = 100
_LOCK = segment_rollups.LOCK  # PostgreSQL advisory lock: one roller at a time across hub processes


@dataclass(frozen=True)
class RollRules:
    """What the roller needs from the settings: business hours, the repeat window, each queue's SLA wait."""

    time_zone: str = "UTC"
    business_hours: tuple[str, ...] = ()
    repeat_window: timedelta = timedelta(days=7)
    sla_wait: dict[str, float] = field(default_factory=dict)
    #: each queue's first-response target in seconds (0: none)
    first_response: dict[str, float] = field(default_factory=dict)
    #: count the keywords of customers' messages (and, with phrases, two-word phrases) for keyword trends
    keywords: bool = True
    phrases: bool = True
    #: the stored "default" business hours, read by each batch when business_hours (the config's) is empty
    stored_hours: automation_hours.BusinessHours | None = None

    @classmethod
    def from_settings(cls, reports: ReportsSettings, routing: RoutingSettings) -> RollRules:
        return cls(reports.time_zone, tuple(reports.business_hours), timedelta(days=reports.repeat_window_days),
                   {name: q.sla_wait for name, q in routing.queues.items()},
                   {name: q.first_response for name, q in routing.queues.items()},
                   reports.keywords, reports.keyword_phrases)


@dataclass
class _Clock:
    """One conversation's clocks (a row of report_conversations)."""

    conversation_id: int
    customer_id: int | None = None
    channel: str = ""
    queue: str = ""
    agent_id: int | None = None
    opened_at: str | None = None
    first_response_at: str | None = None
    awaiting_since: str | None = None
    answered: int = 0
    resolved_at: str | None = None

    #: the conversation's labels when its events are rolled (read each batch; not stored with the clocks)
    labels: tuple[str, ...] = ()

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "conversation_id", "customer_id", "channel", "queue", "agent_id", "opened_at", "first_response_at",
        "awaiting_since", "answered", "resolved_at",
    )

    def row(self) -> tuple[Any, ...]:
        """The clocks as report_conversations keeps them (COLUMNS)."""
        return _CLOCK_ROW(self)


_CLOCK_ROW = attrgetter(*_Clock.COLUMNS)


def parse_time(s: str) -> datetime:
    """hub.model.parse_time, seventy times faster: the roller reads several times per event."""
    return datetime.fromisoformat(s)


def _seconds(start: str | None, end: str) -> float | None:
    if start is None:
        return None
    return max(0.0, (parse_time(end) - parse_time(start)).total_seconds())


def _open(rules: RollRules, at: str) -> bool:
    if rules.stored_hours is not None:
        return rules.stored_hours.is_open(parse_time(at))
    return is_open(list(rules.business_hours), rules.time_zone, parse_time(at))


def _timed(d: _Deltas, metric: str, start: str | None, at: str, c: _Clock, agent: int | None,
           rules: RollRules) -> float:
    """Add a clock that ran from START to AT: its plain seconds, and (metric_bh) its seconds in business hours."""
    took = _seconds(start, at) or 0.0
    d.add(metric, at, c, agent, took)
    if start is None:
        bh = 0.0
    elif rules.stored_hours is not None:
        bh = rules.stored_hours.open_seconds(parse_time(start), parse_time(at))
    else:
        bh = business_seconds(parse_time(start), parse_time(at), rules.business_hours, rules.time_zone)
    d.add(metric + "_bh", at, c, agent, bh)
    return took


class _Deltas:
    """Counts and sums to add to report_rollups, merged in memory first: one upsert per touched row per batch."""

    def __init__(self, rules: RollRules) -> None:
        self.rows: dict[tuple[str, str, str, str, str], list[float]] = {}
        #: per customer: contacts (conversations opened or reopened) and the last one's time, for segments
        self.contacts: dict[int, tuple[int, str]] = {}
        self.channels: set[tuple[int, str]] = set()
        #: per customer: satisfaction answers and the sum of their scores
        self.ratings: dict[int, tuple[int, float]] = {}
        #: (customer, grain, bucket) -> metric -> [n, total]: the same figures by customer, per UTC hour and per
        #: business day, for reports by segment
        self.customers: dict[tuple[int, str, str], dict[str, list[float]]] = {}
        #: (week, channel, queue) -> word -> messages that had it: the keyword counts, a row each (ADD_KEYWORDS)
        self.keywords: dict[tuple[str, str, str], Counter[str]] = {}
        self.tz = zone(rules.time_zone)
        self._days: dict[str, str] = {}
        self._weeks: dict[str, str] = {}
        #: keyword rows these deltas write (size() asks after every event)
        self._words = 0
        #: (metric, hour, channel, queue, agent, labels) -> the rows an add of it adds to (many events share them)
        self._targets: dict[tuple[Any, ...], list[list[float]]] = {}

    def day(self, at: str) -> str:
        hour = at[:13]
        d = self._days.get(hour)
        if d is None:
            d = self._days[hour] = parse_time(at).astimezone(self.tz).strftime("%Y-%m-%d")
        return d

    def week(self, at: str) -> str:
        """The business's day of the Monday that starts AT's week."""
        day = self.day(at)
        w = self._weeks.get(day)
        if w is None:
            d = datetime.strptime(day, "%Y-%m-%d")
            w = self._weeks[day] = (d - timedelta(days=d.weekday())).strftime("%Y-%m-%d")
        return w

    def words(self, words: Iterable[str], at: str, channel: str, queue: str) -> None:
        key = (self.week(at), channel, queue)
        counts = self.keywords.get(key)
        if counts is None:
            counts = self.keywords[key] = Counter()
        before = len(counts)
        counts.update(words)  # counted in C, not a dictionary step per word in Python
        self._words += len(counts) - before

    def contact(self, customer_id: int, at: str, channel: str) -> None:
        n, last = self.contacts.get(customer_id, (0, at))
        self.contacts[customer_id] = (n + 1, max(last, at))
        if channel:
            self.channels.add((customer_id, channel))

    def rating(self, customer_id: int, score: float) -> None:
        n, total = self.ratings.get(customer_id, (0, 0.0))
        self.ratings[customer_id] = (n + 1, total + score)

    def customer(self, customer_id: int, grain: str, bucket: str, metric: str, total: float) -> None:
        mine = self.customers.setdefault((customer_id, grain, bucket), {}).setdefault(metric, [0, 0.0])
        mine[0] += 1
        mine[1] += total

    def size(self) -> int:
        """Rows these deltas write, as SLICE_ROWS counts them (as _save does: one upsert a row; a keyword count,
        KEYWORDS_A_ROW of them to a row)."""
        return (len(self.rows) + len(self.customers) + len(self.contacts) + len(self.ratings) + len(self.channels)
                + self._words // KEYWORDS_A_ROW)

    def add(self, metric: str, at: str, c: _Clock, agent: int | None, total: float = 0.0) -> None:
        day = self.day(at)
        if c.customer_id is not None:
            self.customer(c.customer_id, "hour", at[:13], metric, total)
            self.customer(c.customer_id, "day", day, metric, total)
        key = (metric, at[:13], c.channel, c.queue, agent, c.labels)
        targets = self._targets.get(key)
        if targets is None:
            buckets = (("hour", at[:13]), ("day", day), ("month", day[:7]))
            values = (("all", ""), ("channel", c.channel), ("queue", c.queue),
                      ("agent", "" if agent is None else str(agent)), *(("label", name) for name in c.labels))
            targets = self._targets[key] = [self.rows.setdefault((grain, dim, metric, bucket, value), [0, 0.0])
                                            for grain, bucket in buckets for dim, value in values
                                            if dim == "all" or value != ""]
        for row in targets:
            row[0] += 1
            row[1] += total


def _fold(e: Row, c: _Clock, d: _Deltas, rules: RollRules, last_resolved: Callable[[int, int], str | None]) -> None:
    """One event into its conversation's clocks and the deltas (docs/reports.md says why each clock starts and
    stops where it does)."""
    kind, at, agent = str(e["type"]), str(e["at"]), e["agent_id"]
    if e["customer_id"] is not None:
        c.customer_id = int(e["customer_id"])
    if e["channel"] and kind in ("opened", "reopened"):
        c.channel = str(e["channel"])
    if e["queue"] and kind in ("opened", "reopened", "assigned", "transferred", "overflowed"):
        c.queue = str(e["queue"])
    channel_of_event = replace(c, channel=str(e["channel"])) if e["channel"] and e["channel"] != c.channel else c
    if kind in ("opened", "reopened"):
        before = last_resolved(c.customer_id or 0, c.conversation_id) if kind == "opened" else c.resolved_at
        c.opened_at, c.first_response_at, c.awaiting_since, c.answered, c.resolved_at = at, None, None, 0, None
        c.agent_id = None
        d.add(kind, at, c, None)
        if c.customer_id is not None:
            d.contact(c.customer_id, at, c.channel)
        if before is not None and parse_time(at) - parse_time(before) <= rules.repeat_window:
            d.add("repeat", at, c, None)
        if not _open(rules, at):
            d.add("after_hours", at, c, None)
        d.add("messages_in", at, channel_of_event, None)  # the message that opened it
        c.awaiting_since = at
    elif kind == "message_in":
        d.add("messages_in", at, channel_of_event, None)
        if c.awaiting_since is None:
            c.awaiting_since = at
    elif kind == "message_out":
        d.add("messages_out", at, channel_of_event, agent)
        if agent is None:
            return  # an automatic message answers nobody
        if c.first_response_at is None and c.opened_at is not None:
            c.first_response_at = at
            took = _timed(d, "first_response", c.opened_at, at, channel_of_event, agent, rules)
            if e["seconds"] is not None:
                # Against the deadline routing stored as the conversation entered its queue (business hours
                # counted), which the reply carries: as the live figures count it.
                d.add("first_response_targeted", at, channel_of_event, agent)
                if parse_time(at).timestamp() <= float(e["seconds"]):
                    d.add("first_response_in_sla", at, channel_of_event, agent)
            elif (target := rules.first_response.get(c.queue) or 0.0) > 0:
                # No stored deadline (opened before they were stored): the queue's target, in calendar time.
                d.add("first_response_targeted", at, channel_of_event, agent)
                if took <= target:
                    d.add("first_response_in_sla", at, channel_of_event, agent)
        if c.awaiting_since is not None:
            _timed(d, "reply", c.awaiting_since, at, channel_of_event, agent, rules)
            c.awaiting_since = None
    elif kind == "resolved":
        resolver = c.agent_id if c.agent_id is not None else agent
        _timed(d, "resolved", c.opened_at, at, c, resolver, rules)
        c.resolved_at, c.awaiting_since = at, None
    elif kind == "offered":
        d.add("offered", at, c, agent)
    elif kind == "assigned":
        c.agent_id = agent
        waited = float(e["seconds"] or 0.0)
        d.add("offers_accepted", at, c, agent)
        if not c.answered:  # the first time an agent takes it: how long the customer waited in the queue
            c.answered = 1
            d.add("wait", at, c, agent, waited)
            sla = rules.sla_wait.get(c.queue)
            if sla is not None and waited <= sla:
                d.add("answered_in_sla", at, c, agent)
    elif kind == "rejected":
        d.add("offers_rejected", at, c, agent)
    elif kind == "offer_timed_out":
        d.add("offers_timed_out", at, c, agent)
    elif kind == "transferred":
        d.add("transfers", at, c, agent)
        c.agent_id = None
    elif kind == "csat":
        # Counted for the queue and agent the survey was about (as they were at the resolve), on its channel.
        score = float(e["seconds"] or 0.0)
        about = replace(channel_of_event, queue=str(e["queue"] or c.queue))
        d.add("csat", at, about, agent, score)
        if c.customer_id is not None:
            d.rating(c.customer_id, score)
        if score >= 4:
            d.add("csat_satisfied", at, about, agent)
    elif kind == "abandoned":
        # Left its queue with no agent: abandoned, unless someone answered or resolved it first (an admin
        # replying and resolving from the API takes work out of the queue; the customer did not give up).
        if c.first_response_at is None and c.resolved_at is None:
            d.add("abandoned", at, c, None, _seconds(c.opened_at, at) or 0.0)


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _insert(tx: Tx, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
    """HEAD VALUES (...), (...) TAIL: ROWS in statements of up to ROWS_A_STATEMENT rows (a statement a row cost more
    in Python and driver steps than the row's own write). An upsert's rows must have distinct keys in one statement
    (PostgreSQL updates a row once per statement): see _rounds."""
    if not rows:
        return
    one = "(" + ", ".join("?" for _ in rows[0]) + ")"
    for chunk in _chunks(rows, ROWS_A_STATEMENT):
        tx.exec(f"{head} VALUES {', '.join([one] * len(chunk))} {tail}", [v for row in chunk for v in row])


def _rounds(rows: Iterable[tuple[Hashable, tuple[Any, ...]]]) -> list[list[tuple[Any, ...]]]:
    """ROWS (key, row) in rounds where no key comes twice, each key's rows in successive rounds: written a round at a
    time, they add up in the order given, as a statement a row did (two customers merged into the same survivor)."""
    rounds: list[list[tuple[Any, ...]]] = []
    seen: Counter[Hashable] = Counter()
    for key, row in rows:
        n = seen[key]
        seen[key] += 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(row)
    return rounds


def _survivors(tx: Tx, ids: Iterable[int]) -> dict[int, int]:
    """Each of IDS as hub.history.merge.survivor gives it, in one query for the customers never merged."""
    out: dict[int, int] = {}
    for chunk in _chunks(sorted(set(ids))):
        marks = ", ".join("?" for _ in chunk)
        merged = {int(r["id"]) for r in tx.all(
            f"SELECT id FROM customers WHERE id IN ({marks}) AND merged_into IS NOT NULL", chunk)}
        out.update((c, survivor(tx, c) if c in merged else c) for c in chunk)
    return out


def _kept_in_segments(tx: Tx, ids: Iterable[int]) -> set[int]:
    """Which of IDS some saved segment keeps (report_segment_members)."""
    out: set[int] = set()
    for chunk in _chunks(sorted(set(ids))):
        marks = ", ".join("?" for _ in chunk)
        out.update(int(r["customer_id"]) for r in tx.all(
            f"SELECT DISTINCT customer_id FROM report_segment_members WHERE customer_id IN ({marks})", chunk))
    return out


def _load_clocks(tx: Tx, ids: Iterable[int]) -> dict[int, _Clock]:
    out: dict[int, _Clock] = {}
    for chunk in _chunks(sorted(set(ids))):
        marks = ", ".join("?" for _ in chunk)
        for r in tx.all(f"SELECT {', '.join(_Clock.COLUMNS)} FROM report_conversations "
                        f"WHERE conversation_id IN ({marks})", chunk):
            out[int(r["conversation_id"])] = _Clock(**{k: r[k] for k in _Clock.COLUMNS})
    return out


def _save(tx: Tx, clocks: Iterable[_Clock], deltas: _Deltas) -> None:
    cols = _Clock.COLUMNS
    _insert(tx, f"INSERT INTO report_conversations ({', '.join(cols)})",
            [tuple(getattr(c, k) for k in cols) for c in clocks],
            f"ON CONFLICT (conversation_id) DO UPDATE SET {', '.join(f'{k} = excluded.{k}' for k in cols[1:])}")
    _insert(tx, "INSERT INTO report_rollups (grain, dim, metric, bucket, value, n, total)",
            [(*key, int(n), total) for key, (n, total) in deltas.rows.items()],
            "ON CONFLICT (grain, dim, value, metric, bucket) DO UPDATE SET n = report_rollups.n + excluded.n, "
            "total = report_rollups.total + excluded.total")
    # An event names the customer it came from, who may since have been merged into another (hub.history.merge
    # moves the facts kept so far; these follow).
    merged = _survivors(tx, [*(c for c, _, _ in deltas.customers), *deltas.contacts, *deltas.ratings,
                             *(c for c, _ in deltas.channels)])
    customers = [((merged[c], grain, bucket), sums) for (c, grain, bucket), sums in sorted(deltas.customers.items())]
    for each in _rounds(((key, (*key, sums)) for key, sums in customers)):
        by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for who, grain, bucket, sums in each:
            columns, values = customer_columns(sums)
            by_columns.setdefault(columns, []).append((who, grain, bucket, *values))
        for columns, rows in by_columns.items():
            _insert(tx, f"INSERT INTO report_customer_rollups (customer_id, grain, bucket, {', '.join(columns)})",
                    rows, "ON CONFLICT (customer_id, grain, bucket) DO UPDATE SET "
                    + ", ".join(f"{c} = report_customer_rollups.{c} + excluded.{c}" for c in columns))
    # and to the segments each customer is kept in, so each stays the sum of its members' rows
    kept = _kept_in_segments(tx, (who for (who, _, _), _ in customers))
    for (who, grain, bucket), sums in customers:
        if who in kept:
            tx.exec(segment_rollups.ADD_TO_SEGMENTS, (grain, bucket, *customer_values(sums), who))
    # Each customer's contacts, satisfaction answers and channels, for segments.
    for each in _rounds((merged[c], (merged[c], n, last)) for c, (n, last) in deltas.contacts.items()):
        _insert(tx, "INSERT INTO customer_stats (customer_id, contacts, last_contact_at)", each,
                "ON CONFLICT (customer_id) DO UPDATE SET contacts = customer_stats.contacts + excluded.contacts, "
                f"last_contact_at = {LATER.format(c='last_contact_at')}")
    for each in _rounds((merged[c], (merged[c], n, total)) for c, (n, total) in deltas.ratings.items()):
        _insert(tx, "INSERT INTO customer_stats (customer_id, csat_answers, csat_total)", each,
                "ON CONFLICT (customer_id) DO UPDATE SET csat_answers = customer_stats.csat_answers + "
                "excluded.csat_answers, csat_total = customer_stats.csat_total + excluded.csat_total")
    # Varied text (email) makes a hundred terms an email: each (week, channel, queue)'s counts go as one JSON
    # object, unpacked and upserted by the database in one statement, not a statement (and Python tuple) per row.
    for (week, channel, queue), counts in deltas.keywords.items():
        tx.exec(ADD_KEYWORDS[tx.dialect], (week, channel, queue, orjson.dumps(counts).decode()))
    _insert(tx, "INSERT INTO customer_channels (customer_id, channel)",
            sorted({(merged[c], channel) for c, channel in deltas.channels}),
            "ON CONFLICT (customer_id, channel) DO NOTHING")


@dataclass
class _Batch:
    """Events folded, and what to write for them: read and computed off the writer, written in one short step."""

    ids: list[int]
    clocks: list[_Clock]
    deltas: _Deltas


class _Raced(Exception):
    """Another roller folded some of these events first: this batch is dropped and planned again."""


#: the customer messages whose words count (a call's or an event's text is the hub's, not the customer's)
_WORDED_KINDS = ("text", "voicemail")


def _texts(tx: Tx, events: list[Row]) -> dict[int, str]:
    """The text of each customer message these events name."""
    ids = sorted({int(e["message_id"]) for e in events if e["message_id"] is not None
                  and e["type"] in ("opened", "reopened", "message_in")})
    out: dict[int, str] = {}
    for chunk in _chunks(ids):
        marks = ", ".join("?" for _ in chunk)
        for r in tx.all(f"SELECT id, kind, text FROM messages WHERE id IN ({marks})", chunk):
            if r["kind"] in _WORDED_KINDS and r["text"]:
                out[int(r["id"])] = str(r["text"])
    return out


def _last_resolves(tx: Tx, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], str | None]:
    """For each (customer, conversation): when another conversation of the customer was last resolved, as the
    roller kept it (None: never)."""
    out: dict[tuple[int, int], str | None] = {}
    for chunk in _chunks(sorted(set(pairs)), 250):
        for r in tx.all(
            "SELECT v.column1 AS customer_id, v.column2 AS conversation_id, (SELECT MAX(r.resolved_at) FROM "
            "report_conversations r WHERE r.customer_id = v.column1 AND r.conversation_id <> v.column2 AND "
            f"r.resolved_at IS NOT NULL) AS at FROM (VALUES {', '.join('(?, ?)' for _ in chunk)}) AS v",
            [x for pair in chunk for x in pair],
        ):
            out[(int(r["customer_id"]), int(r["conversation_id"]))] = str(r["at"]) if r["at"] else None
    return out


class _Lookups:
    """What folding a slice's events reads besides the events, read LOOKUP events at a time (a query of each kind):
    their conversations' clocks and labels, the texts of customer messages, and for each conversation a customer's
    message opened, the customer's last resolve before it. All from the slice's one snapshot."""

    def __init__(self, tx: Tx, keywords: bool) -> None:
        self.tx, self.keywords = tx, keywords
        self.clocks: dict[int, _Clock] = {}
        #: each clock as report_conversations had it (a clock folded back to that needs no write)
        self.kept: dict[int, tuple[Any, ...]] = {}
        self.labels: dict[int, list[str]] = {}
        self.texts: dict[int, str] = {}
        self.resolved: dict[tuple[int, int], str | None] = {}

    def read(self, events: list[Row]) -> None:
        """Read what EVENTS need and was not read yet (a clock already folded into is never read again)."""
        new = sorted({int(e["conversation_id"]) for e in events} - self.labels.keys())
        clocks = _load_clocks(self.tx, new)
        self.clocks.update(clocks)
        self.kept.update((cid, c.row()) for cid, c in clocks.items())
        # A conversation's figures count under each label it has when they are rolled (seconds after they happen).
        self.labels.update(labels.of_many(self.tx, "conversation", new))
        if self.keywords:
            self.texts.update(_texts(self.tx, events))
        self.resolved.update(_last_resolves(self.tx, (
            (int(e["customer_id"]), int(e["conversation_id"])) for e in events
            if e["type"] == "opened" and e["customer_id"] is not None)))

    def last_resolved(self, customer_id: int, conversation_id: int) -> str | None:
        key = (customer_id, conversation_id)
        if key not in self.resolved:  # a customer the event did not name: its conversation's, as kept
            self.resolved.update(_last_resolves(self.tx, [key]))
        return self.resolved[key]


def settled(dialect: str) -> str:
    """The newest time an event may have to be folded now (SETTLE_SECONDS ago)."""
    return format_time(utcnow() - timedelta(seconds=SETTLE_SECONDS.get(dialect, 0.0)))


def _unrolled(tx: Tx, cutoff: str, after: int, limit: int) -> list[Row]:
    return tx.all(
        "SELECT id, conversation_id, customer_id, type, at, channel, queue, agent_id, seconds, message_id "
        "FROM conversation_events WHERE rolled = 0 AND at <= ? AND id > ? ORDER BY id LIMIT ?",
        (cutoff, after, limit),
    )


def plan(tx: Tx, rules: RollRules, cutoff: str | None = None, limit: int = BATCH,
         rows: int = SLICE_ROWS) -> _Batch | None:
    """Read up to LIMIT unrolled events at or before CUTOFF and fold them in memory (nothing is written), oldest
    first, until what the slice will write reaches ROWS; the events left over are the next slice's. Events are read
    FIRST_PAGE, then LOOKUP at a time, each page with what folding it needs (_Lookups)."""
    cutoff = cutoff or settled(tx.dialect)
    events = _unrolled(tx, cutoff, 0, min(FIRST_PAGE, limit))
    if not events:
        return None
    if not rules.business_hours:
        # The config's hours win; without them, the stored default's (read here, so a rebuild and the incremental
        # roller read the same, and a change applies from the next batch on).
        rules = replace(rules, stored_hours=automation_hours.load(tx, automation_hours.DEFAULT))
    looked = _Lookups(tx, rules.keywords)
    resolved_here: dict[int, tuple[int, str]] = {}  # customer -> (conversation, resolved at), this batch

    def last_resolved(customer_id: int, conversation_id: int) -> str | None:
        here = resolved_here.get(customer_id)
        if here is not None and here[0] != conversation_id:
            return here[1]
        return looked.last_resolved(customer_id, conversation_id)

    deltas = _Deltas(rules)
    folded: list[int] = []
    changed: dict[int, _Clock] = {}  # the clocks to write: new ones, and those the events moved
    read = 0
    while events:
        read += len(events)
        looked.read(events)
        for e in events:
            if folded and len(folded) + len(changed) + deltas.size() >= rows:
                return _Batch(folded, list(changed.values()), deltas)  # full: its writes stay short (SLICE_ROWS)
            folded.append(int(e["id"]))
            cid = int(e["conversation_id"])
            c = looked.clocks.get(cid)
            if c is None:
                c = looked.clocks[cid] = _Clock(cid)
            c.labels = tuple(looked.labels.get(cid, ()))
            _fold(e, c, deltas, rules, last_resolved)
            if c.row() != looked.kept.get(cid):
                changed[cid] = c
            else:
                changed.pop(cid, None)
            text = looked.texts.get(e["message_id"]) if e["message_id"] is not None else None
            if text:
                deltas.words(terms(text, rules.phrases), str(e["at"]), str(e["channel"] or c.channel), c.queue)
            if e["type"] == "resolved" and c.customer_id is not None and c.resolved_at is not None:
                resolved_here[c.customer_id] = (cid, c.resolved_at)
        events = _unrolled(tx, cutoff, int(events[-1]["id"]), min(LOOKUP, limit - read)) if read < limit else []
    return _Batch(folded, list(changed.values()), deltas)


def commit(tx: Tx, batch: _Batch) -> int:
    """Write a planned batch: mark its events rolled and add its deltas, all or nothing. Raises _Raced if another
    roller marked any of them since (its clocks would then be stale)."""
    if tx.dialect == "postgresql":
        tx.one("SELECT pg_advisory_xact_lock(?) AS locked", (_LOCK,))  # one writer of the rollups at a time
    marked = 0
    for chunk in _chunks(batch.ids):
        marks = ", ".join("?" for _ in chunk)
        marked += tx.exec(f"UPDATE conversation_events SET rolled = 1 WHERE id IN ({marks}) AND rolled = 0", chunk)
    if marked != len(batch.ids):
        raise _Raced(f"{len(batch.ids) - marked} of {len(batch.ids)} events were folded by another roller")
    _save(tx, batch.clocks, batch.deltas)
    return marked


def roll(tx: Tx, rules: RollRules, cutoff: str | None = None, limit: int = BATCH, rows: int = SLICE_ROWS) -> int:
    """Plan and commit one slice in one transaction; returns how many events were folded."""
    batch = plan(tx, rules, cutoff, limit, rows)
    return commit(tx, batch) if batch is not None else 0


async def catch_up(db: Database, rules: RollRules, cutoff: str | None = None) -> int:
    """Roll until nothing is left up to CUTOFF (default: the events settled when it starts; those recorded while it
    rolls are the next round's, so under steady traffic it does not chase each slice's newcomers in slices of a
    few events, each costing a slice's reads and write); returns how many events were folded. Each slice is read
    and folded on a reader and written in one short write (SLICE_ROWS), so the inbound path waits on the writer as
    little as possible; a slice's events are marked rolled in the transaction that adds their figures, so a crash
    between slices (fail point `reports.between_slices`) loses or repeats nothing."""
    cutoff = cutoff or settled(db.dialect)
    done = 0
    raced = 0
    while True:
        batch = await db.read(lambda tx: plan(tx, rules, cutoff))
        if batch is None:
            return done
        try:
            done += await db.write(lambda tx, b=batch: commit(tx, b), background=True)  # type: ignore[misc]
            fail_points.hit("reports.between_slices")
        except _Raced:
            raced += 1
            if raced >= 3:  # another process is rolling the same events: leave them to it this round
                return done


async def rebuild(db: Database, rules: RollRules) -> int:
    """Throw the rollups and clocks away and fold every event again, oldest first. Returns how many events."""

    def reset(tx: Tx) -> None:
        if tx.dialect == "postgresql":
            tx.one("SELECT pg_advisory_xact_lock(?) AS ok", (_LOCK,))
        tx.exec("DELETE FROM report_rollups")
        tx.exec("DELETE FROM report_conversations")
        tx.exec("DELETE FROM report_customer_rollups")
        tx.exec("DELETE FROM report_segment_rollups")  # and their members: the refresh below keeps them again
        tx.exec("DELETE FROM report_segment_members")
        tx.exec("DELETE FROM report_keywords")  # what was counted before migration 114, read with the rest
        tx.exec("DELETE FROM report_keywords_by_queue")
        tx.exec("UPDATE customer_stats SET contacts = 0, last_contact_at = NULL, csat_answers = 0, csat_total = 0")
        tx.exec("DELETE FROM customer_channels")
        recompute_orders(tx)
        tx.exec("UPDATE conversation_events SET rolled = 0 WHERE rolled <> 0")

    await db.write(reset)
    done = await catch_up(db, rules)
    await segment_rollups.refresh(db, await db.read(cuts))
    return done


async def roll_forever(db: Database, rules: Callable[[], RollRules], interval: float) -> None:
    """For the app's lifetime: fold new events every INTERVAL seconds, and move segment members in and out every
    segment_rollups.REFRESH_SECONDS (the first time a few seconds after start)."""
    looked = time.monotonic() - segment_rollups.REFRESH_SECONDS + 5.0
    while True:
        try:
            await catch_up(db, rules())
        except Exception:
            log.exception("reports: rolling up conversation events failed; retrying in %.1fs", interval)
        if time.monotonic() - looked >= segment_rollups.REFRESH_SECONDS:
            looked = time.monotonic()
            try:
                await segment_rollups.refresh(db, await current_cuts(db))
            except Exception:
                log.exception("reports: moving segment members failed; retrying in %.0fs",
                              segment_rollups.REFRESH_SECONDS)
        await asyncio.sleep(interval)
