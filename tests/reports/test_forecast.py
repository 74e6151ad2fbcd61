"""The staffing forecast: Erlang C against the published worked example, the volume model on weeks with a known
shape and trend, and the API over conversations the roller folded, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from hub.api.auth import create_token
from hub.config import Settings
from hub.history.db import Tx
from hub.keys import DB, SETTINGS
from hub.model import format_time, utcnow
from hub.reports import events, forecast
from hub.reports.rollup import RollRules, catch_up
from tests.api.client import Api, Client

F = "/api/v1/reports/staffing"


def test_erlang_c_matches_the_published_worked_example() -> None:
    # 100 calls in half an hour, 180 s handle time: 10 erlangs; answer 80% within 20 s. The published table
    # (Call Centre Helper's Erlang C worked example) gives, for 11 to 15 agents: the chance to wait, the service
    # level and the average speed of answer.
    table = {11: (0.6821, 0.390, 122.8), 12: (0.4494, 0.640, 40.4), 13: (0.2853, 0.796, 17.1),
             14: (0.1741, 0.888, 7.8), 15: (0.1020, 0.942, 3.7)}
    for agents, (waits, level, asa) in table.items():
        assert forecast.erlang_c(10, agents) == pytest.approx(waits, abs=5e-4)
        assert forecast.service_level(10, agents, 180, 20) == pytest.approx(level, abs=1e-3)
        assert forecast.average_wait(10, agents, 180) == pytest.approx(asa, abs=0.05)
    assert forecast.agents_needed(200, 180, 20, 0.8) == 14
    # Chats three at a time: the same 14 servers are 5 agents.
    assert forecast.agents_needed(200, 180, 20, 0.8, concurrency=3) == 5
    assert forecast.erlang_c(10, 10) == 1.0 and forecast.service_level(10, 9, 180, 20) == 0.0
    assert forecast.agents_needed(0, 180, 20, 0.8) == 0


def test_large_centers_are_sized_quickly_and_impossible_ones_refused() -> None:
    # 1,000 erlangs: the recurrence stays exact where factorials would overflow.
    needed = forecast.agents_needed(36_000, 100, 20, 0.9)
    assert 1000 < needed < 1100
    assert forecast.service_level(1000, needed, 100, 20) >= 0.9 > forecast.service_level(1000, needed - 1, 100, 20)
    with pytest.raises(ValueError, match="more than 10 agents"):
        forecast.agents_needed(1000, 300, 20, 0.8, max_agents=10)


def _weeks(n: int, growth: float, noise: float = 0.0, seed: int = 7) -> list[float]:
    """N weeks of hourly volume: business hours on weekdays, busier in the morning, growing GROWTH a week."""
    rnd = random.Random(seed)
    out = []
    for w in range(n):
        for h in range(forecast.HOURS_PER_WEEK):
            day, hour = divmod(h, 24)
            base = (12 if hour < 12 else 8) if day < 5 and 9 <= hour < 17 else 0
            out.append(max(0.0, base * (1 + growth) ** w * (1 + rnd.uniform(-noise, noise))))
    return out


def test_the_volume_model_learns_the_week_and_its_trend() -> None:
    history = _weeks(8, growth=0.05)
    model = forecast.fit(history)
    assert sum(model.profile) == pytest.approx(1.0)
    nxt = model.week(1)
    truth = _weeks(9, growth=0.05)[-forecast.HOURS_PER_WEEK:]
    assert sum(abs(a - b) for a, b in zip(nxt, truth, strict=True)) / sum(truth) < 0.05
    assert nxt[2] == 0 and nxt[24 + 10] > nxt[24 + 14] > 0  # nights empty, mornings busier
    error = forecast.held_out_error(history)
    assert error is not None and error < 0.05
    # Noise the model cannot know shows as error: the figure is honest, not flattering.
    noisy = forecast.held_out_error(_weeks(8, growth=0.0, noise=0.5))
    assert noisy is not None and noisy > 0.15
    assert forecast.held_out_error(history[: 3 * forecast.HOURS_PER_WEEK]) is None  # too short to judge
    with pytest.raises(ValueError, match="whole weeks"):
        forecast.fit(history[:100])


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES='{"support": {}, "sales": {}}',
                         HUB_REPORTS__ROLL_INTERVAL_SECONDS="3600")


async def test_the_forecast_from_the_stored_history(api: Api, client: Client) -> None:
    """Four past weeks of conversations in support, 6 an hour on weekdays 09-12 UTC: next week says the same, with
    the agents Erlang C needs for them, and an agent may not see it."""
    now = datetime.now(UTC)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)

    def seed(tx: Tx) -> None:
        conv = 0
        for week in range(1, 5):
            for day in range(5):
                for hour in (9, 10, 11):
                    for k in range(6):
                        conv += 1
                        at = monday - timedelta(weeks=week) + timedelta(days=day, hours=hour, minutes=k * 9)
                        events.record(tx, "opened", conv, format_time(at), channel="sms", queue="support")

    db = client.app[DB]
    await db.write(seed)
    s = client.app[SETTINGS]
    await catch_up(db, RollRules.from_settings(s.reports, s.routing), cutoff=format_time(utcnow()))
    got = await api.call("GET", F, f"{F}?queue=support&tz=UTC&history_weeks=4&weeks=1&handle_seconds=600"
                                   "&target_seconds=30&goal=0.8")
    assert got["history"]["contacts"] == 4 * 5 * 3 * 6 and got["history"]["weeks"] == 4
    hours = got["hours"]
    assert len(hours) == forecast.HOURS_PER_WEEK and hours[0]["start"].startswith(monday.date().isoformat())
    by_start = {h["start"]: h for h in hours}
    ten = by_start[(monday + timedelta(hours=10)).isoformat(timespec="seconds")]
    assert ten["contacts"] == pytest.approx(6.0, abs=0.01)
    assert ten["agents"] == forecast.agents_needed(6, 600, 30, 0.8) == 3  # 1 erlang
    assert by_start[(monday + timedelta(hours=3)).isoformat(timespec="seconds")] == {
        "start": (monday + timedelta(hours=3)).isoformat(timespec="seconds"), "contacts": 0.0, "agents": 0}
    assert got["model"]["held_out_wape"] == pytest.approx(0.0, abs=1e-6)
    # Another queue had nothing: nothing to staff.
    sales = await api.call("GET", F, f"{F}?queue=sales&tz=UTC")
    assert sales["history"]["contacts"] == 0 and {h["agents"] for h in sales["hours"]} == {0}
    assert sales["model"]["held_out_wape"] is None
    table = await client.get(f"{F}?queue=support&tz=UTC&weeks=1&format=csv",
                             headers={"Authorization": f"Bearer {await create_token(db, 'admin')}"})
    rows = list(csv.reader(io.StringIO(await table.text())))
    assert rows[0] == ["start", "contacts", "agents"] and len(rows) == 1 + forecast.HOURS_PER_WEEK


@pytest.mark.parametrize("query", ["weeks=0", "weeks=9", "goal=1", "handle_seconds=abc", "concurrency=0",
                                   "history_weeks=53", "handle_seconds=86400&concurrency=1&goal=0.999&weeks=1"])
async def test_bad_or_impossible_questions_are_422(api: Api, client: Client, query: str) -> None:
    if "86400" in query:  # one contact a day of a whole day's handling is fine; the refusal needs volume
        def seed(tx: Tx) -> None:
            now = datetime.now(UTC)
            monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
            for n in range(40_000):
                events.record(tx, "opened", n + 1, format_time(monday - timedelta(days=7) + timedelta(hours=10)),
                              queue="support")

        await client.app[DB].write(seed)
        s = client.app[SETTINGS]
        await catch_up(client.app[DB], RollRules.from_settings(s.reports, s.routing), cutoff=format_time(utcnow()))
        query += "&history_weeks=1&queue=support"
    got = await api.call("GET", F, f"{F}?{query}", expect=422)
    assert got["error"]["message"]


async def test_agents_may_not_see_the_forecast(api: Api, client: Client) -> None:
    from hub.agents import add_agent

    db = client.app[DB]
    a = await add_agent(db, "Ann", "ann@example.com", "long password", "agent", ["support"])
    await api.call("GET", F, F, headers={"Authorization": f"Bearer {await create_token(db, 'agent', a.id)}"},
                   expect=403)
