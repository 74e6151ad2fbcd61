"""The agents' presence history: every change routing stores is logged once (the agent's own switch and routing's
auto-away alike), and read back as the agents available each hour, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from hub.agents import add_agent
from hub.config import Settings
from hub.history.db import Tx
from hub.keys import DB, ROUTER
from hub.reports import presence
from tests.api.client import Client


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES='{"support": {}, "sales": {}}')


async def test_each_presence_change_is_logged_once(client: Client) -> None:
    db = client.app[DB]
    ann = await add_agent(db, "Ann", "ann@example.com", "long password", "agent", ["support"])
    for wanted in ("available", "available", "away", "offline"):
        await client.app[ROUTER].set_presence(ann.id, wanted)
    rows = await db.read(lambda tx: tx.all("SELECT presence, at FROM agent_presence_log WHERE agent_id = ? "
                                           "ORDER BY id", (ann.id,)))
    assert [r["presence"] for r in rows] == ["available", "away", "offline"]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    [hour] = await db.read(lambda tx: presence.available_by_hour(tx, start, 1, "support"))
    assert 0.0 <= hour < 0.01  # available for the moments between the calls above


async def test_available_agents_per_hour_follow_the_log_and_the_queue(client: Client) -> None:
    db = client.app[DB]
    ann = await add_agent(db, "Ann", "ann@example.com", "long password", "agent", ["support"])
    bob = await add_agent(db, "Bob", "bob@example.com", "long password", "agent", ["sales"])
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)

    def log(tx: Tx) -> None:
        for agent, state, minutes in ((ann.id, "available", -90), (ann.id, "away", 75), (ann.id, "available", 90),
                                      (bob.id, "available", 30), (ann.id, "offline", 150)):
            presence.record(tx, agent, state, (t0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

    await db.write(log)
    hours = await db.read(lambda tx: presence.available_by_hour(tx, t0, 4))
    # Ann: the whole first hour, 15 of 60 min then from 09:30 on, to 10:30; Bob from 08:30 to the end.
    assert hours == [1.5, 1.75, 1.5, 1.0]
    assert await db.read(lambda tx: presence.available_by_hour(tx, t0, 4, "support")) == [1.0, 0.75, 0.5, 0.0]
    # Time after "now" is not counted yet.
    assert await db.read(lambda tx: presence.available_by_hour(tx, t0, 2, "sales", until=t0 + timedelta(
        minutes=90))) == [0.5, 0.5]
