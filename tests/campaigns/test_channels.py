"""Campaigns on Telegram (the Bot API simulator, through python-telegram-bot) and by email (a real SMTP server,
aiosmtpd), on SQLite and PostgreSQL: each recipient gets their text once, an email with the campaign's own subject,
and a customer's answer comes back into a conversation through the inbound path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.config import Settings
from hub.keys import CHANNELS, DB
from tests.api.client import Api, start_api
from tests.channels.conftest import email_env
from tests.channels.email.test_channel import MailServer, email
from tests.channels.telegram.fake import FakeBotApi
from tests.waiting import eventually

Client = TestClient[Any, Any]
C = "/api/v1/campaigns"
TOKEN = "123456789:AAHZFMHno3mzVLErU5b5jJvaeG--qUyLyG0"
SECRET = "s3cret-telegram-webhook-token"
ANN = {"id": 1111111, "is_bot": False, "first_name": "Ann", "username": "ann"}
BOB = {"id": 2222222, "is_bot": False, "first_name": "Bob", "username": "bob"}


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi(TOKEN)
    await api.start()
    yield api
    await api.close()


async def test_a_telegram_campaign_reaches_each_chat_once_and_a_reply_comes_back(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, bot_api: FakeBotApi
) -> None:
    api = await start_api(aiohttp_client, make_settings(db_url, **{
        "HUB_CHANNELS__TELEGRAM__ENABLED": "true", "HUB_CHANNELS__TELEGRAM__BOT_TOKEN": TOKEN,
        "HUB_CHANNELS__TELEGRAM__WEBHOOK_SECRET": SECRET, "HUB_CHANNELS__TELEGRAM__API_URL": bot_api.base_url,
        "HUB_CHANNELS__TELEGRAM__FILE_URL": bot_api.file_url, "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.1"}))
    bot_api.webhook = {"url": str(api.client.make_url("/webhooks/telegram")), "secret_token": SECRET}
    for user in (ANN, BOB):
        assert await bot_api.user_writes(TOKEN, user, "hello") == 200
    made = await api.call("POST", C, C, {
        "name": "Launch", "channel": "telegram", "text": "{{first_name}}, we launched!",
        "csv": "telegram:1111111\ntelegram:2222222\ntelegram:1111111\n"}, expect=201)
    assert made["rate_per_minute"] == 1200

    async def sent() -> list[Any] | None:
        got = bot_api.sent("sendMessage")
        return got if len(got) >= 2 else None

    messages = await eventually(sent, what="the campaign on Telegram")
    assert sorted((int(m.params["chat_id"]), m.params["text"]) for m in messages) == [
        (1111111, "Ann, we launched!"), (2222222, "Bob, we launched!")]
    await eventually(lambda: _status(api, made["id"], "done"), what="the campaign done")
    done = await eventually(lambda: _results(api, made["id"], "sent", 2), what="both sent")
    assert (done["sent"], done["skipped"]) == (2, 1)

    assert await bot_api.user_writes(TOKEN, ANN, "Nice! How much is it?") == 200
    got = await eventually(lambda: _replied(api, made["id"]), what="the reply counted")
    assert got["replied"] == 1
    assert len(bot_api.sent("sendMessage")) == 2, "nobody twice"


async def _status(api: Api, cid: int, status: str) -> dict[str, Any] | None:
    got = await api.call("GET", f"{C}/{{id}}", f"{C}/{cid}")
    return got if got["status"] == status else None


async def _results(api: Api, cid: int, key: str, n: int) -> dict[str, Any] | None:
    got = (await api.call("GET", f"{C}/{{id}}", f"{C}/{cid}"))["results"]
    return got if got[key] >= n else None


async def _replied(api: Api, cid: int) -> dict[str, Any] | None:
    got = (await api.call("GET", f"{C}/{{id}}", f"{C}/{cid}"))["results"]
    return got if got["replied"] else None


async def test_an_email_campaign_has_its_own_subject_and_skips_who_cannot_get_it(
    aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, smtp: tuple[MailServer, int]
) -> None:
    api = await start_api(aiohttp_client, make_settings(db_url, **email_env(smtp[1])))
    channel = api.client.app[CHANNELS]["email"]
    assert await channel.receive(email("Ann Lee <ann@example.com>", "Order #1042", "Where is it?",  # type: ignore[attr-defined]
                                       "ann.1@example.com")) == "stored"
    body = {"name": "Winter", "channel": "email", "subject": "{{first_name}}, our winter sale",
            "text": "Dear {{name}},\n\n20% off until Friday.",
            "identities": ["email:ann@example.com", "email:new@example.com", "phone:+14155550100"]}
    shown = await api.call("POST", f"{C}/preview", f"{C}/preview", body)
    assert [r["identity"] for r in shown["recipients"]] == ["email:ann@example.com"]
    assert sorted(s["reason"] for s in shown["skipped_sample"]) == [
        "a phone identity cannot be reached on email", "no value for {{name}} and no fallback"]
    made = await api.call("POST", C, C, body, expect=201)

    async def received() -> list[EmailMessage] | None:
        return smtp[0].received or None

    [out] = await eventually(received, what="the campaign email")
    assert out["Subject"] == "Ann, our winter sale" and out["To"] == "ann@example.com"
    plain = out.get_body(("plain",))
    assert isinstance(plain, EmailMessage) and "Dear Ann Lee," in str(plain.get_content())
    await eventually(lambda: _status(api, made["id"], "done"), what="the campaign done")
    done = await eventually(lambda: _results(api, made["id"], "sent", 1), what="sent")
    assert (done["sent"], done["skipped"]) == (1, 2)

    # Her answer threads onto the conversation the campaign was written on, and opens it for an agent.
    reply = email("ann@example.com", f"Re: {out['Subject']}", "Is it online too?", "ann.2@example.com",
                  out["Message-ID"], out["Message-ID"])
    assert await channel.receive(reply) == "stored"  # type: ignore[attr-defined]
    got = await eventually(lambda: _replied(api, made["id"]), what="the reply counted")
    assert got["replied"] == 1
    rows = await api.client.app[DB].read(lambda tx: tx.all(
        "SELECT conversation_id, direction FROM messages ORDER BY id"))
    assert len({r["conversation_id"] for r in rows}) == 1, "one conversation: the order, the campaign, the answer"
    status = await api.client.app[DB].read(lambda tx: tx.one("SELECT status FROM conversations"))
    assert status["status"] == "open"
