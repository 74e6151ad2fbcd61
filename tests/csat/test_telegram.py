"""Satisfaction surveys on Telegram: the survey goes out with one inline button per score (python-telegram-bot's real
types, to the local Bot API simulator), and a press comes back as a callback_query update on the webhook, with the
webhook's secret, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import BUS, CSAT, DB
from tests.channels.telegram.fake import FakeBotApi
from tests.waiting import eventually

Client = TestClient[Any, Any]
TOKEN = "123456789:AAHZFMHno3mzVLErU5b5jJvaeG--qUyLyG0"
SECRET = "s3cret-telegram-webhook-token"
ANN = {"id": 1111111, "is_bot": False, "first_name": "Ann", "username": "ann"}


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi(TOKEN)
    await api.start()
    yield api
    await api.close()


@pytest.fixture
async def tg(aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, bot_api: FakeBotApi) -> Client:
    settings = make_settings(db_url, **{
        "HUB_CHANNELS__TELEGRAM__ENABLED": "true",
        "HUB_CHANNELS__TELEGRAM__BOT_TOKEN": TOKEN,
        "HUB_CHANNELS__TELEGRAM__WEBHOOK_SECRET": SECRET,
        "HUB_CHANNELS__TELEGRAM__API_URL": bot_api.base_url,
        "HUB_CHANNELS__TELEGRAM__FILE_URL": bot_api.file_url,
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.1",
        "HUB_ROUTING__QUEUES__SUPPORT__CSAT": "true",
        "HUB_CSAT__POLL_INTERVAL_SECONDS": "3600",
    })
    c: Client = await aiohttp_client(build_app(settings))
    # Telegram posts to the hub's webhook with the secret it was given, as after `hub telegram set-webhook`.
    bot_api.webhook = {"url": str(c.make_url("/webhooks/telegram")), "secret_token": SECRET}
    return c


async def survey_row(client: Client) -> Any:
    return await client.app[DB].read(lambda tx: tx.one("SELECT * FROM csat_surveys"))


async def test_a_survey_button_press_is_the_answer(tg: Client, bot_api: FakeBotApi) -> None:
    sent: list[dict[str, Any]] = []

    async def listen(token: str, chat_id: int, message: dict[str, Any]) -> None:
        sent.append(message)

    bot_api.listeners.append(listen)
    admin = {"Authorization": f"Bearer {await create_token(tg.app[DB], 'admin')}"}
    assert await bot_api.user_writes(TOKEN, ANN, "My parcel is late") == 200
    conv = (await tg.app[DB].read(lambda tx: tx.one("SELECT id FROM conversations")))["id"]
    resp = await tg.post(f"/api/v1/conversations/{conv}/resolve", headers=admin)
    assert resp.status == 200
    assert await tg.app[CSAT].run_once() == 1

    [question] = await eventually(lambda: _async(sent), what="the survey on Telegram")
    keyboard = question["reply_markup"]["inline_keyboard"]
    survey = await survey_row(tg)
    assert [[(b["text"], b["callback_data"]) for b in row] for row in keyboard] == [
        [(str(n), f"csat:{survey['id']}:{n}") for n in range(1, 6)]
    ]
    assert "Tap a score below" in question["text"]

    live = tg.app[BUS].subscribe()
    assert await bot_api.user_presses(TOKEN, ANN, question, keyboard[0][4]["callback_data"]) == 200
    seen = [e async for e in _until(live, "csat.received")]
    assert seen[-1].data["score"] == 5 and seen[-1].data["low"] is False and seen[-1].data["conversation_id"] == conv
    live.close()
    survey = await survey_row(tg)
    assert (survey["status"], survey["score"]) == ("answered", 5)
    [answered] = bot_api.sent("answerCallbackQuery")
    assert answered.params["text"] == "Thank you for your answer (5/5)!"
    [edit] = bot_api.sent("editMessageReplyMarkup")
    assert int(edit.params["message_id"]) == question["message_id"], "the buttons are taken away"
    detail = await (await tg.get(f"/api/v1/conversations/{conv}", headers=admin)).json()
    assert detail["status"] == "resolved"
    assert detail["messages"][-1]["text"] == "5/5" and detail["messages"][-1]["meta"]["csat"]["score"] == 5
    assert detail["csat"]["score"] == 5 and detail["csat"]["status"] == "answered"

    # A second press (another button, before the keyboard went away) is kept, ignored, and said so.
    assert await bot_api.user_presses(TOKEN, ANN, question, keyboard[0][0]["callback_data"]) == 200
    assert (await survey_row(tg))["score"] == 5
    assert bot_api.sent("answerCallbackQuery")[-1].params["text"] == "Thank you, we already have your answer."
    received = await tg.app[DB].read(lambda tx: tx.all("SELECT id FROM hub_events WHERE type = 'csat.received'"))
    assert len(received) == 1
    conversations = await tg.app[DB].read(lambda tx: tx.all("SELECT id FROM conversations"))
    assert len(conversations) == 1


async def test_a_press_without_the_webhook_secret_is_refused(tg: Client, bot_api: FakeBotApi) -> None:
    bot_api.webhook = {"url": str(tg.make_url("/webhooks/telegram")), "secret_token": "not-the-secret-token"}
    message = {"message_id": 9, "date": 0, "chat": {"id": ANN["id"], "type": "private"}, "text": "?"}
    assert await bot_api.user_presses(TOKEN, ANN, message, "csat:1:1") == 403
    assert await tg.app[DB].read(lambda tx: tx.all("SELECT id FROM journal")) == []


async def _async(items: list[Any]) -> list[Any]:
    return items


async def _until(sub: Any, kind: str) -> AsyncIterator[Any]:
    """Events from SUB up to and including the first of type KIND (within 10 s)."""
    async with asyncio.timeout(10):
        async for e in sub:
            yield e
            if e.type == kind:
                return
