"""Business hours: weekly hours in a time zone with holidays (across DST), the API, the business_hours condition,
and the out-of-hours reply sent once per conversation per closed window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from hub.automation.hours import BusinessHours
from hub.config import Settings
from tests.api.client import Api, inbound
from tests.automation.test_rules import FAST, add_rule, conversation, settled
from tests.waiting import eventually

WEEKDAYS = {d: ["09:00-12:30", "13:30-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, **FAST, HUB_ROUTING__QUEUES='{"support": {}, "billing": {}}')


def test_open_and_next_open_in_the_time_zone_across_dst() -> None:
    paris = BusinessHours(timezone="Europe/Paris", weekly=WEEKDAYS, holidays=[date(2026, 12, 25)])
    # Friday 27 March 2026, 08:30 UTC is 09:30 in Paris (winter time, UTC+1): open.
    assert paris.is_open(datetime(2026, 3, 27, 8, 30, tzinfo=UTC))
    assert not paris.is_open(datetime(2026, 3, 27, 11, 45, tzinfo=UTC))  # 12:45 lunch
    # Monday 30 March, after the switch to summer time (UTC+2): 07:30 UTC is 09:30 local.
    assert paris.is_open(datetime(2026, 3, 30, 7, 30, tzinfo=UTC))
    assert not paris.is_open(datetime(2026, 3, 30, 6, 30, tzinfo=UTC))
    # Friday evening: next open is Monday 09:00 Paris, which is 07:00 UTC in summer time.
    assert paris.next_open(datetime(2026, 3, 27, 18, 0, tzinfo=UTC)) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    # Christmas (a Friday) is a holiday: closed all day; Thursday evening's next opening is Monday 28th.
    assert not paris.is_open(datetime(2026, 12, 25, 10, 0, tzinfo=UTC))
    assert paris.next_open(datetime(2026, 12, 24, 18, 0, tzinfo=UTC)) == datetime(2026, 12, 28, 8, 0, tzinfo=UTC)
    # Open now: next_open is now.
    now = datetime(2026, 3, 27, 8, 30, tzinfo=UTC)
    assert paris.next_open(now) == now
    always = BusinessHours(timezone="UTC", weekly={d: ["00:00-24:00"] for d in WEEKDAYS | {"sat": [], "sun": []}})
    assert always.is_open(datetime(2026, 3, 29, 23, 59, 59, tzinfo=UTC))
    assert BusinessHours(timezone="UTC", weekly={}).next_open(datetime(2026, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(("body", "reason"), [
    ({"timezone": "Mars/Olympus", "weekly": {}}, "not an IANA time zone"),
    ({"timezone": "UTC", "weekly": {"monday": ["09:00-17:00"]}}, "is not a day"),
    ({"timezone": "UTC", "weekly": {"mon": ["17:00-09:00"]}}, "ends before it starts"),
    ({"timezone": "UTC", "weekly": {"mon": ["9-5"]}}, "is not HH:MM-HH:MM"),
    ({"timezone": "UTC", "weekly": {}, "holidays": ["christmas"]}, "date"),
])
async def test_bad_hours_get_reasons(api: Api, body: dict[str, Any], reason: str) -> None:
    bad = await api.call("PUT", "/api/v1/business-hours/{name}", "/api/v1/business-hours/default", body, expect=422)
    assert reason in str(bad["error"]["details"])


async def test_hours_api(api: Api) -> None:
    await api.call("GET", "/api/v1/business-hours/{name}", "/api/v1/business-hours/default", expect=404)
    await api.call("PUT", "/api/v1/business-hours/{name}", "/api/v1/business-hours/nosuchqueue",
                   {"timezone": "UTC", "weekly": {}}, expect=404)
    put = await api.call("PUT", "/api/v1/business-hours/{name}", "/api/v1/business-hours/billing",
                         {"timezone": "America/New_York", "weekly": WEEKDAYS, "holidays": ["2026-07-04"]})
    assert put["timezone"] == "America/New_York" and isinstance(put["open"], bool) and put["next_open"]
    listed = await api.call("GET", "/api/v1/business-hours", "/api/v1/business-hours")
    assert list(listed["items"]) == ["billing"] and listed["items"]["billing"]["holidays"] == ["2026-07-04"]
    await api.call("DELETE", "/api/v1/business-hours/{name}", "/api/v1/business-hours/billing")
    await api.call("DELETE", "/api/v1/business-hours/{name}", "/api/v1/business-hours/billing", expect=404)


async def test_out_of_hours_reply_once_per_window_and_the_condition(api: Api) -> None:
    today = datetime.now(UTC).date()
    closed_now = {
        "timezone": "UTC", "weekly": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        # Today and tomorrow are holidays, so it is closed now and opens the day after tomorrow at midnight.
        "holidays": [str(today), str(today + timedelta(days=1))],
        "auto_reply": "We are closed; we open {next_open}.",
    }
    await api.call("PUT", "/api/v1/business-hours/{name}", "/api/v1/business-hours/default", closed_now)
    await add_rule(api, {"name": "After hours", "event": "message.received",
                         "conditions": [{"field": "business_hours", "op": "is", "value": "closed"}],
                         "actions": [{"type": "add_label", "value": "after-hours"}]})
    first = await inbound(api, "phone:+14155550300", "anyone there?", "h1")
    await inbound(api, "phone:+14155550300", "hello??", "h2")
    await eventually(lambda: settled(api), what="events handled")
    detail = await conversation(api, first["conversation"]["id"])
    replies = [m for m in detail["messages"] if m["direction"] == "out"]
    opens = (today + timedelta(days=2)).strftime("%A")
    assert [m["text"] for m in replies] == [f"We are closed; we open {opens} 00:00 (UTC)."]
    assert replies[0]["meta"] == {"automatic": True, "business_hours": True}
    assert detail["labels"] == ["after-hours"]
    # Open hours for the queue itself win over the default: no reply, and the condition no longer holds.
    await api.call("PUT", "/api/v1/business-hours/{name}", "/api/v1/business-hours/support",
                   {**closed_now, "holidays": []})
    other = await inbound(api, "phone:+14155550301", "hi", "h3")
    await eventually(lambda: settled(api), what="events handled")
    detail = await conversation(api, other["conversation"]["id"])
    assert [m["direction"] for m in detail["messages"]] == ["in"] and detail["labels"] == []


def test_deadline_counts_open_time_only_across_night_weekend_holiday_and_dst() -> None:
    """The first-response clock of a business-hours queue: it stops at closing time and on holidays, runs again at
    opening, and follows the zone's DST changes (a 30-minute target at 17:55 on 09:00-18:00 is due at 09:25)."""
    week = {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    ny = BusinessHours(timezone="America/New_York", weekly=week)
    half_hour = 1800.0
    # Night: Tuesday 15 December 2026, 17:55 EST (UTC-5) -> Wednesday 09:25 EST.
    assert ny.deadline(datetime(2026, 12, 15, 22, 55, tzinfo=UTC), half_hour) == \
        datetime(2026, 12, 16, 14, 25, tzinfo=UTC)
    # Inside hours: plain addition; before opening: from opening.
    assert ny.deadline(datetime(2026, 12, 15, 15, 0, tzinfo=UTC), half_hour) == \
        datetime(2026, 12, 15, 15, 30, tzinfo=UTC)
    assert ny.deadline(datetime(2026, 12, 15, 12, 0, tzinfo=UTC), half_hour) == \
        datetime(2026, 12, 15, 14, 30, tzinfo=UTC)
    # Weekend: Friday 18 December 17:55 -> Monday 21st 09:25; with Monday a holiday, Tuesday 22nd 09:25.
    assert ny.deadline(datetime(2026, 12, 18, 22, 55, tzinfo=UTC), half_hour) == \
        datetime(2026, 12, 21, 14, 25, tzinfo=UTC)
    holiday = BusinessHours(timezone="America/New_York", weekly=week, holidays=[date(2026, 12, 21)])
    assert holiday.deadline(datetime(2026, 12, 18, 22, 55, tzinfo=UTC), half_hour) == \
        datetime(2026, 12, 22, 14, 25, tzinfo=UTC)
    # DST: Friday 30 October 2026 17:55 EDT (UTC-4); clocks go back on Sunday 1 November, so Monday 09:25 is EST
    # (UTC-5): 14:25 UTC, not the 13:25 that adding local wall time across the change would give.
    assert ny.deadline(datetime(2026, 10, 30, 21, 55, tzinfo=UTC), half_hour) == \
        datetime(2026, 11, 2, 14, 25, tzinfo=UTC)
    # A target longer than a day's hours spans days: 10 hours from Tuesday 17:00 is Wednesday 18:00.
    assert ny.deadline(datetime(2026, 12, 15, 22, 0, tzinfo=UTC), 36000.0) == \
        datetime(2026, 12, 16, 23, 0, tzinfo=UTC)
    # A lunch break stops it too (Paris, 09:00-12:30 and 13:30-18:00): 12:20 + 30 min is 13:50.
    paris = BusinessHours(timezone="Europe/Paris", weekly=WEEKDAYS)
    assert paris.deadline(datetime(2026, 12, 15, 11, 20, tzinfo=UTC), half_hour) == \
        datetime(2026, 12, 15, 12, 50, tzinfo=UTC)
    # Never open: no business deadline (the caller falls back to calendar time).
    assert BusinessHours(timezone="UTC", weekly={}).deadline(datetime(2026, 1, 1, tzinfo=UTC), half_hour) is None
    # The deadline and open_seconds agree: exactly the target's open time lies between arrival and deadline.
    start = datetime(2026, 10, 30, 21, 55, tzinfo=UTC)
    due = holiday.deadline(start, 5 * 3600.0)
    assert due is not None and holiday.open_seconds(start, due) == 5 * 3600.0
