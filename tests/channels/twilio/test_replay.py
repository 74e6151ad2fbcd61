"""`hub webhooks replay`: saved Twilio payloads posted to a running hub, signed as Twilio signs them; and every
sample in webhooks/twilio/ is accepted by the hub it was written for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from hub.api.auth import create_token
from hub.app import build_app
from hub.channels.twilio.replay import freshen, read_payload
from hub.cli import main
from hub.config import Settings
from hub.keys import DB
from tests.channels.twilio.fake import ACCOUNT, SAMPLES, TOKEN, TwilioFake, make_hub_settings
from tests.conftest import free_port

# Which webhook each sample is posted to.
ROUTES = {
    "sms_": "/webhooks/twilio/sms", "mms_": "/webhooks/twilio/sms", "whatsapp_": "/webhooks/twilio/sms",
    "sms_status_": "/webhooks/twilio/sms/status", "voice_inbound": "/webhooks/twilio/voice",
    "voice_menu": "/webhooks/twilio/voice/menu", "voice_wait": "/webhooks/twilio/voice/wait",
    "voice_queue_result_": "/webhooks/twilio/voice/queue-result", "voice_status_": "/webhooks/twilio/voice/status",
    "voice_recording": "/webhooks/twilio/voice/recording?from=%2B14155550100&to=%2B14155550199",
    "voice_transcription": "/webhooks/twilio/voice/transcription",
    "voice_dialed": "/webhooks/twilio/voice/dialed?agent=1&message=1",
}


def route(name: str) -> str:
    return max(((p, r) for p, r in ROUTES.items() if name.startswith(p)), key=lambda pr: len(pr[0]))[1]


@pytest.fixture
async def hub(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> tuple[str, Any]:
    sim = TwilioFake(ACCOUNT, TOKEN)
    fake: TestServer = await aiohttp_server(sim.app())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_hub_settings(make_settings, None, str(fake.make_url("")).rstrip("/"), server__public_url=base)
    app = build_app(settings)
    await aiohttp_server(app, port=port)
    return base, app


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def messages(app: Any) -> list[Any]:
    return list(await app[DB].read(lambda tx: tx.all("SELECT channel, kind, text FROM messages ORDER BY id")))


async def test_replay_signs_and_posts_like_twilio(
    hub: tuple[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base, app = hub
    monkeypatch.setenv("HUB_CHANNELS__TWILIO__AUTH_TOKEN", TOKEN)
    url = base + "/webhooks/twilio/sms"
    sample = str(SAMPLES / "sms_inbound.txt")
    assert await cli("webhooks", "replay", sample, "--url", url) == 0
    assert await cli("webhooks", "replay", sample, "--url", url) == 0  # a retry: not stored twice
    assert await cli("webhooks", "replay", sample, "--url", url, "--fresh") == 0  # a new event
    assert "200 <?xml" in capsys.readouterr().out
    assert [m["text"] for m in await messages(app)] == [read_payload(SAMPLES / "sms_inbound.txt")["Body"]] * 2

    monkeypatch.setenv("HUB_CHANNELS__TWILIO__AUTH_TOKEN", "the-wrong-token")
    assert await cli("webhooks", "replay", sample, "--url", url, "--fresh") == 1
    assert "403" in capsys.readouterr().out
    monkeypatch.delenv("HUB_CHANNELS__TWILIO__AUTH_TOKEN")
    assert await cli("webhooks", "replay", sample, "--url", url) == 2
    assert "auth_token is empty" in capsys.readouterr().err


async def test_every_sample_is_accepted(hub: tuple[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    base, app = hub
    monkeypatch.setenv("HUB_CHANNELS__TWILIO__AUTH_TOKEN", TOKEN)
    samples = sorted(SAMPLES.glob("*.txt"))
    assert len(samples) >= 15
    for path in samples:
        assert await cli("webhooks", "replay", str(path), "--url", base + route(path.stem)) == 0, path.name
    kinds = {(m["channel"], m["kind"]) for m in await messages(app)}
    assert kinds == {("sms", "text"), ("whatsapp", "text"), ("voice", "call"), ("voice", "voicemail")}
    token = await create_token(app[DB], "admin")
    assert token  # the hub is still healthy and writable after every sample


def test_fresh_replays_keep_related_ids_consistent() -> None:
    params = read_payload(Path(SAMPLES / "mms_inbound.txt"))
    fresh = freshen(params)
    assert fresh["MessageSid"] == fresh["SmsSid"] == fresh["SmsMessageSid"] != params["MessageSid"]
    assert fresh["MessageSid"].startswith("MM"), "an MMS keeps its MM prefix"
