"""The Telegram channel through the real app and store: the webhook guide's updates posted with and without the
secret, files fetched from a local Bot API, replies sent with the library's Bot, 429 flood control, polling."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.api.auth import create_token
from hub.app import build_app
from hub.channels.telegram.channel import SECRET_HEADER, SendPacer, TelegramChannel
from hub.config import Settings
from hub.history import store
from hub.history.db import Tx
from hub.keys import CHANNELS, DB, OUTBOX
from hub.model import format_time, utcnow
from tests.channels.telegram.fake import FakeBotApi
from tests.waiting import eventually

Client = TestClient[Any, Any]
TOKEN = "123456789:AAHZFMHno3mzVLErU5b5jJvaeG--qUyLyG0"
SECRET = "s3cret-telegram-webhook-token"
UPDATES = Path(__file__).parents[3] / "webhooks" / "telegram"
ROOT = Path(__file__).parents[3]


def update(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((UPDATES / f"{name}.json").read_text())
    return data


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi(TOKEN)
    await api.start()
    yield api
    await api.close()


def tg_env(fake: FakeBotApi, **more: str) -> dict[str, str]:
    return {
        "HUB_CHANNELS__TELEGRAM__ENABLED": "true",
        "HUB_CHANNELS__TELEGRAM__BOT_TOKEN": TOKEN,
        "HUB_CHANNELS__TELEGRAM__WEBHOOK_SECRET": SECRET,
        "HUB_CHANNELS__TELEGRAM__API_URL": fake.base_url,
        "HUB_CHANNELS__TELEGRAM__FILE_URL": fake.file_url,
        "HUB_OUTBOX__BASE_DELAY_SECONDS": "0.2",
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.2",
        **more,
    }


@pytest.fixture
def tg_settings(make_settings: Callable[..., Settings], db_url: str, fake: FakeBotApi) -> Settings:
    return make_settings(db_url, **tg_env(fake))


@pytest.fixture
async def tg(aiohttp_client: Any, tg_settings: Settings) -> Client:
    c: Client = await aiohttp_client(build_app(tg_settings))
    return c


@pytest.fixture
async def admin(tg: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_token(tg.app[DB], 'admin')}"}


async def post(client: Client, body: Any, secret: str | None = SECRET) -> tuple[int, Any]:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    resp = await client.post("/webhooks/telegram", json=body, headers=headers)
    return resp.status, await resp.json()


async def journal(client: Client) -> list[dict[str, Any]]:
    rows = await client.app[DB].read(
        lambda tx: tx.all("SELECT dedupe_key, status, error FROM journal WHERE channel = 'telegram' ORDER BY id")
    )
    return [dict(r) for r in rows]


async def timeline(client: Client, admin: dict[str, str], identity: str = "telegram:1111111") -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/customers", params={"identity": identity}, headers=admin)
    found = (await resp.json())["items"]
    if not found:
        return []
    resp = await client.get(f"/api/v1/customers/{found[0]['id']}/timeline", headers=admin)
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


# -- authentication --------------------------------------------------------------------------------------------


async def test_missing_or_wrong_secret_is_rejected_and_nothing_stored(tg: Client, admin: dict[str, str]) -> None:
    status, body = await post(tg, update("text"), secret=None)
    assert status == 401 and SECRET_HEADER in body["error"]["message"]
    status, body = await post(tg, update("text"), secret="not-the-secret-at-all")
    assert status == 403 and "does not match" in body["error"]["message"]
    status, body = await post(tg, update("text"), secret=SECRET[:-1])
    assert status == 403
    assert await journal(tg) == []
    assert await timeline(tg, admin) == []


# -- the guide's updates ---------------------------------------------------------------------------------------


async def test_every_example_update_lands_or_is_ignored(tg: Client, admin: dict[str, str]) -> None:
    expected = {
        "text": "stored", "forwarded": "stored", "reply": "stored", "edited": "edited", "entities": "stored",
        "audio": "stored", "voice": "stored", "document": "stored", "photo": "stored", "contact": "stored",
        "location": "stored", "sticker": "stored", "inline_query": "ignored", "callback_query": "ignored",
        "channel_post": "ignored",
        # groups = "ignore" (the default): group messages are journaled and dropped (tests/channels/
        # test_bots.py takes them with groups = "accept")
        "group_text": "ignored", "supergroup_reply": "ignored", "supergroup_edited": "ignored",
        "supergroup_anonymous_admin": "ignored", "group_member_joined": "ignored",
        "group_migrate_to": "ignored", "supergroup_migrate_from": "ignored", "supergroup_upgraded_text": "ignored",
    }
    assert {p.stem for p in UPDATES.glob("*.json")} == set(expected)
    for name, outcome in expected.items():
        status, body = await post(tg, update(name))
        assert status == 200, (name, body)
        assert body == {"ok": True, "status": outcome}, name

    items = await timeline(tg, admin)
    by_id = {m["meta"]["telegram"]["message_id"]: m for m in items}
    assert len(items) == 11 and all(m["channel"] == "telegram" and m["direction"] == "in" for m in items)

    text = by_id[1365]
    assert text["text"] == "Hello, I need help with my order #1043", "the edit replaced the text"
    assert text["meta"]["edits"] == [
        {"text": "Hello, I need help with my order #1042", "replaced_at": "2015-09-07T17:23:20.000000Z"}
    ]
    assert text["external_id"] == "123456789:1111111:1365"
    assert text["identity"] == "telegram:1111111"
    assert text["created_at"] == "2015-09-07T17:05:32.000000Z", "the time the customer sent it"
    assert by_id[1366]["meta"]["forwarded_from"]["name"] == "Forward Lastname"
    assert by_id[1367]["meta"]["reply_to"] == {"external_id": "123456789:1111111:1365",
                                               "text": "Hello, I need help with my order #1042"}
    assert [e["type"] for e in by_id[1368]["meta"]["entities"]] == ["bold", "italic", "url"]
    assert by_id[1369]["text"] == "[audio Test Performer - Test music file 4:03]"
    assert by_id[1370]["text"] == "[voice message 0:05]"
    assert by_id[1371]["text"] == "Here is the invoice"
    assert [(a["filename"], a["content_type"]) for a in by_id[1371]["attachments"]] == [
        ("invoice-1042.pdf", "application/pdf")
    ]
    assert by_id[1372]["attachments"][0]["filename"] == "photo-1372.jpg"
    assert by_id[1374]["meta"]["location"]["latitude"] == pytest.approx(52.520008)
    assert by_id[1375]["text"] == "[sticker \N{THUMBS UP SIGN}]"

    # The customer's own number is offered for linking, never merged on its own.
    offer = by_id[1373]["meta"]["identity_offer"]
    assert offer["identity"] == "phone:+14155550100" and offer["status"] == "offered"
    resp = await tg.get("/api/v1/customers", params={"identity": "telegram:1111111"}, headers=admin)
    customer = (await resp.json())["items"][0]
    assert customer["name"] == "Test Test Lastname"
    assert [i["id"] for i in customer["identities"]] == ["telegram:1111111"]

    rows = {r["dedupe_key"]: r for r in await journal(tg)}
    assert rows["123456789:u10012"]["status"] == "rejected"
    assert "inline_query" in rows["123456789:u10012"]["error"]
    assert "callback_query" in rows["123456789:u10013"]["error"]
    assert "channel_post" in rows["123456789:u10014"]["error"]
    assert rows["123456789:u10003"]["status"] == "done", "the edit is journaled like any event"


async def test_retries_are_deduplicated(tg: Client, admin: dict[str, str]) -> None:
    assert (await post(tg, update("text")))[1]["status"] == "stored"
    assert (await post(tg, update("text")))[1]["status"] == "duplicate"
    assert (await post(tg, update("edited")))[1]["status"] == "edited"
    assert (await post(tg, update("edited")))[1]["status"] == "edited"
    items = await timeline(tg, admin)
    assert len(items) == 1
    assert len(items[0]["meta"]["edits"]) == 1, "a retried edit is not applied twice"


async def test_edit_of_unknown_message_and_garbage_are_kept_flagged(tg: Client, admin: dict[str, str]) -> None:
    status, body = await post(tg, update("edited"))
    assert (status, body["status"]) == (200, "flagged")
    resp = await tg.post("/webhooks/telegram", data=b"{nope", headers={SECRET_HEADER: SECRET})
    assert resp.status == 200 and (await resp.json())["status"] == "flagged"
    status, body = await post(tg, {"update_id": 5, "message": {"message_id": 1, "chat": "not a chat"}})
    assert (status, body["status"]) == (200, "flagged")
    group = update("text")
    group["update_id"] = 777
    group["message"]["chat"] = {"id": -100200, "type": "group", "title": "Friends"}
    status, body = await post(tg, group)
    assert (status, body["status"]) == (200, "ignored")
    rows = await journal(tg)
    assert len(rows) == 4 and all(r["status"] == "rejected" and r["error"] for r in rows)
    assert "never received" in rows[0]["error"]
    assert "group chat" in rows[3]["error"]
    assert await timeline(tg, admin) == []


# -- files -----------------------------------------------------------------------------------------------------


async def attachment(client: Client, admin: dict[str, str], message_id: int) -> dict[str, Any]:
    items = [m for m in await timeline(client, admin) if m["meta"]["telegram"]["message_id"] == message_id]
    att: dict[str, Any] = items[0]["attachments"][0]
    return att


async def test_files_are_listed_at_once_and_fetched_in_the_background(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    pdf = b"%PDF-1.4 invoice 1042" * 50
    fake.add_file("AwADBAADbXXXXXXXXXXXGBdhD2l6_DD", pdf, "documents/file_7.pdf")
    fake.flood["getFile"] = [1]  # the first getFile meets flood control: recorded, retried later
    assert (await post(tg, update("document")))[1]["status"] == "stored"
    first = await attachment(tg, admin, 1371)
    assert first["status"] in ("pending", "stored")

    async def stored() -> Any:
        a = await attachment(tg, admin, 1371)
        return a if a["status"] == "stored" else None

    done = await eventually(stored)
    assert done["size"] == len(pdf)
    resp = await tg.get(done["url"], headers=admin)
    assert resp.status == 200 and await resp.read() == pdf
    assert len(fake.sent("getFile")) == 2

    # An id Telegram does not know fails for good, with Telegram's reason on the attachment.
    assert (await post(tg, update("voice")))[1]["status"] == "stored"

    async def failed() -> Any:
        a = await attachment(tg, admin, 1370)
        return a if a["status"] == "failed" else None

    assert "invalid file_id" in (await eventually(failed))["error"].lower()


async def test_files_over_the_limit_are_not_downloaded(
    make_settings: Callable[..., Settings], aiohttp_client: Any, fake: FakeBotApi, tmp_path: Path
) -> None:
    settings = make_settings(None, **tg_env(fake, HUB_CHANNELS__TELEGRAM__MAX_FILE_BYTES="1000"))
    client: Client = await aiohttp_client(build_app(settings))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    fake.add_file("AgACAgQAAxkBAAPhotoLarge", b"\xff\xd8" + b"x" * 5000, "photos/file_9.jpg")
    assert (await post(client, update("photo")))[1]["status"] == "stored"

    async def failed() -> Any:
        a = await attachment(client, admin, 1372)
        return a if a["status"] == "failed" else None

    assert "over the 1000-byte limit" in (await eventually(failed))["error"]
    assert fake.downloads == 0


# -- replies ---------------------------------------------------------------------------------------------------


async def conversation_of(client: Client, admin: dict[str, str], identity: str = "telegram:1111111") -> int:
    items = await timeline(client, admin, identity)
    return int(items[0]["conversation_id"])


async def message(client: Client, admin: dict[str, str], message_id: int) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/messages/{message_id}", headers=admin)
    data: dict[str, Any] = await resp.json()
    return data


async def test_agent_reply_goes_out_through_the_bot(tg: Client, admin: dict[str, str], fake: FakeBotApi) -> None:
    await post(tg, update("text"))
    conv = await conversation_of(tg, admin)
    resp = await tg.post(f"/api/v1/conversations/{conv}/messages", json={"text": "We are on it!"}, headers=admin)
    assert resp.status == 201, await resp.text()
    mid = (await resp.json())["id"]

    async def sent() -> Any:
        m = await message(tg, admin, mid)
        return m if m["status"] == "sent" else None

    m = await eventually(sent)
    [call] = fake.sent("sendMessage")
    assert call.params["chat_id"] == "1111111" and call.params["text"] == "We are on it!"
    assert m["external_id"] == "123456789:1111111:501"


async def test_flood_control_429_is_honoured(tg: Client, admin: dict[str, str], fake: FakeBotApi) -> None:
    await post(tg, update("text"))
    conv = await conversation_of(tg, admin)
    fake.flood["sendMessage"] = [2]
    resp = await tg.post(f"/api/v1/conversations/{conv}/messages", json={"text": "one moment"}, headers=admin)
    mid = (await resp.json())["id"]

    async def retrying() -> Any:
        m = await message(tg, admin, mid)
        return m if m["status_reason"] and "flood control" in m["status_reason"] else None

    m = await eventually(retrying)
    assert m["status"] == "queued"

    async def sent() -> Any:
        m = await message(tg, admin, mid)
        return m if m["status"] == "sent" else None

    await eventually(sent)
    first, second = fake.sent("sendMessage")
    assert second.at - first.at >= 1.9, "the retry waited for retry_after"


async def test_blocked_bot_fails_permanently_with_the_reason(tg: Client, admin: dict[str, str]) -> None:
    blocked = update("text")
    blocked["message"]["from"]["id"] = blocked["message"]["chat"]["id"] = 403
    await post(tg, blocked)
    conv = await conversation_of(tg, admin, "telegram:403")
    resp = await tg.post(f"/api/v1/conversations/{conv}/messages", json={"text": "hello?"}, headers=admin)
    mid = (await resp.json())["id"]

    async def failed() -> Any:
        m = await message(tg, admin, mid)
        return m if m["status"] == "failed" else None

    m = await eventually(failed)
    assert "blocked" in m["status_reason"]


async def test_photos_and_documents_go_out_with_the_text_as_caption(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    await post(tg, update("text"))
    conv_id = await conversation_of(tg, admin)
    png = b"\x89PNG\r\n\x1a\n" + b"p" * 100
    pdf = b"%PDF-1.4 label"
    now = format_time(utcnow())

    # A reply carrying files, written the way the outbox writes replies (message + outbox row, one transaction).
    def write(tx: Tx) -> int:
        conv = store.conversation(tx, conv_id)
        mid = store.insert_message(tx, conversation_id=conv.id, customer_id=conv.customer_id, channel="telegram",
                                   direction="out", kind="text", text="Your return label", status="queued",
                                   identity="telegram:1111111", now=now)
        store.insert_attachment(tx, mid, "label.png", "image/png", png, None, "stored")
        store.insert_attachment(tx, mid, "label.pdf", "application/pdf", pdf, None, "stored")
        tx.exec("INSERT INTO outbox (message_id, channel, recipient, status, next_attempt_at, created_at, "
                "updated_at) VALUES (?, 'telegram', 'telegram:1111111', 'pending', ?, ?, ?)", (mid, now, now, now))
        return mid

    mid = await tg.app[DB].write(write)
    await tg.app[OUTBOX].drain()

    async def sent() -> Any:
        m = await message(tg, admin, mid)
        return m if m["status"] == "sent" else None

    await eventually(sent)
    [photo] = fake.sent("sendPhoto")
    [doc] = fake.sent("sendDocument")
    assert photo.files["photo"] == ("label.png", png) and photo.params["caption"] == "Your return label"
    assert doc.files["document"] == ("label.pdf", pdf) and "caption" not in doc.params
    assert fake.sent("sendMessage") == []


def test_pacer_keeps_telegrams_limits() -> None:
    now = [0.0]
    pacer = SendPacer(rate=30, per_chat_interval=1.0, clock=lambda: now[0])
    waits = [pacer.reserve(chat) for chat in range(31)]
    assert waits[0] == 0 and waits[30] == pytest.approx(1.0), "31 chats at once: the 31st waits a second"
    assert pacer.reserve(5) == pytest.approx(5 / 30 + 1.0), "the same chat again: a second after its last slot"
    assert pacer.reserve(99) == pytest.approx(32 / 30), "another chat is not held up by chat 5's wait"
    pacer.hold(7, 10.0)
    assert pacer.reserve(7) == pytest.approx(10.0)
    now[0] = 100.0
    assert pacer.reserve(7) == 0


# -- polling and the webhook registration ------------------------------------------------------------------------


async def test_polling_mode_reads_updates_and_confirms_them(
    make_settings: Callable[..., Settings], aiohttp_client: Any, fake: FakeBotApi
) -> None:
    settings = make_settings(None, **tg_env(fake, HUB_CHANNELS__TELEGRAM__MODE="polling",
                                            HUB_CHANNELS__TELEGRAM__POLL_TIMEOUT_SECONDS="1"))
    fake.webhook = {"url": "https://old.example.com/hook"}
    fake.push_update(update("text"))
    client: Client = await aiohttp_client(build_app(settings))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    assert (await client.post("/webhooks/telegram", json=update("text"))).status == 404, "no webhook when polling"

    async def landed() -> Any:
        return await timeline(client, admin)

    assert (await eventually(landed))[0]["text"] == "Hello, I need help with my order #1042"
    assert fake.sent("deleteWebhook"), "a webhook left over would make getUpdates fail"
    fake.push_update(update("edited"))

    async def edited() -> Any:
        items = await timeline(client, admin)
        return items if items[0]["text"].endswith("#1043") else None

    await eventually(edited)
    offsets = [c.params.get("offset") for c in fake.sent("getUpdates")]
    assert "10001" in offsets or 10001 in offsets, "the text update was confirmed only after it was stored"
    assert len(await timeline(client, admin)) == 1
    channel = client.app[CHANNELS]["telegram"]
    assert isinstance(channel, TelegramChannel)


async def test_cli_set_webhook_registers_url_and_secret(fake: FakeBotApi, tmp_path: Path) -> None:
    env = {**os.environ, **tg_env(fake), "HUB_DATABASE__URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "telegram", "set-webhook", "--url", "https://hub.example.com/webhooks/telegram",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert fake.webhook["url"] == "https://hub.example.com/webhooks/telegram"
    assert fake.webhook["secret_token"] == SECRET
    assert "message" in fake.webhook["allowed_updates"]
    assert "webhook set to https://hub.example.com/webhooks/telegram" in out.decode()
    assert TOKEN not in out.decode() + err.decode()
