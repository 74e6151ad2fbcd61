"""What the web chat widget is told (GET /webchat/availability): away with nobody available, online with someone,
busy when every agent is at capacity, closed outside business hours with when it opens; the typical wait only
from enough recent conversations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import ConfigError, Settings, load_settings
from hub.keys import DB
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
