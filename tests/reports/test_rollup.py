"""The figures' definitions on a known history of conversation events, on SQLite and PostgreSQL: every clock starts
and stops where docs/reports.md says, the range cut into months, days and hours adds up, and rebuilding from the
events gives exactly the rollups the incremental roller kept, whatever its batch size."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from hub.automation import hours as business_hours
from hub.automation.hours import BusinessHours
from hub.config import Settings
from hub.history.db import Database, Tx, open_database
from hub.history.schema import migrate
from hub.model import format_time, utcnow
from hub.reports import query, rollup
from hub.reports.events import record, record_reply
from hub.reports.hours import business_seconds
from hub.reports.rollup import SLICE_ROWS, RollRules, catch_up, rebuild, roll
from hub.reports.schema import CUSTOMER_METRICS, CUSTOMER_TIMED
from tests.counting import CountingTx

RULES = RollRules(time_zone="Europe/Berlin", business_hours=("mon-fri 09:00-17:00",),
                  repeat_window=timedelta(days=7), sla_wait={"support": 60.0, "sales": 30.0},
                  first_response={"support": 300.0})
BERLIN = ZoneInfo("Europe/Berlin")
MON = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Berlin


def at(t: datetime, **later: float) -> str:
    return (t + timedelta(**later)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def history(tx: Tx) -> None:
    """Three conversations: a worked one, the same customer again two days later (abandoned), a Saturday night one."""
    r = record
    r(tx, "opened", 1, at(MON), customer_id=1, channel="sms", queue="support")
    r(tx, "offered", 1, at(MON, seconds=30), channel="sms", queue="support", agent_id=7)
    r(tx, "rejected", 1, at(MON, seconds=40), queue="support", agent_id=7)
    r(tx, "offered", 1, at(MON, seconds=50), channel="sms", queue="support", agent_id=8)
    r(tx, "assigned", 1, at(MON, seconds=60), channel="sms", queue="support", agent_id=8, seconds=60.0)
    r(tx, "message_out", 1, at(MON, minutes=3), channel="sms", queue="support", agent_id=8)  # first response 180s
    r(tx, "message_out", 1, at(MON, minutes=4), channel="sms", queue="support")  # automatic: answers nobody
    r(tx, "message_in", 1, at(MON, minutes=5), channel="email", queue="support")
    r(tx, "message_in", 1, at(MON, minutes=6), channel="email", queue="support")
    r(tx, "message_out", 1, at(MON, minutes=7), channel="email", queue="support", agent_id=8)  # reply 120s
    r(tx, "transferred", 1, at(MON, minutes=8), queue="sales", agent_id=8)
    r(tx, "offered", 1, at(MON, minutes=8), channel="sms", queue="sales", agent_id=9)
    r(tx, "offer_timed_out", 1, at(MON, minutes=9), queue="sales", agent_id=9)
    r(tx, "assigned", 1, at(MON, minutes=10), channel="sms", queue="sales", agent_id=9, seconds=120.0)
    r(tx, "resolved", 1, at(MON, hours=1), customer_id=1, channel="sms", queue="sales", agent_id=9)
    wed = MON + timedelta(days=2)
    r(tx, "opened", 2, at(wed), customer_id=1, channel="voice", queue="support")
    r(tx, "abandoned", 2, at(wed, seconds=45), queue="support")
    sat_night = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)  # 03:00 on a Saturday in Berlin
    r(tx, "opened", 3, at(sat_night), customer_id=2, channel="webchat", queue="support")
    r(tx, "assigned", 3, at(sat_night, seconds=20), channel="webchat", queue="support", agent_id=8, seconds=20.0)
    r(tx, "message_out", 3, at(sat_night, minutes=10), channel="webchat", queue="support", agent_id=8)  # 600s


async def figures(db: Database, lo: datetime, hi: datetime, dim: str = "all", value: str = "") -> dict[str, Any]:
    def read(tx: Tx) -> dict[str, Any]:
        return query.figures(query.sums(tx, query.pieces(lo, hi, BERLIN), dim, value).get(value, {}))

    return await db.read(read)


async def rollups(db: Database) -> list[tuple[Any, ...]]:
    rows = await db.read(lambda tx: tx.all(
        "SELECT grain, dim, value, metric, bucket, n, total FROM report_rollups ORDER BY grain, dim, value, metric, "
        "bucket"))
    return [tuple(r[k] for k in ("grain", "dim", "value", "metric", "bucket", "n", "total")) for r in rows]


async def test_every_clock_starts_and_stops_where_the_docs_say(db: Database) -> None:
    await db.write(history)
    assert await catch_up(db, RULES) == 20
    f = await figures(db, MON - timedelta(days=1), MON + timedelta(days=7))
    assert f["conversations_opened"] == 3 and f["conversations_resolved"] == 1
    assert f["messages_in"] == 5 and f["messages_out"] == 4
    assert f["first_response_time"] == (180 + 600) / 2
    assert f["first_response_attainment"] == 0.5  # 180s within support's 300s target; 600s not
    assert f["reply_time"] == (180 + 120 + 600) / 3
    assert f["resolution_time"] == 3600
    # In business hours the Saturday night's clock never ran; Monday 10:00-11:00 Berlin is all inside them.
    assert f["first_response_time_business"] == (180 + 0) / 2 and f["resolution_time_business"] == 3600
    assert f["reply_time_business"] == (180 + 120 + 0) / 3
    # Waiting in queue is counted once per conversation: the first time an agent takes it.
    assert f["answered"] == 2 and f["wait_time"] == 40 and f["sla_attainment"] == 1.0
    assert f["abandoned"] == 1 and f["abandon_wait_time"] == 45 and f["abandon_rate"] == round(1 / 3, 4)
    assert f["transfers"] == 1
    assert (f["offers"], f["offers_accepted"], f["offers_rejected"], f["offers_timed_out"]) == (3, 3, 1, 1)
    assert f["after_hours"] == 1  # Saturday 03:00 in Berlin
    assert f["repeat_contacts"] == 1 and f["first_contact_resolution"] == round(1 - 1 / 3, 4)

    by_agent = {v: query.figures(s) for v, s in (await db.read(
        lambda tx: query.sums(tx, query.pieces(MON - timedelta(days=1), MON + timedelta(days=7), BERLIN),
                              "agent", None))).items()}
    assert by_agent["8"]["first_response_time"] == (180 + 600) / 2 and by_agent["8"]["transfers"] == 1
    assert by_agent["9"]["conversations_resolved"] == 1 and by_agent["7"]["offers_rejected"] == 1
    email = await figures(db, MON - timedelta(days=1), MON + timedelta(days=7), "channel", "email")
    assert email["messages_in"] == 2 and email["reply_time"] == 120 and email["conversations_opened"] == 0
    sales = await figures(db, MON - timedelta(days=1), MON + timedelta(days=7), "queue", "sales")
    assert sales["conversations_resolved"] == 1 and sales["offers_timed_out"] == 1

    # Only the Monday: the hour from 10:00 Berlin holds conversation 1 up to its reply; the Wednesday is outside.
    monday = await figures(db, MON, MON + timedelta(hours=1))
    assert monday["conversations_opened"] == 1 and monday["first_response_time"] == 180
    assert monday["conversations_resolved"] == 0  # resolved at 11:00, the next hour


async def test_a_range_cut_into_months_days_and_hours_adds_up(db: Database) -> None:
    def year(tx: Tx) -> None:
        t = datetime(2025, 1, 1, tzinfo=UTC)
        for i in range(400):  # one conversation every 22 hours across more than a year
            record(tx, "opened", i + 1, at(t, hours=22 * i), customer_id=i + 1, channel="sms", queue="support")

    await db.write(year)
    await catch_up(db, RULES)
    lo, hi = datetime(2025, 1, 10, 7, tzinfo=UTC), datetime(2025, 11, 3, 15, tzinfo=UTC)
    ps = query.pieces(lo, hi, BERLIN)
    assert {p.grain for p in ps} == {"hour", "day", "month"}
    expected = sum(1 for i in range(400) if lo <= datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=22 * i) < hi)
    assert (await figures(db, lo, hi))["conversations_opened"] == expected
    hourly = await db.read(lambda tx: query.sums(tx, query.pieces(lo, hi, BERLIN, hourly_only=True), "all", ""))
    assert query.figures(hourly[""])["conversations_opened"] == expected


async def test_rebuild_equals_the_incremental_rollups_whatever_the_batches(db: Database) -> None:
    await db.write(history)
    while await db.write(lambda tx: roll(tx, RULES, cutoff="9999", limit=3)):
        pass  # small batches: a conversation's clocks carry over from one batch to the next
    incremental = await rollups(db)
    assert incremental
    assert await rebuild(db, RULES) == 20
    assert await rollups(db) == incremental


async def test_rebuild_equals_the_incremental_rollups_whatever_the_slices(db: Database) -> None:
    """Slices cut by the rows they write (a few events each here) fold as one batch of everything does."""
    await db.write(history)
    while await db.write(lambda tx: roll(tx, RULES, cutoff="9999", rows=25)):
        pass
    incremental = await rollups(db)
    assert await rebuild(db, RULES) == 20
    assert await rollups(db) == incremental


T = TypeVar("T")


class _CountedWrites:
    """The store, with every write transaction's statements and rows written kept (reads pass through)."""

    def __init__(self, db: Database) -> None:
        self.db, self.dialect, self.url = db, db.dialect, db.url
        self.writes: list[tuple[int, int]] = []

    async def read(self, fn: Callable[[Tx], T]) -> T:
        return await self.db.read(fn)

    async def write(self, fn: Callable[[Tx], T], background: bool = False, order: str = "") -> T:
        def run(tx: Tx) -> T:
            counting = CountingTx(tx)
            out = fn(counting)
            self.writes.append((counting.statements, counting.rows))
            return out

        return await self.db.write(run, background, order)

    async def ping(self) -> bool:
        return await self.db.ping()

    async def close(self) -> None:
        await self.db.close()


