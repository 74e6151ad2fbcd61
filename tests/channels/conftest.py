"""Fixtures shared by the channel tests."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.channels.twilio.fake import ACCOUNT, TOKEN, TwilioFake


@pytest.fixture
async def fake(aiohttp_server: Any) -> tuple[TwilioFake, str]:
    """A Twilio REST simulator on a local port, and its base URL (the hub's twilio api_base_url)."""
    sim = TwilioFake(ACCOUNT, TOKEN)
    server: TestServer = await aiohttp_server(sim.app())
    return sim, str(server.make_url("")).rstrip("/")
