"""Fixtures of the API tests: a hub with two queues, its OpenAPI document, and an admin's checked client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hub.config import Settings
from tests.api.client import Api, Client


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES='{"support": {"title": "Support"}, "sales": {}}')


@pytest.fixture
async def spec(client: Client) -> dict[str, Any]:
    resp = await client.get("/api/v1/openapi.json")  # public: no token needed
    assert resp.status == 200
    return dict(await resp.json())


@pytest.fixture
async def api(client: Client, admin_headers: dict[str, str], spec: dict[str, Any]) -> Api:
    return Api(client, admin_headers, spec)
