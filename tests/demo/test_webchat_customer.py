"""`hub demo`'s web chat visitors talk over the widget's real WebSocket: Jordan, signed in by the shop, lands on the
customer the hub already knows by phone and email (one timeline), reads an agent's reply and answers it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from hub.app import build_app
from hub.demo.runner import JORDAN, _customer_on_file, demo_settings
from hub.demo.webchat_customer import WebchatVisitor
from hub.history import store
from hub.history.db import Tx
from hub.history.schema import migrate
from hub.keys import DB, OUTBOX
from hub.model import Identity, Message


async def test_signed_in_visitor_joins_the_known_customer_and_answers_replies(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = demo_settings(tmp_path)
    settings.channels.telegram.enabled = settings.channels.email.enabled = False
    client: TestClient[Any, Any] = await aiohttp_client(build_app(settings))
    db = client.app[DB]
    await migrate(db)
    await db.write(_customer_on_file)
    url = str(client.make_url("")).rstrip("/")
    name, email, phone = JORDAN
    jordan = WebchatVisitor(url, name, ["Hi, it's Jordan again"], answers=["Great, thanks"], email=email,
                            identity_secret=settings.channels.webchat.identity_secret)
    task = asyncio.create_task(jordan.run(interval=0.05))

    def chat(tx: Tx) -> list[Message]:
        customer = store.customer_by_identity(tx, Identity("phone", phone))
        assert customer is not None
        return [m for m, _agent in store.channel_history(tx, customer, "webchat", 50)]

    async def until(n: int) -> list[Message]:
        deadline = time.monotonic() + 20
        found: list[Message] = []
        while len(found := await db.read(chat)) < n:
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.05)
        return found

    try:
        [first] = await until(1)
        assert first.identity == f"email:{email}" and first.meta["webchat"]["verified"] is True
        await client.app[OUTBOX].reply(first.conversation_id, "It ships today!")
        timeline = await until(3)
        assert [(m.direction, m.text) for m in timeline] == [
            ("in", "Hi, it's Jordan again"), ("out", "It ships today!"), ("in", "Great, thanks")]
        assert jordan.received == ["It ships today!"]
    finally:
        task.cancel()