def busy_day(tx: Tx, conversations: int = 2000) -> None:
    """Five events a conversation, across channels, queues and agents, over a day and a half."""
    channels, queues = ("sms", "email", "webchat", "voice"), ("support", "sales", "billing")
    for conv in range(1, conversations + 1):
        t, channel, queue, agent = MON + timedelta(seconds=60 * conv), channels[conv % 4], queues[conv % 3], conv % 20
        record(tx, "opened", conv, at(t), customer_id=conv % 700 + 1, channel=channel, queue=queue)
        record(tx, "assigned", conv, at(t, seconds=20), channel=channel, queue=queue, agent_id=agent, seconds=20.0)
        record(tx, "message_out", conv, at(t, minutes=2), channel=channel, queue=queue, agent_id=agent)
        record(tx, "message_in", conv, at(t, minutes=3), channel=channel, queue=queue)
        record(tx, "resolved", conv, at(t, minutes=9), customer_id=conv % 700 + 1, channel=channel, queue=queue,
               agent_id=agent)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_rollers_writes_stay_small_with_ten_thousand_events_pending(db: Database) -> None:
    """Each write holds the one SQLite writer every inbound acknowledgement shares: the roller folds 10,000 pending
    events in slices of about SLICE_ROWS rows written, not in one write of thousands of statements."""
    await db.write(busy_day)
    counted = _CountedWrites(db)
    assert await catch_up(counted, RULES) == 10_000
    assert len(counted.writes) > 10_000 // 500  # sliced (5,000 events a write made 13,600 statements, 16,500 rows)
    assert max(rows for _, rows in counted.writes) <= SLICE_ROWS + 100, counted.writes
    assert max(statements for statements, _ in counted.writes) <= SLICE_ROWS + 100, counted.writes
    f = await figures(db, MON - timedelta(days=1), MON + timedelta(days=3))
    assert f["conversations_opened"] == 2000 and f["conversations_resolved"] == 2000 and f["messages_out"] == 2000
    incremental = await rollups(db)
    assert await rebuild(db, RULES) == 10_000
    assert await rollups(db) == incremental


