"""`hub demo`'s emailing customer: her mail is parsed and ingested for real, and she answers replies in-thread."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from hub.app import build_app
from hub.channels.email.channel import EmailChannel
from hub.demo.runner import EmailCustomer, demo_settings
from hub.history import store
from hub.keys import CHANNELS, DB, OUTBOX


async def test_demo_email_customer_is_ingested_and_answers_in_the_thread(tmp_path: Path, aiohttp_client: Any) -> None:
    settings = demo_settings(tmp_path)
    settings.channels.telegram.enabled = False
    client = await aiohttp_client(build_app(settings))
    app = client.app
    channel = app[CHANNELS]["email"]
    assert isinstance(channel, EmailChannel)
    chloe = EmailCustomer(channel, settings.channels.email.smtp_port)
    assert chloe.start_mail_server()
    task = asyncio.create_task(chloe.run(interval=0.2))
    try:
        db = app[DB]

        async def conversations() -> list[Any]:
            return await db.read(lambda tx: tx.all("SELECT id FROM conversations"))

        deadline = time.monotonic() + 30
        while not await conversations():
            assert time.monotonic() < deadline, "the customer's first email never arrived"
            await asyncio.sleep(0.1)
        (conv,) = await conversations()
        first = (await db.read(lambda tx: store.conversation_messages(tx, conv["id"])))[0]
        assert first.channel == "email" and first.identity == "email:chloe@example.fr"
        assert first.html is not None and "<script" not in first.html and "tracker" not in first.html
        assert first.text.endswith("Can you send a new one?"), "signature trimmed for display"

        await app[OUTBOX].reply(conv["id"], "A new one ships today.")
        deadline = time.monotonic() + 60
        while True:
            msgs = await db.read(lambda tx: store.conversation_messages(tx, conv["id"]))
            inbound = [m for m in msgs if m.direction == "in" and m.channel == "email"]
            if len(inbound) >= 2:
                break
            assert time.monotonic() < deadline, f"no threaded answer: {[(m.kind, m.status) for m in msgs]}"
            await asyncio.sleep(0.1)
        answer = inbound[1]
        assert answer.text == "Merci ! That helps."
        ours = next(m for m in msgs if m.direction == "out" and m.text == "A new one ships today.")
        assert ours.status == "sent" and ours.external_id in answer.meta["email"]["refs"]
        assert len(await conversations()) == 1
    finally:
        task.cancel()
        await chloe.stop_async()
