"""What the web chat widget is told (GET /webchat/availability): away with nobody available, online with someone,
busy when every agent is at capacity, closed outside business hours with when it opens; the typical wait only
from enough recent conversations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.automation import hours as business_hours
from hub.config import ConfigError, Settings, load_settings
from hub.keys import DB
from hub.model import format_time, parse_time, utcnow
from hub.routing import availability
from hub.routing.availability import next_open
from tests.waiting import eventually

Client = TestClient[Any, Any]


def test_next_open_finds_the_next_span_start() -> None:
    wednesday_noon = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert next_open([], "UTC", wednesday_noon) is None
    assert next_open(["mon-fri 09:00-17:00"], "UTC", wednesday_noon) == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert next_open(["mon 09:00-17:00", "sat 10:00-14:00"], "UTC", wednesday_noon) \
        == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    # In the business's zone: 09:00 in New York is 14:00 UTC in December.
    opens = next_open(["thu 09:00-17:00"], "America/New_York", wednesday_noon)
    assert opens is not None and opens.astimezone(UTC) == datetime(2026, 12, 3, 14, 0, tzinfo=UTC)


def test_hours_and_timezone_are_validated_with_clear_errors() -> None:
    with pytest.raises(ConfigError, match="not a span of hours"):
        load_settings(None, {"HUB_CHANNELS__WEBCHAT__HOURS": '["weekdays 9-5"]'})
    with pytest.raises(ConfigError, match="unknown time zone"):
        load_settings(None, {"HUB_CHANNELS__WEBCHAT__TIMEZONE": "Mars/Olympus"})


async def test_states_from_presence_and_capacity(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(availability, "CACHE_SECONDS", 0.0)  # each question answered afresh
    settings = make_settings(db_url, HUB_CHANNELS__WEBCHAT__ENABLED="true",
                             HUB_ROUTING__DEFAULT_CAPACITY='{"chat": 1, "voice": 1, "email": 1}')
    hub: Client = await aiohttp_client(build_app(settings))
    db = hub.app[DB]
    agent = await add_agent(db, "Maya Brooks", "maya@example.com", "maya-password-1", "agent", ["support"])
    maya = {"Authorization": f"Bearer {await create_token(db, 'agent', agent.id)}"}
    admin = {"Authorization": f"Bearer {await create_token(db, 'admin')}"}

    async def state() -> dict[str, Any]:
        resp = await hub.get("/webchat/availability")
        assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
        return dict(await resp.json())

    away = await state()
    assert away["state"] == "away" and away["agents_available"] == 0 and away["expected_wait_seconds"] is None
    await hub.post("/api/v1/agents/me/presence", json={"presence": "available"}, headers=maya)
    assert (await state())["state"] == "online"
    # A visitor writes in the web chat; Maya takes it and is then at her chat capacity (1).
    ws = await hub.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello"})
    await ws.receive_json(timeout=15)
    await ws.send_json({"type": "message", "client_id": "hello-0001", "text": "hello"})
    ack = await ws.receive_json(timeout=15)
    conv = ack["message"]["id"] and (await (await hub.get(f"/api/v1/messages/{ack['message']['id']}",
                                                          headers=admin)).json())["conversation_id"]

    async def held() -> bool:
        await hub.post(f"/api/v1/conversations/{conv}/accept", headers=maya)  # once it is offered to her
        return bool((await state())["state"] == "busy")

    await eventually(held)
    busy = await state()
    assert busy["agents_available"] == 0
    await ws.close()


async def test_closed_by_the_queues_stored_business_hours_unless_the_config_sets_hours(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(availability, "CACHE_SECONDS", 0.0)
    today = datetime.now(UTC).date()
    all_week = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    settings = make_settings(db_url, HUB_CHANNELS__WEBCHAT__ENABLED="true")
    hub: Client = await aiohttp_client(build_app(settings))
    admin = {"Authorization": f"Bearer {await create_token(hub.app[DB], 'admin')}"}

    async def state() -> dict[str, Any]:
        return dict(await (await hub.get("/webchat/availability")).json())

    assert (await state())["state"] == "away", "no hours anywhere: always open"
    # The default's hours: open all week, but today is a holiday: closed, back at midnight in its zone.
    resp = await hub.put("/api/v1/business-hours/default", headers=admin, json={
        "timezone": "UTC", "weekly": all_week, "holidays": [today.isoformat()]})
    assert resp.status == 200
    closed = await state()
    assert closed["state"] == "closed" and closed["timezone"] == "UTC"
    assert parse_time(closed["opens_at"]) == datetime.combine(today + timedelta(days=1), time(0), UTC)
    # The queue web chats go to has hours of its own (no holiday): they win over the default, at once.
    resp = await hub.put("/api/v1/business-hours/support", headers=admin, json={
        "timezone": "Asia/Tokyo", "weekly": all_week})
    assert resp.status == 200
    opened = await state()
    assert opened["state"] == "away" and opened["opens_at"] is None and opened["timezone"] == "Asia/Tokyo"
    assert (await hub.delete("/api/v1/business-hours/support", headers=admin)).status == 200
    assert (await state())["state"] == "closed"

    # The config's hours, when set, still win over the stored ones.
    open_all_week = make_settings(db_url, HUB_CHANNELS__WEBCHAT__ENABLED="true",
                                  HUB_CHANNELS__WEBCHAT__HOURS='["mon-sun 00:00-24:00"]')
    configured: Client = await aiohttp_client(build_app(open_all_week))
    assert (await (await configured.get("/webchat/availability")).json())["state"] == "away"


async def test_a_change_made_by_another_process_applies_within_the_cache_time(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(availability, "CACHE_SECONDS", 0.0)
    monkeypatch.setattr(business_hours, "CACHE_SECONDS", 0.3)
    hub: Client = await aiohttp_client(build_app(make_settings(db_url, HUB_CHANNELS__WEBCHAT__ENABLED="true")))
    assert (await (await hub.get("/webchat/availability")).json())["state"] == "away"
    # Another process saves the hours: this one has no word of it but reads the store again once its copy expires.
    closed_today = business_hours.BusinessHours(timezone="UTC", weekly={}, holidays=[])
    await hub.app[DB].write(lambda tx: business_hours.save(tx, "default", closed_today, format_time(utcnow())))

    async def closed() -> bool:
        return bool((await (await hub.get("/webchat/availability")).json())["state"] == "closed")

    await eventually(closed)
