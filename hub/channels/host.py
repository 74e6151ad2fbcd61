"""What a channel adapter is handed: the inbound path and status updates for the outbound path, nothing else."""

from __future__ import annotations

from typing import Any

from hub.ingest import Ingest, IngestResult
from hub.model import Inbound
from hub.outbox import Outbox


class ChannelHost:
    """Implements `InboundSink` over the hub's one ingest and one outbox."""

    def __init__(self, ingest: Ingest, outbox: Outbox) -> None:
        self._ingest = ingest
        self._outbox = outbox

    async def ingest(self, inbound: Inbound, raw: Any = None) -> IngestResult:
        return await self._ingest.ingest(inbound, raw)

    async def flag(self, channel: str, dedupe_key: str | None, raw: Any, reason: str) -> int:
        return await self._ingest.flag(channel, dedupe_key, raw, reason)

    async def update_status(self, channel: str, external_id: str, status: str, reason: str | None = None) -> bool:
        return await self._outbox.update_status(channel, external_id, status, reason)
