"""Stopping background tasks: the one way every long-lived loop the hub starts is stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("hub.tasks")


async def stop(tasks: Iterable[asyncio.Task[Any]], expected: tuple[type[BaseException], ...] = ()) -> None:
    """Cancel TASKS and wait until every one has stopped. A task still running after a cancellation is cancelled
    again: a library awaited inside a loop may swallow one (seen with a database call finishing at that moment), and
    the loop would then run on forever. A task that had failed is logged (unless its error is EXPECTED), never
    raised, so the others still stop."""
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for t in tasks:
        if t.cancelled():
            continue
        error = t.exception()
        if error is not None and not isinstance(error, expected):
            log.error("background task %s had failed: %r", t.get_name(), error)
