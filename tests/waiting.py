"""Waiting for something a hub does in the background: one poller for every test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 30.0, what: str = "condition") -> Any:
    """Poll the async CHECK until it returns something truthy, and return that; fail after WITHIN seconds
    (generous: these machines are shared and may be loaded)."""
    deadline = time.monotonic() + within
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within:.0f}s")
        await asyncio.sleep(0.05)
