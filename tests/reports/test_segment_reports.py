"""Reports sliced by a segment: the figures are those of the segment's members now, exactly as the roller folds
their own events, on SQLite and PostgreSQL; and a long range reads a row per member and day, so its cost does not
grow with how many conversations the members had in a day (docs/reports.md, "Reports by segment")."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.history.db import Database, Row, Tx, open_database
from hub.history.merge import merge_customers
from hub.history.schema import migrate
from hub.model import format_time, utcnow
from hub.reports import query, segment_rollups
from hub.reports.events import record
from hub.reports.rollup import RollRules, _Clock, _Deltas, _fold, catch_up, rebuild
from hub.reports.schema import CUSTOMER_COLUMNS, CUSTOMER_METRICS, CUSTOMER_TIMED
from hub.reports.segment_rollups import differences
from hub.segments import segment_store
from hub.segments.criteria import Criteria, cuts
from hub.segments.segment_store import SegmentBody
from tests.reports.test_rollup import BERLIN, RULES, at


def save_segment(tx: Tx, criteria: dict[str, Any]) -> str:
    body = SegmentBody(name="under test", criteria=Criteria.model_validate(criteria))
    return str(segment_store.create(tx, body, format_time(utcnow())).id)


def conversations(tx: Tx, rng: random.Random, start: datetime, count: int, customers: int, first: int = 1) -> None:
    """COUNT conversations one after another (so a customer's never overlap), each of a random customer: abandoned,
    or answered and resolved (some within the hour, some a day later), some reopened, some rated (ids from FIRST)."""
    t = start
    for conv in range(first, first + count):
        customer = rng.randrange(1, customers + 1)
        channel, queue, agent = rng.choice(("sms", "email", "webchat")), rng.choice(("support", "sales")), 7 + conv % 3
        record(tx, "opened", conv, at(t), customer_id=customer, channel=channel, queue=queue)
        if rng.random() < 0.15:
            record(tx, "abandoned", conv, at(t, seconds=rng.randrange(10, 300)), queue=queue)
            t += timedelta(hours=rng.randrange(2, 30))
            continue
        waited = float(rng.randrange(5, 200))
        record(tx, "offered", conv, at(t, seconds=waited - 2), channel=channel, queue=queue, agent_id=agent)
        record(tx, "assigned", conv, at(t, seconds=waited), channel=channel, queue=queue, agent_id=agent,
               seconds=waited)
        record(tx, "message_out", conv, at(t, minutes=rng.randrange(4, 50)), channel=channel, queue=queue,
               agent_id=agent)
        record(tx, "message_in", conv, at(t, minutes=55), channel=channel, queue=queue)
        record(tx, "message_out", conv, at(t, minutes=70), channel=channel, queue=queue, agent_id=agent)
        done = t + timedelta(hours=rng.choice((1.5, 5, 26)))
        record(tx, "resolved", conv, at(done), customer_id=customer, channel=channel, queue=queue, agent_id=agent)
        if rng.random() < 0.2:
            done += timedelta(hours=3)
            record(tx, "reopened", conv, at(done), customer_id=customer, channel=channel, queue=queue)
            record(tx, "resolved", conv, at(done, minutes=20), customer_id=customer, channel=channel, queue=queue,
                   agent_id=agent)
        if rng.random() < 0.3:
            record(tx, "csat", conv, at(done, minutes=40), customer_id=customer, channel=channel, queue=queue,
                   agent_id=agent, seconds=float(rng.randrange(1, 6)))
        t = done + timedelta(hours=rng.randrange(1, 20))


def folded_alone(events: list[Row], rules: RollRules) -> _Deltas:
    """The members' own events folded by the roller's code alone, in order: what the reports would say if the
    store held nothing else (the expected figures, computed without report_customer_rollups)."""
    d = _Deltas(rules)
    clocks: dict[int, _Clock] = {}

    def last_resolved(customer_id: int, conversation_id: int) -> str | None:
        times = [c.resolved_at for c in clocks.values() if c.customer_id == customer_id
                 and c.conversation_id != conversation_id and c.resolved_at is not None]
        return max(times, default=None)

    for e in events:
        cid = int(e["conversation_id"])
        _fold(e, clocks.setdefault(cid, _Clock(cid)), d, rules, last_resolved)
    return d


def expected(d: _Deltas, ps: list[query.Piece]) -> dict[tuple[str, str, str], list[float]]:
    """(grain, bucket, metric) -> [n, total] of everything folded into D, over the pieces PS."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for (grain, dim, metric, bucket, _value), (n, total) in d.rows.items():
        if dim == "all" and any(p.grain == grain and p.lo <= bucket < p.hi for p in ps):
            out[(grain, bucket, metric)] = [int(n), round(total, 3)]
    return out


async def test_a_segments_figures_are_its_members_own_from_the_raw_events(db: Database) -> None:
    """Summary, timeseries (by day over 35 days, so business days; by month) and heatmap sliced by a segment equal
    the figures of the members' own events folded alone, for a range with hours, days and a whole month."""
    rng = random.Random(11)
    await db.write(lambda tx: conversations(tx, rng, datetime(2026, 1, 20, 6, tzinfo=UTC), 70, 9))
    await catch_up(db, RULES)
    sid = await db.write(lambda tx: save_segment(tx, {"contacts": {"min": 9}}))
    events = await db.read(lambda tx: tx.all(
        "SELECT id, conversation_id, customer_id, type, at, channel, queue, agent_id, seconds FROM conversation_events "
        "WHERE conversation_id IN (SELECT conversation_id FROM conversation_events WHERE type = 'opened' AND "
        "customer_id IN (SELECT customer_id FROM conversation_events WHERE type IN ('opened', 'reopened') "
        "GROUP BY customer_id HAVING COUNT(*) >= 9)) ORDER BY id"))
    members = {int(e["customer_id"]) for e in events if e["type"] == "opened"}
    assert 2 <= len(members) < 9  # a real subset of the customers
    want = folded_alone(events, RULES)
    lo, hi = datetime(2026, 2, 3, 5, tzinfo=UTC), datetime(2026, 4, 10, 17, tzinfo=UTC)

    ps = query.pieces(lo, hi, BERLIN)
    assert {p.grain for p in ps} == {"hour", "day", "month"}
    summed: dict[str, list[float]] = {}
    for (_g, _b, metric), (n, total) in expected(want, [query.Piece("hour", query._hour(lo), query._hour(hi))]).items():
        s = summed.setdefault(metric, [0, 0.0])
        s[0] += n
        s[1] += total
    got = await db.read(lambda tx: query.sums(tx, ps, "segment", sid).get(sid, {}))
    assert query.figures(got) == query.figures(summed)
    assert got["opened"][0] > 10 and got["csat"][0] > 0 and got["reopened"][0] > 0

    for group in ("day", "month"):
        gps, hourly = query.series_pieces(lo, hi, BERLIN, group)
        assert not hourly
        rows = await db.read(lambda tx, gps=gps: query.series_rows(tx, gps, "segment", sid))  # type: ignore[misc]
        assert {(str(r["grain"]), str(r["bucket"]), str(r["metric"])): [int(r["n"]), round(float(r["total"]), 3)]
                for r in rows} == expected(want, [query.Piece("day", p.lo + "-01", p.hi + "-01")
                                                  if p.grain == "month" else p for p in gps]), group

    hps = query.pieces(lo, hi, BERLIN, hourly_only=True)
    rows = await db.read(lambda tx: query.series_rows(tx, hps, "segment", sid, ("opened",)))
    assert {(str(r["grain"]), str(r["bucket"]), str(r["metric"])): [int(r["n"]), round(float(r["total"]), 3)]
            for r in rows} == {k: v for k, v in expected(want, hps).items() if k[2] == "opened"}


class CountingTx:
    """A Tx over one SQLite connection that counts the virtual-machine instructions its statements run: the work a
    query does, whatever the machine's load."""

    dialect = "sqlite"
    for_update = ""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn
        self.steps = 0
        conn.set_progress_handler(self._tick, 100)

    def _tick(self) -> int:
        self.steps += 100
        return 0  # go on

    def one(self, sql: str, params: Any = ()) -> Row | None:
        row: Row | None = self._c.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Any = ()) -> list[Row]:
        return list(self._c.execute(sql, params).fetchall())

    def exec(self, sql: str, params: Any = ()) -> int:
        return self._c.execute(sql, params).rowcount

    def script(self, sql: str) -> None:
        self._c.executescript(sql)


