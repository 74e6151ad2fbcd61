"""Two hub processes on one store and one real Redis event bus: a token revoked or an agent disabled through one
stops working on the other at once, although the other had it in its verification cache."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import DB
from tests.waiting import eventually

Client = TestClient[Any, Any]


async def _status(client: Client, token: str) -> int:
    resp = await client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
    return resp.status


async def test_revocation_and_disabling_reach_the_other_process(
    make_settings: Callable[..., Settings], db_url: str, redis_url: str, aiohttp_client: Any
) -> None:
    env = {"HUB_EVENTS__BACKEND": "redis", "HUB_EVENTS__REDIS_URL": redis_url,
           "HUB_EVENTS__CHANNEL": f"hub:test:{uuid.uuid4().hex}:events",
           "HUB_ROUTING__QUEUES": '{"support": {}}'}
    a: Client = await aiohttp_client(build_app(make_settings(db_url, **env)))
    b: Client = await aiohttp_client(build_app(make_settings(db_url, **env)))
    admin = {"Authorization": f"Bearer {await create_token(a.app[DB], 'admin')}"}
    agent = await add_agent(a.app[DB], "Ann", "ann@example.com", "ann-password-1", "agent", ["support"])
    integration = await create_token(a.app[DB], "admin", label="crm")
    ann = await create_token(a.app[DB], "agent", agent.id)
    # B verifies both once, and remembers them.
    assert await _status(b, integration) == 200 and await _status(b, ann) == 200

    listed = await (await a.get("/api/v1/tokens", headers=admin)).json()
    crm = next(t for t in listed["items"] if t["label"] == "crm")
    resp = await a.delete(f"/api/v1/tokens/{crm['id']}", headers=admin)
    assert resp.status == 200, await resp.text()

    def refused(token: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await _status(b, token) == 401
        return check

    await eventually(refused(integration), within=5)  # well inside the 30 s the cache would keep it
    assert await _status(b, ann) == 200, "only the revoked token stops"

    resp = await a.patch(f"/api/v1/agents/{agent.id}", json={"disabled": True}, headers=admin)
    assert resp.status == 200, await resp.text()
    await eventually(refused(ann), within=5)
