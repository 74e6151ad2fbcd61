"""The outbound path through the real API channel to a real local webhook server: retries, failures, restarts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from hub.channel_host import ChannelHost
from hub.channels.api import ApiChannel
from hub.channels.base import Capabilities, Channel
from hub.config import ApiChannelSettings, OutboxSettings, Settings
from hub.events import MemoryBus
from hub.history import store
from hub.history.db import Database
from hub.ingest import Ingest
from hub.metrics import Metrics
from hub.model import AttachmentIn, Identity, Inbound
from hub.outbox import Outbox, ReplyError, backoff

SECRET = "webhook-secret"


class Webhook:
    """A partner system's endpoint: answers from a script of statuses and records what it received."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.slow: dict[str, float] = {}  # text -> seconds the endpoint takes to answer it
        self.received: list[dict[str, Any]] = []
        self.signatures_ok: list[bool] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(self.slow.get(json.loads(body).get("text", ""), 0.0))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        self.signatures_ok.append(hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")))
        self.received.append(json.loads(body))
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            return web.json_response({"id": f"partner-{len(self.received)}"})
        return web.Response(status=status, text=f"scripted {status}")


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def webhook(aiohttp_server: Any) -> tuple[Webhook, str]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = await aiohttp_server(app)
    return hook, str(server.make_url("/hook"))


@pytest.fixture
async def world(
    db: Database, webhook: tuple[Webhook, str], make_settings: Callable[..., Settings], db_url: str
) -> AsyncIterator[dict[str, Any]]:
    settings = make_settings(db_url)
    ingest = Ingest(db, settings, MemoryBus(), Metrics())
    clock = Clock()
    outbox_settings = OutboxSettings(max_attempts=4, base_delay_seconds=2, max_delay_seconds=60)
    bus = MemoryBus()
    channels: dict[str, Channel] = {}

    def make_outbox() -> Outbox:
        return Outbox(db, channels, outbox_settings, bus, Metrics(), clock=clock, rng=random.Random(7))

    outbox = make_outbox()
    channel = ApiChannel(ChannelHost(ingest, outbox), ApiChannelSettings(webhook_url=webhook[1], webhook_secret=SECRET))
    channels["api"] = channel
    await channel.start()

    first = await ingest.ingest(
        Inbound(channel="api", identity=Identity("phone", "+14155550100"), text="hi", external_id="in-1")
    )
    yield {"outbox": outbox, "make_outbox": make_outbox, "clock": clock, "hook": webhook[0],
           "conversation": first.conversation.id, "bus": bus, "ingest": ingest}
    await channel.stop()


async def message(db: Database, mid: int) -> Any:
    return await db.read(lambda tx: store.message(tx, mid))


async def test_reply_is_sent_signed_with_provider_id(db: Database, world: dict[str, Any]) -> None:
    outbox, hook = world["outbox"], world["hook"]
    sub = world["bus"].subscribe()
    msg = await outbox.reply(world["conversation"], "Your order ships today")
    assert msg.status == "queued" and msg.direction == "out" and msg.channel == "api"
    assert await outbox.drain() == 1
    sent = await message(db, msg.id)
    assert sent.status == "sent" and sent.external_id == "partner-1"
    assert hook.received[0]["text"] == "Your order ships today"
    assert hook.received[0]["to"] == "phone:+14155550100"
    assert hook.signatures_ok == [True]
    events = [sub.queue.get_nowait().type for _ in range(sub.queue.qsize())]
    assert events == ["message.created", "message.status"]


async def test_transient_errors_back_off_then_succeed(db: Database, world: dict[str, Any]) -> None:
    outbox, hook, clock = world["outbox"], world["hook"], world["clock"]
    hook.script = [503, 429]
    msg = await outbox.reply(world["conversation"], "retry me")
    await outbox.drain()
    pending = await message(db, msg.id)
    assert pending.status == "queued" and "retrying: webhook answered 503" in (pending.status_reason or "")
    assert await outbox.drain() == 0, "not due again before its backoff"
    clock.t += 61
    await outbox.drain()
    clock.t += 61
    await outbox.drain()
    done = await message(db, msg.id)
    assert done.status == "sent" and done.status_reason is None
    assert len(hook.received) == 3


async def test_permanent_error_fails_with_reason(db: Database, world: dict[str, Any]) -> None:
    outbox, hook = world["outbox"], world["hook"]
    hook.script = [400]
    msg = await outbox.reply(world["conversation"], "bad")
    await outbox.drain()
    failed = await message(db, msg.id)
    assert failed.status == "failed" and "webhook answered 400: scripted 400" in (failed.status_reason or "")
    assert len(hook.received) == 1, "a permanent error is not retried"


async def test_gives_up_after_max_attempts(db: Database, world: dict[str, Any]) -> None:
    outbox, hook, clock = world["outbox"], world["hook"], world["clock"]
    hook.script = [500] * 10
    msg = await outbox.reply(world["conversation"], "doomed")
    for _ in range(6):
        await outbox.drain()
        clock.t += 61
    failed = await message(db, msg.id)
    assert failed.status == "failed" and "gave up after 4 attempts" in (failed.status_reason or "")
    assert len(hook.received) == 4


async def test_retries_survive_a_restart(db: Database, world: dict[str, Any]) -> None:
    hook, clock = world["hook"], world["clock"]
    hook.script = [502]
    msg = await world["outbox"].reply(world["conversation"], "survive")
    await world["outbox"].drain()
    restarted = world["make_outbox"]()  # a new process: only the database carries over
    clock.t += 61
    assert await restarted.drain() == 1
    assert (await message(db, msg.id)).status == "sent"


async def test_a_crashed_sender_lease_expires(db: Database, world: dict[str, Any]) -> None:
    clock = world["clock"]
    msg = await world["outbox"].reply(world["conversation"], "claimed then crashed")
    claimed = await world["outbox"]._claim(10)  # a process claims it and dies before sending
    assert [d.outbound.message_id for d in claimed] == [msg.id]
    other = world["make_outbox"]()
    assert await other.drain() == 0, "still leased to the dead process"
    clock.t += 61
    assert await other.drain() == 1
    assert (await message(db, msg.id)).status == "sent"


async def test_a_conversations_replies_arrive_in_the_order_they_were_written(
        db: Database, world: dict[str, Any]) -> None:
    """Sends run concurrently, but never two of one conversation: a slow first reply is not overtaken by the next."""
    outbox, hook = world["outbox"], world["hook"]
    hook.slow = {"One moment, checking.": 0.3}
    other = (await world["ingest"].ingest(Inbound(channel="api", identity=Identity("phone", "+14155550111"),
                                                  text="hello", external_id="in-2"))).conversation.id
    for text in ("One moment, checking.", "Found it: it ships today.", "Anything else?"):
        await outbox.reply(world["conversation"], text)
    await outbox.reply(other, "Hi! How can I help?")
    for _ in range(5):
        await outbox.drain()
    texts = [r["text"] for r in hook.received]
    mine = [t for t in texts if t != "Hi! How can I help?"]
    assert mine == ["One moment, checking.", "Found it: it ships today.", "Anything else?"]
    assert texts[0] == "Hi! How can I help?", "another conversation is not held behind a slow send"


async def test_a_reply_being_retried_holds_the_ones_after_it(db: Database, world: dict[str, Any]) -> None:
    outbox, hook, clock = world["outbox"], world["hook"], world["clock"]
    hook.script = [503]
    first = await outbox.reply(world["conversation"], "Your refund is on its way.")
    second = await outbox.reply(world["conversation"], "It takes 3 to 5 days.")
    await outbox.drain()
    assert [r["text"] for r in hook.received] == ["Your refund is on its way."]
    assert (await message(db, second.id)).status == "queued", "not sent before the one written first"
    clock.t += 61
    await outbox.drain()
    assert [r["text"] for r in hook.received] == ["Your refund is on its way.", "Your refund is on its way.",
                                                  "It takes 3 to 5 days."]
    assert (await message(db, first.id)).status == (await message(db, second.id)).status == "sent"


async def test_a_reply_that_failed_for_good_no_longer_holds_the_next(db: Database, world: dict[str, Any]) -> None:
    outbox, hook = world["outbox"], world["hook"]
    hook.script = [400]
    first = await outbox.reply(world["conversation"], "bad")
    second = await outbox.reply(world["conversation"], "good")
    await outbox.drain()
    assert (await message(db, first.id)).status == "failed"
    assert (await message(db, second.id)).status == "sent"


async def test_reply_refusals_are_clear(world: dict[str, Any]) -> None:
    outbox = world["outbox"]
    with pytest.raises(ReplyError, match="channel 'sms' is not configured"):
        await outbox.reply(world["conversation"], "hi", channel="sms")
    with pytest.raises(ReplyError, match="allows at most 100000"):
        await outbox.reply(world["conversation"], "x" * 100_001)
    with pytest.raises(ReplyError, match="empty"):
        await outbox.reply(world["conversation"], "   ")


async def test_reply_with_files_sends_them_and_refuses_what_it_cannot(db: Database, world: dict[str, Any]) -> None:
    outbox, hook = world["outbox"], world["hook"]
    pdf = b"%PDF-1.4 invoice" * 100
    msg = await outbox.reply(world["conversation"], "", attachments=[
        AttachmentIn("../../etc/invoice.pdf", "application/pdf", pdf)])
    assert [(a.filename, a.size, a.status) for a in msg.attachments] == [("invoice.pdf", len(pdf), "stored")]
    assert await outbox.drain() == 1
    sent = hook.received[0]["attachments"]
    assert [(f["filename"], f["content_type"], base64.b64decode(f["data_base64"])) for f in sent] == [
        ("invoice.pdf", "application/pdf", pdf)]
    with pytest.raises(ReplyError, match=r"over outbox\.max_attachment_bytes"):
        big = OutboxSettings(max_attachment_bytes=10)
        too_big = Outbox(db, outbox.channels, big, MemoryBus(), Metrics())
        await too_big.reply(world["conversation"], "x", attachments=[AttachmentIn("a.bin", "x/y", b"0" * 11)])
    with pytest.raises(ReplyError, match="is empty"):
        await outbox.reply(world["conversation"], "x", attachments=[AttachmentIn("a.bin", "x/y", b"")])
    with pytest.raises(ReplyError, match="at most 10"):
        await outbox.reply(world["conversation"], "x", attachments=[AttachmentIn("a", "x/y", b"1")] * 11)


async def test_a_channel_without_media_refuses_files(db: Database, world: dict[str, Any]) -> None:
    class TextOnly(ApiChannel):
        name = "textonly"
        capabilities = Capabilities(max_text_length=160)

    outbox = world["outbox"]
    outbox.channels["textonly"] = TextOnly(ChannelHost(world["ingest"], outbox), ApiChannelSettings())
    with pytest.raises(ReplyError, match=r"channel textonly cannot carry files; channels that can: api$"):
        await outbox.reply(world["conversation"], "x", channel="textonly",
                           attachments=[AttachmentIn("a.png", "image/png", b"png")])
    # A note may carry files whatever the channels can do: it never leaves the hub.
    note = await outbox.reply(world["conversation"], "", note=True, attachments=[AttachmentIn("a.png", "image/png",
                                                                                             b"png")])
    assert note.kind == "note" and len(note.attachments) == 1


async def test_note_is_internal_and_never_sent(db: Database, world: dict[str, Any]) -> None:
    note = await world["outbox"].reply(world["conversation"], "customer sounds upset", note=True)
    assert note.kind == "note" and note.status == "internal"
    assert await world["outbox"].drain() == 0
    assert world["hook"].received == []


async def test_status_callbacks_only_move_forward(db: Database, world: dict[str, Any]) -> None:
    outbox = world["outbox"]
    msg = await outbox.reply(world["conversation"], "track me")
    await outbox.drain()
    assert await outbox.update_status("api", "partner-1", "delivered")
    assert not await outbox.update_status("api", "partner-1", "sent"), "late 'sent' must not undo 'delivered'"
    assert (await message(db, msg.id)).status == "delivered"
    assert await outbox.update_status("api", "partner-1", "read")
    assert not await outbox.update_status("api", "unknown-id", "delivered")


def test_backoff_is_capped_and_jittered() -> None:
    s = OutboxSettings(base_delay_seconds=1, max_delay_seconds=30)
    rng = random.Random(1)
    delays = [backoff(n, s, rng) for n in range(1, 12)]
    assert all(0.5 <= d <= 30 for d in delays)
    assert delays[0] <= 1 and max(delays[-3:]) > 15
    assert len({round(d, 6) for d in delays}) == len(delays), "jittered"