def test_business_seconds_stop_at_closing_time_and_skip_the_weekend() -> None:
    hours = ("mon-fri 09:00-17:00",)
    friday_4pm = datetime(2026, 3, 6, 16, 0, tzinfo=BERLIN)
    monday_10am = datetime(2026, 3, 9, 10, 0, tzinfo=BERLIN)
    assert business_seconds(friday_4pm, monday_10am, hours, "Europe/Berlin") == 2 * 3600
    assert business_seconds(friday_4pm, monday_10am, (), "Europe/Berlin") == (monday_10am - friday_4pm).seconds + \
        (monday_10am - friday_4pm).days * 86400
    two_spans = ("mon-fri 09:00-12:00", "mon-fri 13:00-17:00")  # a lunch break
    assert business_seconds(datetime(2026, 3, 9, 11, 0, tzinfo=BERLIN), datetime(2026, 3, 9, 14, 0, tzinfo=BERLIN),
                            two_spans, "Europe/Berlin") == 2 * 3600
    assert business_seconds(monday_10am, friday_4pm, hours, "Europe/Berlin") == 0


# The default's hours as stored through /api/v1/business-hours: RULES's hours, and the Monday of history() a holiday.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
STORED = BusinessHours(timezone="Europe/Berlin", weekly={d: ["09:00-17:00"] for d in WEEKDAYS},
                       holidays=[date(2026, 3, 2)])
