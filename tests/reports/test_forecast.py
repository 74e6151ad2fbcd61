"""The staffing forecast: Erlang C against the published worked example, the volume model on weeks with a known
shape and trend, and the API over conversations the roller folded, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import heapq
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


def _simulated(per_hour: float, handle: float, patience: float, agents: int, target: float,
               n: int = 200_000, seed: int = 3) -> tuple[float, float]:
    """M/M/N+M by simulation, first come first served: an arrival waits for the earliest free agent unless its
    patience runs out first (then it leaves, taking no agent). Returns (answered within TARGET, abandoned)."""
    rnd = random.Random(seed)
    t, free, in_time, gave_up = 0.0, [0.0] * agents, 0, 0
    for _ in range(n):
        t += rnd.expovariate(per_hour / 3600)
        wait = max(0.0, free[0] - t)
        if wait > rnd.expovariate(1 / patience):
            gave_up += 1
            continue
        in_time += wait <= target
        heapq.heapreplace(free, t + wait + rnd.expovariate(1 / handle))
    return in_time / n, gave_up / n


def test_erlang_a_becomes_erlang_c_without_abandonment_and_matches_a_simulation() -> None:
    # Patience far beyond any wait: nobody abandons, and the published Erlang C figures come back.
    for agents, level in {11: 0.390, 12: 0.640, 13: 0.796, 14: 0.888, 15: 0.942}.items():
        got, abandoned = forecast.erlang_a(200, 180, 1e9, agents, 20)
        assert got == pytest.approx(level, abs=1e-3) and abandoned < 1e-6
    # Two minutes' patience, against 200,000 simulated contacts: within a point of the simulation.
    for agents in (10, 12, 14):
        level, abandoned = forecast.erlang_a(200, 180, 120, agents, 20)
        sim_level, sim_abandoned = _simulated(200, 180, 120, agents, 20)
        assert level == pytest.approx(sim_level, abs=0.01) and abandoned == pytest.approx(sim_abandoned, abs=0.005)
    # Abandonment takes load off: fewer agents than Erlang C for the same goal, never more.
    assert forecast.agents_needed_a(200, 180, 120, 20, 0.8) == 12 < forecast.agents_needed(200, 180, 20, 0.8) == 14
    assert forecast.agents_needed_a(200, 180, 1e9, 20, 0.8) == 14
    assert forecast.agents_needed_a(0, 180, 120, 20, 0.8) == 0
    assert forecast.agents_needed_a(200, 180, 120, 20, 0.8, concurrency=3) == 4


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
    passed = monday + timedelta(hours=4) <= datetime.now(UTC)  # 03:00-04:00 this Monday is over: nobody was in
    assert by_start[(monday + timedelta(hours=3)).isoformat(timespec="seconds")] == {
        "start": (monday + timedelta(hours=3)).isoformat(timespec="seconds"), "contacts": 0.0, "agents": 0,
        "agents_erlang_a": None, "available": 0.0 if passed else None}
    assert got["assumptions"]["patience_seconds"] is None  # nobody abandoned: Erlang A is not measured
    assert got["model"]["held_out_wape"] == pytest.approx(0.0, abs=1e-6)
    # Another queue had nothing: nothing to staff.
    sales = await api.call("GET", F, f"{F}?queue=sales&tz=UTC")
    assert sales["history"]["contacts"] == 0 and {h["agents"] for h in sales["hours"]} == {0}
    assert sales["model"]["held_out_wape"] is None
    table = await client.get(f"{F}?queue=support&tz=UTC&weeks=1&format=csv",
                             headers={"Authorization": f"Bearer {await create_token(db, 'admin')}"})
    rows = list(csv.reader(io.StringIO(await table.text())))
    assert rows[0] == ["start", "contacts", "agents", "agents_erlang_a", "available"]
    assert len(rows) == 1 + 2 * forecast.HOURS_PER_WEEK  # last week as it happened, then the forecast


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


async def test_erlang_a_from_the_measured_patience_and_the_agents_who_were_available(
        api: Api, client: Client) -> None:
    """Last week: 8 contacts an hour at 10:00 UTC on weekdays, 2 of them abandoned after 30 s and 6 answered after
    10 s; Ann was available 09:30-11:00 on Monday. Patience is measured (all the waiting over those who gave up),
    Erlang A sizes the hours with it, and last week's hours show who was available beside what was needed."""
    from hub.agents import add_agent
    from hub.reports import presence

    now = datetime.now(UTC)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    last = monday - timedelta(weeks=1)
    db = client.app[DB]
    ann = await add_agent(db, "Ann", "ann@example.com", "long password", "agent", ["support"])

    def seed(tx: Tx) -> None:
        conv = 0
        for day in range(5):
            for k in range(8):
                conv += 1
                at = last + timedelta(days=day, hours=10, minutes=k * 7)
                events.record(tx, "opened", conv, format_time(at), channel="sms", queue="support")
                if k < 2:
                    events.record(tx, "abandoned", conv, format_time(at + timedelta(seconds=30)), queue="support")
                else:
                    events.record(tx, "assigned", conv, format_time(at + timedelta(seconds=10)), queue="support",
                                  agent_id=ann.id, seconds=10.0)
        presence.record(tx, ann.id, "available", format_time(last + timedelta(hours=9, minutes=30)))
        assert not presence.record(tx, ann.id, "available", format_time(last + timedelta(hours=10)))  # no change
        presence.record(tx, ann.id, "away", format_time(last + timedelta(hours=11)))

    await db.write(seed)
    s = client.app[SETTINGS]
    await catch_up(db, RollRules.from_settings(s.reports, s.routing), cutoff=format_time(utcnow()))
    got = await api.call("GET", F, f"{F}?queue=support&tz=UTC&history_weeks=1&weeks=1&handle_seconds=600"
                                   "&target_seconds=20&goal=0.8")
    patience = (6 * 10 + 2 * 30) / 2  # 60 s
    assert got["assumptions"]["patience_seconds"] == patience and got["assumptions"]["patience_measured"]
    assert (got["assumptions"]["abandoned"], got["assumptions"]["answered"]) == (10, 30)
    past = {h["start"]: h for h in got["last_week"]}
    ten = past[(last + timedelta(hours=10)).isoformat(timespec="seconds")]
    assert ten["contacts"] == 8 and ten["agents"] == forecast.agents_needed(8, 600, 20, 0.8)
    assert ten["agents_erlang_a"] == forecast.agents_needed_a(8, 600, patience, 20, 0.8) <= ten["agents"]
    assert ten["available"] == 1.0
    assert past[(last + timedelta(hours=9)).isoformat(timespec="seconds")]["available"] == 0.5
    assert past[(last + timedelta(hours=11)).isoformat(timespec="seconds")]["available"] == 0.0
    ahead = {h["start"]: h for h in got["hours"]}[(monday + timedelta(hours=10)).isoformat(timespec="seconds")]
    assert ahead["agents_erlang_a"] == forecast.agents_needed_a(ahead["contacts"], 600, patience, 20, 0.8)
    # Another queue's agents are not support's; a patience given overrides the measured one.
    sales = await api.call("GET", F, f"{F}?queue=sales&tz=UTC&history_weeks=1&weeks=1")
    assert {h["available"] for h in sales["last_week"]} == {0.0}
    given = await api.call("GET", F, f"{F}?queue=support&tz=UTC&history_weeks=1&weeks=1&patience_seconds=300")
    assert given["assumptions"]["patience_seconds"] == 300 and not given["assumptions"]["patience_measured"]
    assert (await api.call("GET", F, f"{F}?patience_seconds=0", expect=422))["error"]["message"]
