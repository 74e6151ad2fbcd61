"""`hub demo`'s Telegram customer: her messages reach the hub through the real webhook (registered with the library's
Bot against the Bot API simulator), agents' replies reach her through the real Bot, and she answers them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from hub.app import build_app
from hub.demo import telegram_customer as telegram_demo
from hub.demo.runner import demo_settings
from hub.history import store
from hub.history.db import Tx
from hub.keys import DB, OUTBOX
from hub.model import Identity, Message


async def test_demo_telegram_customer_gets_replies_and_answers(tmp_path: Path, aiohttp_client: Any) -> None:
    settings = demo_settings(tmp_path)
    settings.channels.email.enabled = False
    demo = await telegram_demo.start(settings, "127.0.0.1")
    assert demo is not None and settings.channels.telegram.api_url == demo.simulator.base_url
    try:
        client: TestClient[Any, Any] = await aiohttp_client(build_app(settings))
        assert "webhook set to" in await demo.register_webhook(str(client.make_url("")))
        demo.answer_delay = 0.05
        assert await demo.write(telegram_demo.SCRIPT[0]) == 200

        def lena(tx: Tx) -> list[Message]:
            customer = store.customer_by_identity(tx, Identity("telegram", str(telegram_demo.CUSTOMER["id"])))
            if customer is None:
                return []
            return [m for m, _agent in store.channel_history(tx, customer, "telegram", 50)]

        [first] = await client.app[DB].read(lena)
        await client.app[OUTBOX].reply(first.conversation_id, "Yes! I changed it to L for you.")
        deadline = time.monotonic() + 30
        while len(await client.app[DB].read(lena)) < 3:
            assert time.monotonic() < deadline, await client.app[DB].read(lena)
            await asyncio.sleep(0.1)
        timeline = await client.app[DB].read(lena)
        assert [(m.direction, m.text, m.status) for m in timeline] == [
            ("in", telegram_demo.SCRIPT[0], "received"),
            ("out", "Yes! I changed it to L for you.", "sent"),
            ("in", telegram_demo.ANSWERS[0], "received"),
        ]
        assert demo.received == ["Yes! I changed it to L for you."]
        [call] = demo.simulator.sent("sendMessage")
        assert call.token == telegram_demo.TOKEN and call.params["chat_id"] == str(telegram_demo.CUSTOMER["id"])
    finally:
        await demo.close()


async def test_demo_telegram_customer_answers_the_satisfaction_survey(tmp_path: Path, aiohttp_client: Any) -> None:
    from datetime import timedelta

    from hub import event_log
    from hub.keys import CSAT
    from hub.model import format_time, utcnow

    settings = demo_settings(tmp_path)
    settings.channels.email.enabled = False
    assert settings.routing.queues["support"].csat, "the demo's queues survey"
    demo = await telegram_demo.start(settings, "127.0.0.1")
    assert demo is not None
    try:
        client: TestClient[Any, Any] = await aiohttp_client(build_app(settings))
        await demo.register_webhook(str(client.make_url("")))
        demo.answer_delay = 0.05
        assert await demo.write(telegram_demo.SCRIPT[0]) == 200
        conv = int((await client.app[DB].read(lambda tx: tx.one("SELECT id FROM conversations")))["id"])
        await client.app[DB].write(lambda tx: event_log.resolve(tx, conv, format_time(utcnow())))
        sender = client.app[CSAT]
        sender.clock = lambda: format_time(utcnow() + timedelta(seconds=10))  # past the demo's 5 s delay
        assert await sender.run_once() == 1
        deadline = time.monotonic() + 30
        while True:
            row = await client.app[DB].read(lambda tx: tx.one("SELECT status, score FROM csat_surveys"))
            if row["status"] == "answered":
                break
            assert time.monotonic() < deadline, dict(row)
            await asyncio.sleep(0.1)
        assert 1 <= row["score"] <= 5
        assert demo.simulator.sent("answerCallbackQuery")
    finally:
        await demo.close()