def days_of_conversations(per_day: int, first: int) -> Callable[[Tx], None]:
    """Each of 30 customers: PER_DAY conversations a day, two hours apart, for 40 days (ids from FIRST)."""

    def write(tx: Tx) -> None:
        conv = first
        for day in range(40):
            for customer in range(1, 31):
                for k in range(per_day):
                    t = datetime(2026, 2, 2, 6 + 2 * k, customer, tzinfo=UTC) + timedelta(days=day)
                    record(tx, "opened", conv, at(t), customer_id=customer, channel="sms", queue="support")
                    record(tx, "assigned", conv, at(t, seconds=20), channel="sms", queue="support", agent_id=8,
                           seconds=20.0)
                    record(tx, "message_out", conv, at(t, minutes=3), channel="sms", queue="support", agent_id=8)
                    record(tx, "resolved", conv, at(t, minutes=30), customer_id=customer, channel="sms",
                           queue="support", agent_id=8)
                    conv += 1

    return write


def series_cost(url: str, ps: list[query.Piece], sid: int) -> tuple[int, int]:
    """The SQLite instructions of a segment's timeseries (PS: query.series_pieces), and the conversations it counts."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.row_factory = sqlite3.Row
    tx = CountingTx(conn)
    try:
        rows = query.series_rows(tx, ps, "segment", sid)
        return tx.steps, sum(int(r["n"]) for r in rows if r["metric"] == "opened")
    finally:
        conn.close()


async def test_a_segments_year_reads_a_row_per_member_and_day_however_many_conversations(tmp_path: Path) -> None:
    """A year's timeseries by day of a segment, at N conversations and at 4N (three more a day per customer, in
    other hours of the same days): the SQLite instructions it runs grow far less than the history (they are bounded
    by members x days); kept by hour and metric, they grew with every conversation."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = open_database(url)
    await migrate(db)
    await db.write(days_of_conversations(1, 1))
    await catch_up(db, RULES)
    sid = await db.write(lambda tx: save_segment(tx, {"contacts": {"min": 1}}))
    lo, hi = datetime(2025, 12, 1, tzinfo=BERLIN), datetime(2026, 12, 1, tzinfo=BERLIN)
    ps, hourly = query.series_pieces(lo, hi, BERLIN, "day")
    assert not hourly

    steps, opened = series_cost(url, ps, sid)
    assert opened == 30 * 40
    await db.write(days_of_conversations(3, 30 * 40 + 1))
    await catch_up(db, RULES)
    steps_4n, opened_4n = series_cost(url, ps, sid)
    assert opened_4n == 4 * opened
    await db.close()
    assert steps_4n < 1.5 * steps, f"{steps} VM steps at N, {steps_4n} at 4N"


