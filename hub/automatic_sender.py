"""What the hub's own senders share (a campaign, a satisfaction survey): they write automatic messages through the
outbox, the one outbound path, then wake it and announce each message as any written message is announced."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hub.config import Settings
from hub.events import Event, EventBus
from hub.history import store
from hub.history.db import Database
from hub.model import format_time, utcnow
from hub.outbox import Outbox


class AutomaticSender:
    def __init__(self, db: Database, settings: Settings, outbox: Outbox, bus: EventBus,
                 clock: Callable[[], str] = lambda: format_time(utcnow())) -> None:
        self.db = db
        self.settings = settings
        self.outbox = outbox
        self.bus = bus
        #: the time a pass runs at (tests drive it with their own)
        self.clock = clock

    async def announce(self, message_ids: Sequence[int]) -> None:
        """After the commit that wrote MESSAGE_IDS: the outbox sends them, the console and the rules hear of them."""
        if not message_ids:
            return
        self.outbox.wake()
        for mid in message_ids:
            msg = await self.db.read(lambda tx, m=mid: store.message(tx, m))  # type: ignore[misc]
            await self.bus.publish(Event("message.created", {"message": msg.to_json()}))
