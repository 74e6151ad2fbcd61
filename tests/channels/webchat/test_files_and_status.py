"""The web chat's customer side at the protocol level, on SQLite and PostgreSQL: files over the visitor's socket
within the limits (refused with a reason past them, never stored), a visitor can fetch only files of their own chat,
and every open tab hears that the conversation is resolved."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from hub.app import build_app
from hub.config import Settings
from tests.channels.webchat.test_channel import Client, admin, alice, chat_env, connect, next_frame
from tests.waiting import eventually

__all__ = ["admin", "alice"]  # the channel tests' fixtures, used here too


@pytest.fixture
async def chat(aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str) -> Client:
    settings = make_settings(db_url, **chat_env(HUB_CHANNELS__WEBCHAT__MAX_FILE_BYTES="1000"))
    c: Client = await aiohttp_client(build_app(settings))
    return c


def _file(name: str, data: bytes, kind: str = "text/plain") -> dict[str, str]:
    return {"name": name, "type": kind, "data": base64.b64encode(data).decode()}


async def test_files_within_limits_and_only_ones_own(chat: Client, admin: dict[str, str]) -> None:
    config = await (await chat.get("/webchat/config")).json()
    assert config["max_file_bytes"] == 1000 and config["max_files"] == 5
    ws, _ = await connect(chat)
    refusals = [
        ([_file("big.bin", b"x" * 1001)], "big.bin is larger than 1 kB"),
        ([{"name": "a.txt", "type": "text/plain", "data": "%%%not base64"}], "a.txt could not be read"),
        ([_file(f"{n}.txt", b"x") for n in range(6)], "at most 5 files per message"),
        ([{"name": "", "data": ""}], "each file needs a name"),
    ]
    for n, (files, reason) in enumerate(refusals):
        await ws.send_json({"type": "message", "client_id": f"refused-{n:04d}", "text": "", "files": files})
        frame = await next_frame(ws, "error")
        assert frame["code"] == "bad_file" and frame["reason"].startswith(reason), frame
    # A path in the name is dropped; an odd content type becomes a plain download.
    await ws.send_json({"type": "message", "client_id": "file-00001", "text": "",
                        "files": [_file("../../etc/receipt.txt", b"paid 12.50", "text/html; x=<script>")]})
    ack = await next_frame(ws, "ack")
    [stored] = ack["message"]["attachments"]
    assert stored["filename"] == "receipt.txt" and stored["content_type"] == "application/octet-stream"
    assert ack["message"]["text"] == ""
    await ws.send_json({"type": "file", "id": stored["id"]})
    got = await next_frame(ws, "file")
    assert base64.b64decode(got["data"]) == b"paid 12.50" and got["filename"] == "receipt.txt"

    other, _ = await connect(chat)  # another visitor guesses the id
    await other.send_json({"type": "file", "id": stored["id"]})
    refused = await next_frame(other, "error")
    assert refused["code"] == "no_file"
    for bad in ("1", None, True, 10**9):
        await other.send_json({"type": "file", "id": bad})
        assert (await next_frame(other, "error"))["code"] == "no_file"
    # Nothing refused was stored: one message, one file.
    msg = await (await chat.get(f"/api/v1/messages/{ack['message']['id']}", headers=admin)).json()
    listing = await (await chat.get("/api/v1/conversations", headers=admin)).json()
    assert len(listing["items"]) == 1 and len(msg["attachments"]) == 1
    await ws.close()
    await other.close()


async def test_every_tab_hears_resolved_and_a_new_tab_is_told(chat: Client, alice: dict[str, str]) -> None:
    one, welcome = await connect(chat)
    two, _ = await connect(chat, visitor_id=welcome["visitor_id"])
    await one.send_json({"type": "message", "client_id": "hello-0001", "text": "Where is my order?"})
    ack = await next_frame(one, "ack")
    assert (await chat.post("/api/v1/agents/me/presence", json={"presence": "available"}, headers=alice)).status \
        == 200

    async def conversation_id() -> Any:
        listing = await (await chat.get("/api/v1/conversations", headers=alice)).json()
        return listing["items"][0]["id"] if listing["items"] else None

    conv = await eventually(conversation_id)
    resp = await chat.post(f"/api/v1/conversations/{conv}/resolve", headers=alice)
    assert resp.status == 200, await resp.text()
    for ws in (one, two):
        frame = await next_frame(ws, "resolved")
        assert frame["conversation_id"] == conv and frame["at"]
    three, again = await connect(chat, visitor_id=welcome["visitor_id"])
    assert again["resolved"] == conv and again["history"][-1]["id"] == ack["message"]["id"]
    # Writing again opens a new conversation: the latest is no longer resolved.
    await three.send_json({"type": "message", "client_id": "again-0001", "text": "One more thing"})
    await next_frame(three, "ack")
    four, fresh = await connect(chat, visitor_id=welcome["visitor_id"])
    assert fresh["resolved"] is None
    for ws in (one, two, three, four):
        await ws.close()
