"""hub.serve: what serving an app does around it."""

from __future__ import annotations

import gc

import pytest
from aiohttp import web

from hub.serve import run_server


class _Served(Exception):
    pass


async def test_what_the_started_app_holds_is_left_out_of_full_collections() -> None:
    """A full collection walks every tracked object while the event loop waits: with the started app's heap frozen
    it walks only what came after (the agents' p99 was these pauses: docs/performance.md)."""
    seen: list[tuple[int, int]] = []

    async def started(port: int) -> None:
        seen.append((gc.get_freeze_count(), len(gc.get_objects())))
        raise _Served

    with pytest.raises(_Served):
        await run_server(web.Application(), "127.0.0.1", 0, 1.0, started=started)
    frozen, walked = seen[0]
    assert frozen > 10 * walked, (frozen, walked)
    assert gc.get_freeze_count() == 0  # thawed once it stops serving (an app run in-process, as here)