UNSET = replace(RULES, business_hours=())


async def test_without_configured_hours_the_business_clocks_follow_the_stored_default(db: Database) -> None:
    await db.write(history)
    await db.write(lambda tx: business_hours.save(tx, "default", STORED, at(MON)))
    assert await catch_up(db, UNSET) == 20
    f = await figures(db, MON - timedelta(days=1), MON + timedelta(days=7))
    # The Monday is a holiday: its clocks never ran in business hours, and it opened after hours like Saturday's.
    assert f["first_response_time"] == (180 + 600) / 2 and f["first_response_time_business"] == 0
    assert f["resolution_time"] == 3600 and f["resolution_time_business"] == 0
    assert f["reply_time_business"] == 0 and f["after_hours"] == 2
    incremental = await rollups(db)
    assert await rebuild(db, UNSET) == 20
    assert await rollups(db) == incremental, "a rebuild reads the same stored hours"


async def test_the_configured_hours_win_over_the_stored_ones(db: Database) -> None:
    await db.write(history)
    await db.write(lambda tx: business_hours.save(tx, "default", STORED, at(MON)))
    await catch_up(db, RULES)
    f = await figures(db, MON - timedelta(days=1), MON + timedelta(days=7))
    assert f["first_response_time_business"] == (180 + 0) / 2 and f["after_hours"] == 1


def test_stored_hours_count_open_seconds_across_holidays_and_daylight_saving() -> None:
    friday_4pm = datetime(2026, 3, 6, 16, 0, tzinfo=BERLIN)
    tuesday_10am = datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN)
    assert STORED.open_seconds(friday_4pm, tuesday_10am) == 3600 + 8 * 3600 + 3600  # Friday, Monday, Tuesday
    with_holiday = STORED.model_copy(update={"holidays": [date(2026, 3, 9)]})
    assert with_holiday.open_seconds(friday_4pm, tuesday_10am) == 2 * 3600
    assert STORED.open_seconds(tuesday_10am, friday_4pm) == 0
    # Open all day on the Sunday clocks go forward (29 March 2026 in Berlin): that day has 23 hours.
    around_the_clock = BusinessHours(timezone="Europe/Berlin", weekly={"sun": ["00:00-24:00"]})
    assert around_the_clock.open_seconds(datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)) \
        == 23 * 3600


async def test_work_resolved_from_its_queue_is_not_abandoned(db: Database) -> None:
    def two(tx: Tx) -> None:
        for conv in (1, 2):
            record(tx, "opened", conv, at(MON), customer_id=conv, channel="sms", queue="support")
        # An admin answers and resolves conversation 1 without taking it: routing then lets go of it, unanswered.
        record(tx, "message_out", 1, at(MON, minutes=1), channel="sms", queue="support")
        record(tx, "resolved", 1, at(MON, minutes=2), customer_id=1, channel="sms", queue="support")
        record(tx, "abandoned", 1, at(MON, minutes=2), queue="support")
        record(tx, "abandoned", 2, at(MON, minutes=3), queue="support")  # the customer gave up

    await db.write(two)
    await catch_up(db, RULES)
    f = await figures(db, MON, MON + timedelta(days=1))
    assert f["abandoned"] == 1 and f["abandon_wait_time"] == 180 and f["conversations_resolved"] == 1


