"""Fixtures shared by the channel tests, and by the campaign and survey tests that send through the same simulators."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from tests.channels.email.dovecot import _free_port
from tests.channels.email.test_channel import MailServer
from tests.channels.twilio.fake import ACCOUNT, TOKEN, TwilioFake


@pytest.fixture
async def fake(aiohttp_server: Any) -> tuple[TwilioFake, str]:
    """A Twilio REST simulator on a local port, and its base URL (the hub's twilio api_base_url)."""
    sim = TwilioFake(ACCOUNT, TOKEN)
    server: TestServer = await aiohttp_server(sim.app())
    return sim, str(server.make_url("")).rstrip("/")


@pytest.fixture
def smtp() -> Iterator[tuple[MailServer, int]]:
    """A real SMTP server (aiosmtpd, plain, login hub / smtp-secret) on a free port: (what it received, its port)."""
    server = MailServer()
    port = _free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port, authenticator=server.authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield server, port
    finally:
        controller.stop()


def email_env(smtp_port: int) -> dict[str, str]:
    """The hub's settings for an email channel that sends through the `smtp` fixture's server."""
    return {
        "HUB_CHANNELS__EMAIL__ENABLED": "true",
        "HUB_CHANNELS__EMAIL__ADDRESS": "support@hub.test",
        "HUB_CHANNELS__EMAIL__SMTP_HOST": "127.0.0.1",
        "HUB_CHANNELS__EMAIL__SMTP_PORT": str(smtp_port),
        "HUB_CHANNELS__EMAIL__SMTP_SECURITY": "none",
        "HUB_CHANNELS__EMAIL__SMTP_USERNAME": "hub",
        "HUB_CHANNELS__EMAIL__SMTP_PASSWORD": "smtp-secret",
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.1",
    }
