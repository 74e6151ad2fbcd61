"""Fixtures of the bot tests: a hub built from chosen settings, with an admin's checked client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub.config import Settings
from tests.api.client import Api, start_api


@pytest.fixture
def admin_token_api(aiohttp_client: Any) -> Callable[[Settings], Awaitable[Api]]:
    async def make(settings: Settings) -> Api:
        return await start_api(aiohttp_client, settings)

    return make


@pytest.fixture
async def spec(client: Any) -> dict[str, Any]:
    return dict(await (await client.get("/api/v1/openapi.json")).json())


@pytest.fixture
async def api(client: Any, admin_headers: dict[str, str], spec: dict[str, Any]) -> Api:
    return Api(client, admin_headers, spec)
