"""The customer's side of the web chat in headless Chromium: the widget says who can answer now (no fixed promise),
offers an offline form when nobody can (its message lands on the timeline), shows the typical wait, carries files
both ways within the hub's limit, and tells the visitor when their conversation is resolved, also after a reload.
Screenshots go to $HUB_SCREENSHOTS (`make screenshots`)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.history.db import Tx
from hub.keys import DB
from hub.model import format_time, parse_time
from tests.e2e.conftest import SHOTS
from tests.waiting import eventually

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
Client = TestClient[Any, Any]
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")


def _hub(make_settings: Callable[..., Settings], **env: str) -> Settings:
    return make_settings(None, **{
        "HUB_CHANNELS__WEBCHAT__ENABLED": "true",
        "HUB_CHANNELS__WEBCHAT__TEAM_NAME": "Northwind Support",
        "HUB_CHANNELS__WEBCHAT__MAX_FILE_BYTES": "200000",
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.2",
        **env,
    })


async def _customer_messages(hub: Client, admin: dict[str, str], identity: str) -> list[dict[str, Any]]:
    resp = await hub.get("/api/v1/customers", params={"identity": identity}, headers=admin)
    items = (await resp.json())["items"]
    if not items:
        return []
    tl = await hub.get(f"/api/v1/customers/{items[0]['id']}/timeline", headers=admin)
    return list((await tl.json())["items"])


async def test_nobody_available_offers_a_form_that_lands_on_the_timeline(
    aiohttp_client: Any, make_settings: Callable[..., Settings]
) -> None:
    hub: Client = await aiohttp_client(build_app(_hub(make_settings)), server_kwargs={"host": "127.0.0.1"})
    db = hub.app[DB]
    await add_agent(db, "Maya Brooks", "maya@northwind.example", "maya-password-1", "agent", ["support"])
    admin = {"Authorization": f"Bearer {await create_token(db, 'admin')}"}  # Maya never set herself available

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 480, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(hub.make_url("/chat").human_repr())
            await page.wait_for_selector(".hc-panel[data-state=online][data-availability=away]", timeout=30_000)
            assert "No one is available right now" in await page.inner_text(".hc-status")
            assert "few minutes" not in await page.inner_text(".hc-panel")
            assert await page.is_visible(".hc-offline") and await page.is_hidden(".hc-composer")
            await page.fill(".hc-offline input[name=name]", "Ann Lee")
            await page.fill(".hc-offline input[name=email]", "ann@example.com")
            await page.fill(".hc-offline textarea", "Can I return boots bought on sale?")
            await page.click(".hc-offline .hc-primary")
            await page.wait_for_selector(".hc-mine:not(.hc-pending) >> text=Can I return boots", timeout=30_000)
            assert "reply here or at ann@example.com" in await page.inner_text(".hc-messages")
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "webchat-offline.png"))

            visitor = (await page.evaluate("localStorage.getItem('hubchat:visitor')")).strip('"')

            async def left() -> Any:
                found = await _customer_messages(hub, admin, f"webchat:{visitor}")
                return found[0] if found else None

            message = await eventually(left)
            assert message["channel"] == "webchat" and message["text"] == "Can I return boots bought on sale?"
            assert message["meta"]["webchat"]["offline"] is True
            assert message["meta"]["prechat"] == {"name": "Ann Lee", "email": "ann@example.com"}
            # The conversation is waiting in the queue like any other, for the first agent back.
            conv = await (await hub.get(f"/api/v1/conversations/{message['conversation_id']}", headers=admin)).json()
            assert conv["status"] == "open" and conv["queue"] == "support"
            assert errors == []
        finally:
            await browser.close()


async def test_closed_outside_business_hours(aiohttp_client: Any, make_settings: Callable[..., Settings]) -> None:
    # Hours on no day but one that is never today in the chosen zone's week: closed now, with when it opens.
    from datetime import UTC, datetime

    tomorrow = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(datetime.now(UTC).weekday() + 1) % 7]
    settings = _hub(make_settings, HUB_CHANNELS__WEBCHAT__HOURS=f'["{tomorrow} 09:00-17:00"]')
    hub: Client = await aiohttp_client(build_app(settings), server_kwargs={"host": "127.0.0.1"})
    body = await (await hub.get("/webchat/availability")).json()
    assert body["state"] == "closed" and body["opens_at"] is not None
    assert parse_time(body["opens_at"]).strftime("%H:%M") == "09:00"
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 480, "height": 760}, timezone_id="UTC")
            await page.goto(hub.make_url("/chat").human_repr())
            # The header tells availability once the socket is up ("Connecting…" before): wait for both.
            await page.wait_for_selector(".hc-panel[data-state=online][data-availability=closed]", timeout=30_000)
            status = await page.inner_text(".hc-status")
            assert status.startswith("We're closed · back ") and "9:00" in status, status
            assert await page.is_visible(".hc-offline")
        finally:
            await browser.close()


def _seed_reply_times(tx: Tx, seconds: float) -> None:
    """Earlier conversations in support that an agent first answered SECONDS after they started."""
    for row in tx.all("SELECT c.id, MIN(m.created_at) AS replied FROM conversations c JOIN messages m "
                      "ON m.conversation_id = c.id AND m.direction = 'out' GROUP BY c.id"):
        started = parse_time(str(row["replied"])) - timedelta(seconds=seconds)
        tx.exec("UPDATE conversations SET created_at = ? WHERE id = ?", (format_time(started), row["id"]))


async def test_wait_files_both_ways_and_resolved(
    aiohttp_client: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    hub: Client = await aiohttp_client(build_app(_hub(make_settings)), server_kwargs={"host": "127.0.0.1"})
    db = hub.app[DB]
    agent = await add_agent(db, "Maya Brooks", "maya@northwind.example", "maya-password-1", "agent", ["support"])
    maya = {"Authorization": f"Bearer {await create_token(db, 'agent', agent.id)}"}
    admin = {"Authorization": f"Bearer {await create_token(db, 'admin')}"}
    assert (await hub.post("/api/v1/agents/me/presence", json={"presence": "available"}, headers=maya)).status == 200
    # Three earlier chats answered in about three minutes: the widget can say what to expect.
    for n in range(3):
        resp = await hub.post("/api/v1/inbound", headers=admin,
                              json={"identity": f"email:earlier{n}@example.com", "text": "hello"})
        conv_id = (await resp.json())["conversation"]["id"]
        await hub.post(f"/api/v1/conversations/{conv_id}/messages", headers=maya, json={"text": "Hi!"})
        await hub.post(f"/api/v1/conversations/{conv_id}/resolve", headers=maya)
    await db.write(lambda tx: _seed_reply_times(tx, 180))
    body = await (await hub.get("/webchat/availability")).json()
    assert body["state"] == "online" and body["expected_wait_seconds"] == 180

    photo = tmp_path / "broken-zip.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(3000))
    too_big = tmp_path / "video.mp4"
    too_big.write_bytes(b"\0" * 250_000)
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 480, "height": 800}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(hub.make_url("/chat").human_repr())
            await page.wait_for_selector(".hc-panel[data-state=online][data-availability=online]", timeout=30_000)
            assert await page.inner_text(".hc-status") == "We're online · typically replies in about 3 minutes"
            assert await page.is_visible(".hc-composer") and await page.is_hidden(".hc-offline")

            # Over the limit: refused in the browser, in words, nothing sent.
            await page.set_input_files(".hc-composer input[type=file]", str(too_big))
            await page.wait_for_selector("text=video.mp4 is too large: files can be up to 200 kB", timeout=10_000)
            # Within it: the file with a caption reaches the timeline, bytes intact.
            await page.fill(".hc-input", "The zip is broken, photo attached")
            await page.set_input_files(".hc-composer input[type=file]", str(photo))
            await page.wait_for_selector(".hc-mine:not(.hc-pending) >> text=broken-zip.png", timeout=30_000)
            visitor = (await page.evaluate("localStorage.getItem('hubchat:visitor')")).strip('"')

            async def with_file() -> Any:
                found = await _customer_messages(hub, admin, f"webchat:{visitor}")
                return found[0] if found and found[0]["attachments"] else None

            sent = await eventually(with_file)
            assert sent["text"] == "The zip is broken, photo attached" and len(sent["attachments"]) == 1
            attachment = sent["attachments"][0]
            assert attachment["filename"] == "broken-zip.png" and attachment["content_type"] == "image/png"
            got = await hub.get(f"/api/v1/attachments/{attachment['id']}", headers=admin)
            assert await got.read() == photo.read_bytes()

            # The agent answers with a file; the visitor downloads it from the chat.
            label = b"%PDF-1.4 return label for order 2231"
            conv = sent["conversation_id"]
            resp = await hub.post(f"/api/v1/conversations/{conv}/messages", headers=maya, json={
                "text": "Sorry about that! Here is a return label.",
                "attachments": [{"filename": "return-label.pdf", "content_type": "application/pdf",
                                 "data_base64": base64.b64encode(label).decode()}]})
            assert resp.status == 201, await resp.text()
            await page.wait_for_selector("button.hc-file >> text=return-label.pdf", timeout=30_000)
            async with page.expect_download() as download_info:
                await page.click("button.hc-file >> text=return-label.pdf")
            download = await download_info.value
            assert download.suggested_filename == "return-label.pdf"
            assert await asyncio.to_thread(Path(await download.path()).read_bytes) == label

            # Resolved: the visitor is told, and still is after a reload.
            assert (await hub.post(f"/api/v1/conversations/{conv}/resolve", headers=maya)).status == 200
            await page.wait_for_selector(".hc-resolved", timeout=30_000)
            assert "Maya Brooks marked this conversation as resolved" in await page.inner_text(".hc-resolved")
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "webchat-files-resolved.png"))
            await page.reload()
            await page.wait_for_selector(".hc-resolved", timeout=30_000)
            assert await page.locator(".hc-resolved").count() == 1
            assert errors == []
        finally:
            await browser.close()
