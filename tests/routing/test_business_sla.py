"""First-response targets counted in business hours, through the real app on SQLite and PostgreSQL, memory and
Redis routing: the deadline is computed once as a conversation enters its queue, stored on it, kept by a rebuilt
routing state after the hours changed, and breached at that deadline, not at arrival plus the target."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import sync_queues
from hub.app import build_app
from hub.automation import hours as business_hours
from hub.config import Settings
from hub.history import db as history_db
from hub.history.db import Database, Tx
from hub.keys import DB, INGEST, ROUTER
from hub.model import Identity, Inbound, format_time, utcnow
from tests.routing.conftest import FakeClock
from tests.routing.test_service import agent, get, inbound, post
from tests.waiting import eventually

Client = TestClient[Any, Any]
WEEK = {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
# Friday 18 December 2026, 17:55 in New York (EST, UTC-5); Monday 21st is made a holiday.
FRIDAY_1755 = datetime(2026, 12, 18, 22, 55, tzinfo=UTC).timestamp()
SATURDAY_1000 = datetime(2026, 12, 19, 15, 0, tzinfo=UTC).timestamp()
# 30 minutes of open time: 5 on Friday, 25 on Tuesday (Monday is the holiday) -> Tuesday 09:25; from Saturday, 09:30.
TUESDAY_0925 = datetime(2026, 12, 22, 14, 25, tzinfo=UTC).timestamp()
TUESDAY_0930 = datetime(2026, 12, 22, 14, 30, tzinfo=UTC).timestamp()


def _settings(make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str) -> Settings:
    queues = {"support": {"title": "Support", "offer_timeout": 300, "first_response": 1800,
                          "first_response_hours": "business"}}
    return make_settings(db_url, HUB_ROUTING__QUEUES=json.dumps(queues), HUB_ROUTING__BACKEND=backend,
                         HUB_ROUTING__KEY_PREFIX=prefix, HUB_ROUTING__TICK_SECONDS="0.05",
                         HUB_ROUTING__RECONCILE_SECONDS="1e9")  # passes: the test's own (the clock jumps weeks)


def _fake_clock(client: Client, now: float) -> FakeClock:
    clock = FakeClock(now)
    router = client.app[ROUTER]
    router.clock = router.engine.clock = clock  # the background ticker reads it too: time moves only when told
    return clock


async def _stored(client: Client, conv: int) -> float | None:
    row = await client.app[DB].read(lambda tx: tx.one("SELECT respond_by FROM conversations WHERE id = ?", (conv,)))
    return None if row is None or row["respond_by"] is None else float(row["respond_by"])


async def _decisions(client: Client, conv: int, kind: str) -> list[Any]:
    return await client.app[DB].read(lambda tx: tx.all(
        "SELECT within FROM routing_decisions WHERE conversation_id = ? AND type = ?", (conv, kind)))


async def _breached(client: Client, conv: int) -> bool:
    return bool(await _decisions(client, conv, "routing.sla_breached"))


async def test_business_deadline_is_stored_kept_after_the_hours_change_and_breached_on_time(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(make_settings, db_url, backend, prefix)
    first: Client = await aiohttp_client(build_app(settings))
    from hub.api.auth import create_token

    admin = {"Authorization": f"Bearer {await create_token(first.app[DB], 'admin')}"}
    resp = await first.put("/api/v1/business-hours/support", headers=admin, json={
        "timezone": "America/New_York", "weekly": WEEK, "holidays": ["2026-12-21"]})
    assert resp.status == 200, await resp.text()
    clock = _fake_clock(first, FRIDAY_1755)
    friday = (await inbound(first, admin, "webchat:v-fri", "my order is missing"))["conversation"]["id"]
    assert await _stored(first, friday) == TUESDAY_0925
    # Cut between the two writes: the inbound transaction stored the conversation with its deadline, routing never
    # queued it.
    clock.now = SATURDAY_1000
    monkeypatch.setenv("HUB_FAIL_POINTS", "enqueue.before_state:raise")
    saturday = (await inbound(first, admin, "webchat:v-sat", "hello?"))["conversation"]["id"]
    monkeypatch.delenv("HUB_FAIL_POINTS")
    assert await _stored(first, saturday) == TUESDAY_0930
    assert await first.app[ROUTER].state.conversation(saturday) is None

    # Friday 18:25: arrival plus the target in calendar time has passed; the business deadline has not.
    clock.now = FRIDAY_1755 + 1801
    await asyncio.sleep(0.3)  # several ticks
    assert not await _breached(first, friday)

    # The hours change (open every day, all day), then the routing state is rebuilt from the store: a new process,
    # and Redis wiped. Each conversation keeps the deadline it got when it entered the queue.
    resp = await first.put("/api/v1/business-hours/support", headers=admin, json={
        "timezone": "UTC", "weekly": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}})
    assert resp.status == 200, await resp.text()
    state = first.app[ROUTER].state
    if backend == "redis":
        await state.clear()  # type: ignore[attr-defined]
    await first.close()
    second: Client = await aiohttp_client(build_app(settings))
    router = second.app[ROUTER]

    async def rebuilt() -> bool:
        await router.reconciler.run()
        return all([await router.state.conversation(c) is not None for c in (friday, saturday)])

    await eventually(rebuilt, what="both conversations back in routing")
    assert (await _stored(second, friday), await _stored(second, saturday)) == (TUESDAY_0925, TUESDAY_0930)
    clock = _fake_clock(second, TUESDAY_0925 - 1)
    await asyncio.sleep(0.3)
    assert not await _breached(second, friday)
    clock.now = TUESDAY_0925 + 1  # the breach tick fires at the stored business deadline
    await eventually(lambda: _breached(second, friday), what="the Friday conversation breached at Tuesday 09:25")
    assert not await _breached(second, saturday)
    clock.now = TUESDAY_0930 + 1
    await eventually(lambda: _breached(second, saturday), what="the Saturday conversation breached at 09:30")

    # A late reply is recorded as late, and the breach stays counted once.
    _ann, ann_h = await agent(second, "Ann", ["support"])
    await post(second, f"/api/v1/conversations/{friday}/messages", ann_h, {"text": "Sorry for the wait"},
               expect=201)
    replied = await eventually(lambda: _decisions(second, friday, "routing.first_response"))
    assert [r["within"] for r in replied] == [0]
    assert len(await _decisions(second, friday, "routing.sla_breached")) == 1
    # The console marks it late from the stored deadline.
    items = (await get(second, "/api/v1/inbox", admin))["items"]
    due = {i["conversation"]["id"]: i["first_reply_due"] for i in items}
    assert due[saturday] == TUESDAY_0930 and due[friday] is None  # answered: no longer due


async def test_calendar_queues_keep_arrival_plus_target(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str,
) -> None:
    """The default (routing.first_response_hours = "calendar"): business hours set for the queue do not count."""
    settings = _settings(make_settings, db_url, backend, prefix)
    settings.routing.queues["support"].first_response_hours = "calendar"
    client: Client = await aiohttp_client(build_app(settings))
    from hub.api.auth import create_token

    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    resp = await client.put("/api/v1/business-hours/support", headers=admin, json={
        "timezone": "America/New_York", "weekly": WEEK})
    assert resp.status == 200, await resp.text()
    clock = _fake_clock(client, FRIDAY_1755)
    conv = (await inbound(client, admin, "webchat:v-cal", "hi"))["conversation"]["id"]
    assert await _stored(client, conv) == FRIDAY_1755 + 1800
    clock.now = FRIDAY_1755 + 1801
    await eventually(lambda: _breached(client, conv), what="breached 30 minutes after arrival")
    queues = (await get(client, "/api/v1/queues", admin))["items"]
    assert queues[0]["first_response_hours"] == "calendar"


async def test_a_reopened_conversation_gets_a_new_deadline(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str,
) -> None:
    """A customer's message reopening a resolved conversation starts a new first-response clock: its deadline is
    computed again from then, not the one stored when it first entered the queue."""
    settings = _settings(make_settings, db_url, backend, prefix)
    settings.conversations.reopen_window_seconds = 3600.0
    client: Client = await aiohttp_client(build_app(settings))
    from hub.api.auth import create_token

    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    resp = await client.put("/api/v1/business-hours/support", headers=admin, json={
        "timezone": "America/New_York", "weekly": WEEK, "holidays": ["2026-12-21"]})
    assert resp.status == 200, await resp.text()
    clock = _fake_clock(client, FRIDAY_1755)
    conv = (await inbound(client, admin, "webchat:v-again", "my order is missing"))["conversation"]["id"]
    assert await _stored(client, conv) == TUESDAY_0925
    await post(client, f"/api/v1/conversations/{conv}/resolve", admin)
    clock.now = datetime(2026, 12, 22, 15, 0, tzinfo=UTC).timestamp()  # Tuesday 10:00 in New York
    again = await inbound(client, admin, "webchat:v-again", "it is still missing")
    assert again["conversation"]["id"] == conv and again["conversation"]["status"] != "resolved"
    assert await _stored(client, conv) == datetime(2026, 12, 22, 15, 30, tzinfo=UTC).timestamp()
    assert await client.app[ROUTER].state.conversation(conv) is not None


@dataclass
class Cost:
    writes: int = 0  # write transactions asked of the store
    statements: int = 0
    hours_reads: int = 0  # statements that read business hours


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cost]:
    """Counts every statement any store transaction runs, from here on (write transactions: see _counting_writes)."""
    cost = Cost()

    def counting(real: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, sql: str, params: Any = ()) -> Any:
            cost.statements += 1
            cost.hours_reads += "business_hours" in sql
            return real(self, sql, params)
        return run

    for tx_class in (history_db._SqliteTx, history_db._PgTx):
        for name in ("one", "all", "exec"):
            monkeypatch.setattr(tx_class, name, counting(getattr(tx_class, name)))
    yield cost


def _counting_writes(db: Database, cost: Cost, monkeypatch: pytest.MonkeyPatch) -> None:
    real = db.write

    async def write(fn: Callable[[Tx], Any], background: bool = False, order: str = "") -> Any:
        cost.writes += 1
        return await real(fn, background, order)

    monkeypatch.setattr(db, "write", write)


async def test_the_deadline_costs_no_write_of_its_own_and_hours_are_read_only_for_business_queues(
    db: Database, make_settings: Callable[..., Settings], db_url: str, counted: Cost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #18: a new conversation on a queue with a target takes as many write transactions as one on a queue
    without (its deadline is stored by the inbound transaction that opens it, not by a write of its own), and at
    most one more statement; business hours are read (in that transaction) only for a queue that counts them, and
    only when a message opens a conversation, not when it joins one. The hub as `build_app` wires it, its inbound
    path and routing driven directly (no background task writing meanwhile)."""
    hours = business_hours.BusinessHours.model_validate(
        {"timezone": "America/New_York", "weekly": WEEK, "holidays": ["2026-12-21"]})
    await db.write(lambda tx: business_hours.save(tx, "support", hours, format_time(utcnow())))
    costs: dict[str, tuple[Cost, Cost]] = {}
    stored: dict[str, float | None] = {}
    for way, target in (("none", {}), ("calendar", {"first_response": 1800, "first_response_hours": "calendar"}),
                        ("business", {"first_response": 1800, "first_response_hours": "business"})):
        queues = {"support": {"title": "Support", "offer_timeout": 300, **target}}
        app = build_app(make_settings(db_url, HUB_ROUTING__QUEUES=json.dumps(queues)))
        ingest, router = app[INGEST], app[ROUTER]
        try:
            await sync_queues(app[DB], router.settings.routing.queues)
            await router.load_state()
            router.clock = router.engine.clock = FakeClock(FRIDAY_1755)
            _counting_writes(app[DB], counted, monkeypatch)
            await ingest.ingest(Inbound(channel="webchat", identity=_identity(f"warm-{way}"), text="warm-up"))
            spent = []
            for text in ("my order is missing", "hello?"):  # opens a conversation, then joins it
                before = Cost(counted.writes, counted.statements, counted.hours_reads)
                result = await ingest.ingest(Inbound(channel="webchat", identity=_identity(way), text=text))
                spent.append(Cost(counted.writes - before.writes, counted.statements - before.statements,
                                  counted.hours_reads - before.hours_reads))
            assert result.conversation_how == "joined"
            costs[way] = (spent[0], spent[1])
            stored[way] = await _respond_by(app[DB], result.conversation.id)
            assert await router.state.conversation(result.conversation.id) is not None
        finally:
            await router.close()
            await app[DB].close()
    assert stored == {"none": None, "calendar": FRIDAY_1755 + 1800, "business": TUESDAY_0925}
    (none, none_joined), (calendar, calendar_joined), (business, business_joined) = (
        costs["none"], costs["calendar"], costs["business"])
    assert calendar.writes == business.writes == none.writes, costs
    assert calendar.statements <= none.statements + 1, costs  # the deadline (in a statement the priority may share)
    assert business.statements <= calendar.statements + 2, costs  # the queue's own hours, else the default's
    assert (none.hours_reads, calendar.hours_reads, business.hours_reads) == (0, 0, 1), costs
    assert none_joined.writes == calendar_joined.writes == business_joined.writes, costs
    assert none_joined.statements == calendar_joined.statements == business_joined.statements, costs
    assert business_joined.hours_reads == 0, costs


def _identity(name: str) -> Identity:
    return Identity("webchat", f"v-cost-{name}")


async def _respond_by(db: Database, conv: int) -> float | None:
    row = await db.read(lambda tx: tx.one("SELECT respond_by FROM conversations WHERE id = ?", (conv,)))
    return None if row is None or row["respond_by"] is None else float(row["respond_by"])
