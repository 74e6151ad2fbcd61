"""First-response targets counted in business hours, through the real app on SQLite and PostgreSQL, memory and
Redis routing: the deadline is computed once as a conversation enters its queue, stored on it, kept by a rebuilt
routing state after the hours changed, and breached at that deadline, not at arrival plus the target."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.app import build_app
from hub.config import Settings
from hub.keys import DB, ROUTER
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
    # Cut between the two writes: the deadline is stored, routing never queued the conversation.
    clock.now = SATURDAY_1000
    monkeypatch.setenv("HUB_FAIL_POINTS", "enqueue.after_deadline:raise")
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
