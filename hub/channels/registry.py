"""The one registry of what the core runs of the adapters without them: each channel's rule for its call facts and
its readers of journaled raw events, applied also offline (the journal sweep, `hub events replay`, an operator's
action). The wiring (hub.app, hub.cli) hands it to Ingest, so the core never imports an adapter."""

from __future__ import annotations

from hub.channels.base import ChannelRules
from hub.channels.email.parse import reread
from hub.channels.twilio.outcome import settle
from hub.channels.twilio.voice import VoiceChannel

CHANNEL_RULES = ChannelRules(facts={VoiceChannel.name: settle}, readers=(reread,))
