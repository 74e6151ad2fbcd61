"""Stopping background tasks: a task that swallows a cancellation still stops, a failed one is logged, not raised."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hub import tasks


async def test_stops_a_task_that_swallows_one_cancellation() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed == 0:
                    swallowed += 1  # as a library finishing a call at that moment may do
                    continue
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.stop([task]), 5)
    assert task.cancelled() and swallowed == 1


async def test_failures_are_logged_and_the_rest_still_stop(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("mailbox gone")

    async def reset() -> None:
        raise ConnectionResetError("peer went away")

    failing, expected = asyncio.create_task(broken(), name="poller"), asyncio.create_task(reset(), name="socket")
    sleeper = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="hub.tasks"):
        await tasks.stop([failing, expected, sleeper], expected=(ConnectionResetError,))
    assert sleeper.cancelled()
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["background task poller had failed: RuntimeError('mailbox gone')"]