async def test_hub_reports_rebuild_recomputes_what_the_roller_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = open_database(url)
    await migrate(db)
    await db.write(history)
    defaults = Settings()  # what `hub reports rebuild` reads with no config file
    await catch_up(db, RollRules.from_settings(defaults.reports, defaults.routing))
    kept = await rollups(db)
    await db.write(lambda tx: tx.exec("UPDATE report_rollups SET n = n + 5"))  # drifted, say by a bug since fixed
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | {"HUB_DATABASE__URL": url}
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "hub.cli", "reports", "rebuild"],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "from 20 conversation events" in out.stdout
    assert await rollups(db) == kept
    await db.close()


async def test_a_roller_killed_between_slices_folds_every_event_once_after_restart(tmp_path: Path) -> None:
    """`hub reports rebuild` killed (SIGKILL) after its first slice: the slices committed stay, the rest is folded by
    the next roller, and nothing is counted twice."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = open_database(url)
    await migrate(db)
    await db.write(lambda tx: busy_day(tx, 200))
    defaults = Settings()
    rules = RollRules.from_settings(defaults.reports, defaults.routing)
    assert await catch_up(db, rules) == 1000
    kept = await rollups(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | {
        "HUB_DATABASE__URL": url, "HUB_FAIL_POINTS": "reports.between_slices:kill"}
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "hub.cli", "reports", "rebuild"],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == -9, out.stderr
    rolled = await db.read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM conversation_events WHERE rolled = 1"))
    assert rolled is not None and 0 < int(rolled["n"]) < 1000  # killed between two slices
    assert await catch_up(db, rules) == 1000 - int(rolled["n"])
    assert await rollups(db) == kept
    await db.close()


async def test_two_hub_processes_rolling_at_once_fold_every_event_once(db: Database, db_url: str) -> None:
    def many(tx: Tx) -> None:
        for conv in range(1, 301):
            t = MON + timedelta(minutes=conv)
            record(tx, "opened", conv, at(t), customer_id=conv, channel="sms", queue="support")
            record(tx, "message_out", conv, at(t, seconds=30), channel="sms", queue="support", agent_id=conv % 7)

    await db.write(many)
    other = open_database(db_url)  # a second hub process's connection to the same store
    try:
        # Both plan the same first batch; the second to write finds it taken and writes nothing.
        from hub.reports import rollup

        mine = await db.read(lambda tx: rollup.plan(tx, RULES, "9999", limit=50))
        theirs = await other.read(lambda tx: rollup.plan(tx, RULES, "9999", limit=50))
        assert mine is not None and theirs is not None
        assert await db.write(lambda tx: rollup.commit(tx, mine)) == 50
        with pytest.raises(rollup._Raced):
            await other.write(lambda tx: rollup.commit(tx, theirs))
        small = [catch_up_in_batches(d) for d in (db, other, db, other)]
        await asyncio.gather(*small)
    finally:
        await other.close()
    together = await rollups(db)
    assert await rebuild(db, RULES) == 600
    assert await rollups(db) == together
    f = await figures(db, MON, MON + timedelta(days=1))
    assert f["conversations_opened"] == 300 and f["first_response_time"] == 30


async def catch_up_in_batches(db: Database) -> None:
    from hub.reports import rollup

    while True:  # small batches so the rollers interleave
        batch = await db.read(lambda tx: rollup.plan(tx, RULES, "9999", limit=50))
        if batch is None:
            return
        try:
            await db.write(lambda tx, b=batch: rollup.commit(tx, b))  # type: ignore[misc]
        except rollup._Raced:
            continue


async def customer_rollups(db: Database) -> list[tuple[Any, ...]]:
    """report_customer_rollups as (customer, grain, bucket, metric, n, total) rows, the metrics a customer had."""
    rows = await db.read(lambda tx: tx.all("SELECT * FROM report_customer_rollups ORDER BY customer_id, grain, bucket"))
    return [(r["customer_id"], r["grain"], r["bucket"], m, r[f"n_{m}"],
             round(float(r[f"t_{m}"]), 3) if m in CUSTOMER_TIMED else 0.0)
            for r in rows for m in CUSTOMER_METRICS if r[f"n_{m}"]]


async def test_each_customers_hours_and_days_add_up_to_the_rollups_and_rebuild_alike(db: Database) -> None:
    """The figures kept by customer (reports by segment) are the same deltas as the rollups': summed over customers
    they give every hour's and every day's figures; a rebuild keeps them whatever the batches."""
    await db.write(history)
    while await db.write(lambda tx: roll(tx, RULES, cutoff="9999", limit=4)):
        pass
    kept = await customer_rollups(db)
    assert {c for c, *_ in kept} == {1, 2} and {g for _, g, *_ in kept} == {"hour", "day"}
    summed: dict[tuple[str, str, str], list[float]] = {}
    for _, grain, bucket, metric, n, total in kept:
        s = summed.setdefault((grain, bucket, metric), [0, 0.0])
        s[0] += n
        s[1] += total
    rolled = await db.read(lambda tx: tx.all("SELECT grain, bucket, metric, n, total FROM report_rollups "
                                             "WHERE grain IN ('hour', 'day') AND dim = 'all'"))
    assert {(str(r["grain"]), str(r["bucket"]), str(r["metric"])): [int(r["n"]), round(float(r["total"]), 3)]
            for r in rolled} == {k: [int(n), round(t, 3)] for k, (n, t) in summed.items()}
    await rebuild(db, RULES)
    assert await customer_rollups(db) == kept


async def test_first_response_attainment_counts_against_the_stored_deadline(db: Database) -> None:
    """A business-hours queue: routing stored each conversation's deadline as it entered, an agent's reply carries it
    (message_out's seconds), and attainment counts the first reply against it, as the live figures do; not against
    the queue's target in calendar time. A reply without one (opened before deadlines were stored) keeps the
    calendar rule."""
    fri_evening = datetime(2026, 3, 6, 15, 55, tzinfo=UTC)  # Friday 16:55 in Berlin: 5 minutes before closing
    monday_due = datetime(2026, 3, 9, 8, 5, tzinfo=UTC)  # 300 s of open time later: Monday 09:05 Berlin
    due = monday_due.timestamp()

    def three(tx: Tx) -> None:
        # Answered Monday 09:01: days after the calendar target, before the business deadline: in time.
        record(tx, "opened", 1, at(fri_evening), customer_id=1, channel="sms", queue="support")
        record(tx, "message_out", 1, at(monday_due, minutes=-4), channel="sms", queue="support", agent_id=8,
               seconds=due)
        # Answered Monday 09:06: a minute after its deadline: late.
        record(tx, "opened", 2, at(fri_evening), customer_id=2, channel="sms", queue="support")
        record(tx, "message_out", 2, at(monday_due, minutes=1), channel="sms", queue="support", agent_id=8,
               seconds=due)
        # No deadline stored: the queue's 300 s target in calendar time (answered in 4 minutes: in time).
        record(tx, "opened", 3, at(fri_evening), customer_id=3, channel="sms", queue="support")
        record(tx, "message_out", 3, at(fri_evening, minutes=4), channel="sms", queue="support", agent_id=8)

    await db.write(three)
    await catch_up(db, RULES)
    f = await figures(db, fri_evening - timedelta(days=1), monday_due + timedelta(days=1))
    assert f["first_response_attainment"] == 0.6667  # 2 of 3 (rounded)


async def test_an_agents_reply_records_the_stored_deadline(db: Database) -> None:
    """The reply's event reads the deadline from the conversation in the same statement; an automatic message
    (no agent) answers nobody and carries none."""
    def write(tx: Tx) -> None:
        tx.exec("INSERT INTO customers (name, created_at, updated_at) VALUES ('Ann', ?, ?)", (at(MON), at(MON)))
        tx.exec("INSERT INTO conversations (customer_id, status, channel, queue, created_at, updated_at, respond_by) "
                "VALUES (1, 'open', 'sms', 'support', ?, ?, 1234.5)", (at(MON), at(MON)))
        record_reply(tx, 1, at(MON), customer_id=1, channel="sms", queue="support", agent_id=None)
        tx.exec("INSERT INTO agents (name, email, password_hash, role, created_at) VALUES ('Bo', 'bo@x.org', '', "
                "'agent', ?)", (at(MON),))
        record_reply(tx, 1, at(MON), customer_id=1, channel="sms", queue="support", agent_id=1)

    await db.write(write)
    rows = await db.read(lambda tx: tx.all("SELECT type, agent_id, seconds FROM conversation_events ORDER BY id"))
    assert [(r["type"], r["agent_id"], r["seconds"]) for r in rows] == [
        ("message_out", None, None), ("message_out", 1, 1234.5)]


class _RecordingTx(CountingTx):
    """A counting transaction that also keeps each write's table and the rows it wrote."""

    def __init__(self, tx: Tx) -> None:
        super().__init__(tx)
        self.written: list[tuple[str, int]] = []

    def exec(self, sql: str, params: Any = ()) -> int:
        n = super().exec(sql, params)
        words = sql.split()
        self.written.append((words[2] if words[:2] == ["INSERT", "INTO"] else words[0], n))
        return n


def live_second(tx: Tx) -> None:
    """What the inbound benchmark leaves the roller: 2,000 customer messages of 1,000 customers, each opening a
    conversation and then joining it again."""
    for i in range(2000):
        customer = i % 1000 + 1
        record(tx, "opened" if i < 1000 else "message_in", customer, at(MON, seconds=i * 0.01),
               customer_id=customer, channel="api", queue="default")


async def test_a_slice_reads_and_writes_in_statements_of_many_rows(db: Database) -> None:
    """The roller's cost went into a statement per row (each customer's hour and day, each clock, each survivor and
    each last resolve looked up): a slice now reads what its events need a few queries per LOOKUP events, writes each
    table in statements of many rows, and leaves alone the clocks its events did not move."""
    await db.write(live_second)
    reads: list[int] = []

    def planned(tx: Tx) -> rollup._Batch | None:
        counting = CountingTx(tx)
        batch = rollup.plan(counting, RULES, "9999")
        reads.append(counting.statements)
        return batch

    first = await db.read(planned)
    assert first is not None and len(first.ids) > rollup.LOOKUP
    # events, clocks, labels, texts and last resolves: at most five queries for each LOOKUP events read (before:
    # one more for each conversation opened, 80 here)
    pages = 1 + -(-(len(first.ids) - rollup.FIRST_PAGE) // rollup.LOOKUP)  # FIRST_PAGE, then LOOKUP at a time
    assert reads[0] <= 5 * pages, (reads, len(first.ids))

    writes: list[_RecordingTx] = []

    def commit(tx: Tx, batch: rollup._Batch) -> int:
        recording = _RecordingTx(tx)
        writes.append(recording)
        return rollup.commit(recording, batch)

    done = 0
    while (batch := await db.read(lambda tx: rollup.plan(tx, RULES, "9999"))) is not None:
        done += await db.write(lambda tx, b=batch: commit(tx, b))  # type: ignore[misc]
    assert done == 2000 and len(writes) > 10
    # A write of a slice of 100-200 events: before, about 600 statements.
    assert max(w.statements for w in writes) <= 20, [w.statements for w in writes]
    # A message joining a conversation that already waits for a reply moves no clock: only the 1,000 opened are
    # written (before: a clock written for every event).
    assert sum(n for w in writes for table, n in w.written if table == "report_conversations") == 1000
    f = await figures(db, MON - timedelta(days=1), MON + timedelta(days=1))
    assert f["conversations_opened"] == 1000 and f["messages_in"] == 2000
    incremental, customers = await rollups(db), await customer_rollups(db)
    assert await rebuild(db, RULES) == 2000
    assert await rollups(db) == incremental and await customer_rollups(db) == customers


async def test_customers_merged_into_one_add_up_in_one_slice_as_event_by_event(db: Database) -> None:
    """Two customers merged into a third, all three with figures of the same hour in one slice: their rows go to the
    survivor's one statement after another (PostgreSQL updates a row once per statement), adding up to what folding
    one event at a time gives, for their hours and days, contacts, channels and satisfaction answers."""
    def merged(tx: Tx) -> None:
        for i in (1, 2, 3):
            tx.exec("INSERT INTO customers (id, name, created_at, updated_at) VALUES (?, '', 'x', 'x')", (i,))
        tx.exec("UPDATE customers SET merged_into = 1 WHERE id IN (2, 3)")
        for conv, customer, waited, score in ((1, 2, 12.5, 5.0), (2, 3, 7.25, 2.0), (3, 1, 0.5, 4.0)):
            t = MON + timedelta(minutes=conv)
            record(tx, "opened", conv, at(t), customer_id=customer, channel=("sms", "email", "sms")[conv - 1],
                   queue="support")
            record(tx, "assigned", conv, at(t, seconds=30), channel="sms", queue="support", agent_id=8,
                   seconds=waited)
            record(tx, "message_out", conv, at(t, seconds=45.5), channel="sms", queue="support", agent_id=8)
            record(tx, "csat", conv, at(t, minutes=30), customer_id=customer, channel="sms", queue="support",
                   agent_id=8, seconds=score)

    def kept(tx: Tx) -> list[tuple[Any, ...]]:
        rows = [tuple(r[k] for k in r.keys()) for r in tx.all(
            "SELECT * FROM report_customer_rollups ORDER BY customer_id, grain, bucket")]
        stats = tx.all("SELECT customer_id, contacts, last_contact_at, csat_answers, csat_total FROM customer_stats "
                       "ORDER BY customer_id")
        channels = tx.all("SELECT customer_id, channel FROM customer_channels ORDER BY customer_id, channel")
        return [*rows, *(tuple(r[k] for k in r.keys()) for r in [*stats, *channels])]

    await db.write(merged)
    while await db.write(lambda tx: roll(tx, RULES, cutoff="9999", rows=1)):
        pass  # one event a slice
    one_by_one = await db.read(kept)
    assert await rebuild(db, RULES) == 12  # one slice
    assert await db.read(kept) == one_by_one
    survivor = [r for r in await customer_rollups(db) if r[0] == 1 and r[1] == "hour"]
    assert ("wait", 3, 20.25) in [(m, n, t) for *_, m, n, t in survivor]
    stats = await db.read(lambda tx: tx.one("SELECT contacts, csat_answers, csat_total FROM customer_stats "
                                            "WHERE customer_id = 1"))
    assert stats is not None and (stats["contacts"], stats["csat_answers"], stats["csat_total"]) == (3, 3, 11.0)


class _Traffic(_CountedWrites):
    """The store, with a customer's message recorded (now) after each of the first NEWCOMERS writes."""

    def __init__(self, db: Database, newcomers: int) -> None:
        super().__init__(db)
        self.newcomers = newcomers

    async def write(self, fn: Callable[[Tx], T], background: bool = False, order: str = "") -> T:
        out = await super().write(fn, background, order)
        if self.newcomers > 0:
            self.newcomers -= 1
            await self.db.write(lambda tx: record(tx, "message_in", 1, format_time(utcnow()), customer_id=2,
                                                  channel="sms", queue="support"))
        return out


async def test_a_round_folds_the_events_settled_when_it_starts(db: Database) -> None:
    """Under steady traffic a round does not chase the events recorded while it folds (before, each was folded in a
    slice of a few events, paying a slice's reads and write: 47-61 events a slice live): they are the next round's."""
    await db.write(lambda tx: busy_day(tx, 200))
    traffic = _Traffic(db, newcomers=5)
    assert await catch_up(traffic, RULES) == 1000
    assert len(traffic.writes) > 5 and traffic.newcomers == 0
    assert await catch_up(db, RULES, cutoff="9999") == 5  # (PostgreSQL would wait for them to settle, 2 s)