def members_rows(tx: Tx, members: set[int], ps: list[query.Piece]) -> dict[tuple[str, str, str], list[float]]:
    """(grain, bucket, metric) -> [n, total] of MEMBERS' own report_customer_rollups rows over PS: what a report by
    a segment of exactly these customers must say, summed without report_segment_rollups."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for p in ps:
        for r in tx.all("SELECT * FROM report_customer_rollups WHERE grain = ? AND bucket >= ? AND bucket < ?",
                        (p.grain, p.lo, p.hi)):
            if int(r["customer_id"]) not in members:
                continue
            for m in CUSTOMER_METRICS:
                if r[f"n_{m}"]:
                    row = out.setdefault((str(r["grain"]), str(r["bucket"]), m), [0, 0.0])
                    row[0] += int(r[f"n_{m}"])
                    row[1] += float(r[f"t_{m}"]) if m in CUSTOMER_TIMED else 0.0
    return {k: [n, round(t, 3)] for k, (n, t) in out.items()}


def listed(tx: Tx, sid: str) -> set[int]:
    """The customers the segment lists now (its customers' pages)."""
    seg = segment_store.get(tx, int(sid))
    return {int(c["customer_id"]) for c in segment_store.customers(tx, seg.criteria, 0, 10**6)[0]}


def kept(tx: Tx, sid: str) -> dict[tuple[str, str], tuple[float, ...]]:
    """The segment's own rows (nonzero), rounded: what the roller keeps for it."""
    rows = tx.all("SELECT * FROM report_segment_rollups WHERE segment_id = ?", (int(sid),))
    out = {(str(r["grain"]), str(r["bucket"])): tuple(round(float(r[c]), 3) for c in CUSTOMER_COLUMNS) for r in rows}
    return {k: v for k, v in out.items() if any(v)}


def kept_members_sum(tx: Tx, sid: str) -> dict[tuple[str, str], tuple[float, ...]]:
    """The sum of the rows of the customers kept in the segment (report_segment_members)."""
    sums = ", ".join(f"SUM(r.{c}) AS {c}" for c in CUSTOMER_COLUMNS)
    rows = tx.all(f"SELECT r.grain, r.bucket, {sums} FROM report_customer_rollups r JOIN report_segment_members m "
                  "ON m.customer_id = r.customer_id WHERE m.segment_id = ? GROUP BY r.grain, r.bucket", (int(sid),))
    out = {(str(r["grain"]), str(r["bucket"])): tuple(round(float(r[c]), 3) for c in CUSTOMER_COLUMNS) for r in rows}
    return {k: v for k, v in out.items() if any(v)}


async def test_a_segments_own_rollup_counts_its_members_now_through_joins_leaves_merges_and_rebuilds(
        db: Database) -> None:
    """The roller keeps each segment's rows (report_segment_rollups) as the sum of the members it last saw; a report
    by the segment equals the rows of exactly the customers it lists now, whether or not the roller has looked since
    customers joined, left or were merged; and a rebuild keeps what the incremental roller kept."""
    rng = random.Random(5)
    now = format_time(utcnow())
    await db.write(lambda tx: [tx.exec("INSERT INTO customers (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                                       (c, f"Customer {c}", now, now)) for c in range(1, 25)])
    await db.write(lambda tx: conversations(tx, rng, datetime(2026, 1, 20, 6, tzinfo=UTC), 60, 24))
    await catch_up(db, RULES)
    many = await db.write(lambda tx: save_segment(tx, {"contacts": {"min": 4}}))
    few = await db.write(lambda tx: save_segment(tx, {"contacts": {"max": 3}}))
    lo, hi = datetime(2026, 1, 1, 5, tzinfo=UTC), datetime(2026, 12, 10, 17, tzinfo=UTC)
    gps, hourly = query.series_pieces(lo, hi, BERLIN, "day")
    hps = query.pieces(lo, hi, BERLIN, hourly_only=True)
    assert not hourly and {p.grain for p in gps} == {"hour", "day"}

    async def check(moved: bool) -> None:
        """Every report of both segments is exactly their listed members' rows; what is kept is the kept members'
        sum; MOVED: some customers joined or left since the roller's last look (so the report corrected)."""
        for sid in (many, few):
            members = await db.read(lambda tx, s=sid: listed(tx, s))  # type: ignore[misc]
            assert members, sid
            for ps in (gps, hps):
                got = await db.read(lambda tx, s=sid, ps=ps: query.series_rows(tx, ps, "segment", s))  # type: ignore[misc]
                want = await db.read(lambda tx, m=members, ps=ps: members_rows(tx, m, ps))  # type: ignore[misc]
                assert {(str(r["grain"]), str(r["bucket"]), str(r["metric"])):
                        [int(r["n"]), round(float(r["total"]), 3)] for r in got} == want
            total = await db.read(lambda tx, s=sid: query.sums(tx, gps, "segment", s)[s])  # type: ignore[misc]
            assert int(total["opened"][0]) == sum(n for (_g, _b, m), (n, _t) in want.items() if m == "opened") > 0
            assert await db.read(lambda tx, s=sid: kept(tx, s)) == await db.read(  # type: ignore[misc]
                lambda tx, s=sid: kept_members_sum(tx, s))  # type: ignore[misc]
        cut = await db.read(cuts)
        diffs = [await db.read(lambda tx, s=sid: differences(tx, segment_store.get(tx, int(s)).criteria,  # type: ignore[misc]
                                                             int(s), cut)) for sid in (many, few)]
        assert any(j or g for j, g in diffs) == moved

    await check(moved=True)  # never looked: every member is a correction
    assert await segment_rollups.refresh(db, await db.read(cuts)) > 0
    await check(moved=False)
    # More conversations: customers cross from "few" to "many" between two looks.
    await db.write(lambda tx: conversations(tx, rng, datetime(2026, 4, 2, 6, tzinfo=UTC), 40, 24, first=61))
    await catch_up(db, RULES)
    await check(moved=True)
    await segment_rollups.refresh(db, await db.read(cuts))
    await check(moved=False)
    # A merge: a customer of "few" into one of "many"; the survivor's rows grow, the merged one's are gone.
    into = min(await db.read(lambda tx: listed(tx, many)))
    gone = min(await db.read(lambda tx: listed(tx, few)))
    await db.write(lambda tx: merge_customers(tx, into, gone, format_time(utcnow())))
    await check(moved=False)  # nobody left "many"; "few" was told at once
    await db.write(lambda tx: conversations(tx, rng, datetime(2026, 6, 2, 6, tzinfo=UTC), 10, 24, first=101))
    await catch_up(db, RULES)
    await segment_rollups.refresh(db, await db.read(cuts))
    await check(moved=False)
    before = {sid: await db.read(lambda tx, s=sid: kept(tx, s)) for sid in (many, few)}  # type: ignore[misc]
    await rebuild(db, RULES)
    assert {sid: await db.read(lambda tx, s=sid: kept(tx, s)) for sid in (many, few)} == before  # type: ignore[misc]
    await check(moved=False)


def customers_every_day(customers: range, first: int) -> Callable[[Tx], None]:
    """Each of CUSTOMERS: one conversation a day for 40 days (ids from FIRST)."""

    def write(tx: Tx) -> None:
        conv = first
        for day in range(40):
            for customer in customers:
                t = datetime(2026, 2, 2, 6, customer % 60, tzinfo=UTC) + timedelta(days=day)
                record(tx, "opened", conv, at(t), customer_id=customer, channel="sms", queue="support")
                record(tx, "message_out", conv, at(t, minutes=3), channel="sms", queue="support", agent_id=8)
                record(tx, "resolved", conv, at(t, minutes=30), customer_id=customer, channel="sms",
                       queue="support", agent_id=8)
                conv += 1

    return write


async def test_a_segments_year_costs_the_same_with_four_times_the_members(tmp_path: Path) -> None:
    """A year's timeseries by day of a segment, with N members and with 4N (each writing every day of the same 40
    days): once the roller has looked, the SQLite instructions it runs barely grow (its rows are the segment's, a
    row per day, whatever the members; evaluating who is a member is one pass over customer_stats). Read member by
    member, they grew with every member-day (and do, before the roller's first look)."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = open_database(url)
    await migrate(db)
    await db.write(customers_every_day(range(1, 31), 1))
    await catch_up(db, RULES)
    sid = await db.write(lambda tx: save_segment(tx, {"contacts": {"min": 1}}))
    lo, hi = datetime(2025, 12, 1, tzinfo=BERLIN), datetime(2026, 12, 1, tzinfo=BERLIN)
    ps, hourly = query.series_pieces(lo, hi, BERLIN, "day")
    assert not hourly

    unlooked, _ = series_cost(url, ps, sid)
    await segment_rollups.refresh(db, await db.read(cuts))
    steps, opened = series_cost(url, ps, sid)
    assert opened == 30 * 40
    await db.write(customers_every_day(range(31, 121), 30 * 40 + 1))
    await catch_up(db, RULES)
    unlooked_4n, _ = series_cost(url, ps, sid)
    await segment_rollups.refresh(db, await db.read(cuts))
    steps_4n, opened_4n = series_cost(url, ps, sid)
    assert opened_4n == 4 * opened
    await db.close()
    print(f"VM steps: {unlooked} / {unlooked_4n} before the roller's look, {steps} / {steps_4n} after (N / 4N)")
    assert unlooked_4n > 3 * unlooked  # member by member: it grows with the members (the test can fail)
    assert steps_4n < 1.5 * steps, f"{steps} VM steps at N members, {steps_4n} at 4N"
