"""Each channel's rule for its call facts, by channel name: what the core applies when a provider's later word about a
call arrives, also offline (the journal sweep, `hub events replay`). The wiring (hub.app, hub.cli) hands it to Ingest,
so the core never imports a channel."""

from __future__ import annotations

from collections.abc import Mapping

from hub.channels.base import FactRule
from hub.channels.twilio.outcome import settle
from hub.channels.twilio.voice import VoiceChannel

FACT_RULES: Mapping[str, FactRule] = {VoiceChannel.name: settle}
