"""The events socket's visibility decisions (hub.api.events_ws.Visibility) on a real store: which events are decided
without asking it, so one socket's stream is not held behind a read per event."""

from __future__ import annotations

from typing import Any

from hub.api.auth import Principal
from hub.api.events_ws import Visibility
from hub.events import Event
from hub.history.db import Database


class CountingReads:
    """DB, counting the reads made through it."""

    def __init__(self, db: Database) -> None:
        self.db, self.reads = db, 0

    async def read(self, fn: Any) -> Any:
        self.reads += 1
        return await self.db.read(fn)


async def test_routing_events_of_the_agents_own_queue_need_no_read(db: Database) -> None:
    counting = CountingReads(db)
    agent = Principal(token_id=1, role="agent", agent_id=7, queues=("support",))
    seen = Visibility(counting, agent)  # type: ignore[arg-type]
    # Conversation 41 is not even in the store: the event itself says where it waits.
    queued = Event("routing.queued", {"conversation": 41, "queue": "support", "priority": 0, "parked_for": None})
    offered = Event("routing.offered", {"conversation": 41, "agent": 8, "queue": "support", "timeout": 30})
    assert await seen.allows(queued) and await seen.allows(offered)
    assert counting.reads == 0
    # Another queue's work is still decided by the store (which does not know conversation 42: not visible).
    elsewhere = Event("routing.queued", {"conversation": 42, "queue": "sales", "priority": 0, "parked_for": None})
    assert not await seen.allows(elsewhere)
    assert counting.reads == 1


