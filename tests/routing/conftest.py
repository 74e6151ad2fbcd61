"""Shared routing fixtures: a settable clock, and a `state` that runs each test on both backends (memory and the
real Redis of tests/conftest.py's redis_url)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hub.routing.memory import MemoryState
from hub.routing.redis import RedisState
from hub.routing.state import RoutingState


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[RoutingState]:
    if request.param == "memory":
        yield MemoryState()
        return
    url = request.getfixturevalue("redis_url")
    client = Redis.from_url(url)
    backend = RedisState(client, prefix=f"test:routing:{uuid.uuid4().hex}:")
    try:
        yield backend
    finally:
        await backend.clear()
        await client.aclose()
