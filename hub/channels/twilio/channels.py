"""The Twilio channels a hub runs when [channels.twilio] is enabled: sms, whatsapp and voice on one account."""

from __future__ import annotations

from hub.channels.base import Channel
from hub.channels.twilio.account import TwilioAccount, TwilioSink
from hub.channels.twilio.sms import SmsChannel, WhatsAppChannel
from hub.channels.twilio.voice import VoiceChannel
from hub.config import ConfigError, Settings


def twilio_channels(settings: Settings, sink: TwilioSink) -> dict[str, Channel]:
    if not settings.server.public_url:
        # Twilio signs the URL it calls and needs absolute callback URLs: both come from the public URL.
        raise ConfigError(
            "server.public_url is required when channels.twilio is enabled: it is the address Twilio calls "
            "(e.g. https://hub.example.com), and every webhook signature is checked against it"
        )
    account = TwilioAccount(settings.channels.twilio, settings.server.public_url, sink)
    return {
        "sms": SmsChannel(sink, account),
        "whatsapp": WhatsAppChannel(sink, account),
        "voice": VoiceChannel(sink, account, default_queue=settings.routing.default_queue),
    }
