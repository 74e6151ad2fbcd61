"""Twilio as the tests see it: the local REST simulator (Twilio's wire format, scripted failures) and webhooks signed
with the real algorithm, posted to a hub that believes it is reachable at PUBLIC (as behind a proxy)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

from hub.channels.twilio.replay import read_payload
from hub.config import Settings
from hub.demo.twilio_simulator import Scripted, TwilioSimulator, new_sid

__all__ = ["ACCOUNT", "BIZ", "CUSTOMER", "PUBLIC", "TOKEN", "Scripted", "TwilioFake", "new_sid"]

ACCOUNT = "ACd2f3c5e0a1b24c6d8e9f0a1b2c3d4e5f"  # the account of the samples in webhooks/twilio/
TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://hub.example.com"
BIZ = "+14155550199"
CUSTOMER = "+14155550100"
SAMPLES = Path(__file__).resolve().parents[3] / "webhooks" / "twilio"

Client = TestClient[Any, Any]


class TwilioFake(TwilioSimulator):
    """Twilio's REST API for the official client under test (the same simulator `hub demo` runs)."""


def sample(name: str, **changes: str) -> dict[str, str]:
    """A real-format payload from webhooks/twilio/, with some fields changed."""
    params = read_payload(SAMPLES / f"{name}.txt")
    params.update(changes)
    return params


def signature(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


async def webhook(
    client: Client, path: str, params: dict[str, str], *, token: str = TOKEN, signed: bool = True,
    signed_url: str | None = None,
) -> tuple[int, str, Any]:
    """POST PARAMS form-encoded to PATH as Twilio would: signed over PUBLIC + PATH. Returns (status, body, headers)."""
    headers = {}
    if signed:
        headers["X-Twilio-Signature"] = signature(signed_url or PUBLIC + path, params, token)
    resp = await client.post(path, data=params, headers=headers)
    return resp.status, await resp.text(), resp.headers


def twiml(body: str) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "Response", body
    return root


def settings_env(fake_url: str, **extra: Any) -> dict[str, str]:
    env = {
        "HUB_SERVER__PUBLIC_URL": PUBLIC,
        "HUB_CHANNELS__TWILIO__ENABLED": "true",
        "HUB_CHANNELS__TWILIO__ACCOUNT_SID": ACCOUNT,
        "HUB_CHANNELS__TWILIO__AUTH_TOKEN": TOKEN,
        "HUB_CHANNELS__TWILIO__API_BASE_URL": fake_url,
        "HUB_OUTBOX__BASE_DELAY_SECONDS": "0.05",
        "HUB_OUTBOX__MAX_DELAY_SECONDS": "0.2",
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.1",
    }
    for key, value in extra.items():
        env[f"HUB_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def make_hub_settings(
    make_settings: Callable[..., Settings], db_url: str | None, fake_url: str, **extra: Any
) -> Settings:
    return make_settings(db_url, **settings_env(fake_url, **extra))


async def start_hub(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake_url: str, db_url: str | None = None,
    **extra: Any,
) -> tuple[TestClient[Any, Any], dict[str, str]]:
    """A hub app with the Twilio channels pointed at FAKE_URL, and admin headers for its API."""
    from hub.api.auth import create_token
    from hub.app import build_app
    from hub.keys import DB

    client: TestClient[Any, Any] = await aiohttp_client(
        build_app(make_hub_settings(make_settings, db_url, fake_url, **extra))
    )
    token = await create_token(client.app[DB], "admin", label="tests")
    return client, {"Authorization": f"Bearer {token}"}
