"""The widget in headless Chromium on another site's page: a visitor's message and an agent's reply (sent through
the REST API) round-trip; the agent's name and typing show; history survives a reload; a message typed while the
socket is down goes out when it is back; HTML in messages stays text.
Screenshots go to $HUB_SCREENSHOTS (`make screenshots`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import DB
from tests.conftest import free_port
from tests.e2e.conftest import SHOTS
from tests.waiting import eventually

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
Client = TestClient[Any, Any]

HOST_PAGE = """<!doctype html><html><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1"><title>Northwind Outfitters</title>
<style>
 body{{margin:0;font-family:Georgia,serif;background:#f7f3ec;color:#2b2b2b}}
 header{{padding:22px 48px;background:#1f3a32;color:#f7f3ec;font-size:22px;letter-spacing:.04em}}
 main{{padding:48px;max-width:760px}} h1{{font-size:40px;margin:0 0 12px}} p{{font-size:18px;line-height:1.6}}
 .card{{display:inline-block;margin:24px 16px 0 0;width:200px;height:140px;border-radius:12px;background:#e4dccd}}
</style></head><body><header>NORTHWIND OUTFITTERS</header>
<main><h1>Autumn collection</h1><p>Waxed jackets, wool knits and boots made to last. Questions about sizing or
delivery? Our team is one click away.</p><div class=card></div><div class=card></div></main>
<script type="module" src="{hub}/widget.js"></script></body></html>"""


@pytest.fixture
async def site() -> AsyncIterator[dict[str, Any]]:
    """Another origin: a shop's page embedding the widget with its one script tag."""
    info: dict[str, Any] = {"port": free_port(), "hub": ""}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=HOST_PAGE.format(hub=info["hub"]), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", info["port"]).start()
    info["origin"] = f"http://127.0.0.1:{info['port']}"
    yield info
    await runner.cleanup()


@pytest.fixture
async def hub(aiohttp_client: Any, make_settings: Callable[..., Settings], site: dict[str, Any]) -> Client:
    settings = make_settings(None, **{
        "HUB_CHANNELS__WEBCHAT__ENABLED": "true",
        "HUB_CHANNELS__WEBCHAT__ALLOWED_ORIGINS": f'["{site["origin"]}"]',
        "HUB_CHANNELS__WEBCHAT__TITLE": "Northwind Support",
        "HUB_CHANNELS__WEBCHAT__TEAM_NAME": "Northwind Support",
        "HUB_CHANNELS__WEBCHAT__WELCOME": "Hi there! Ask us anything about sizing, orders or returns.",
        "HUB_CHANNELS__WEBCHAT__ACCENT_COLOR": "#1f6f5c",
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.2",
    })
    client: Client = await aiohttp_client(build_app(settings), server_kwargs={"host": "127.0.0.1"})
    site["hub"] = f"http://127.0.0.1:{client.server.port}"
    return client


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_widget_round_trip_in_chromium(hub: Client, site: dict[str, Any]) -> None:
    db = hub.app[DB]
    agent = await add_agent(db, "Maya Brooks", "maya@northwind.example", "maya-password-1", "agent", ["support"])
    maya = {"Authorization": f"Bearer {await create_token(db, 'agent', agent.id)}"}
    admin = {"Authorization": f"Bearer {await create_token(db, 'admin')}"}
    # Maya is at work: the widget offers the chat (with nobody available it offers the offline form instead).
    resp = await hub.post("/api/v1/agents/me/presence", json={"presence": "available"}, headers=maya)
    assert resp.status == 200

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 820})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(site["origin"] + "/")
            await page.click(".hc-launcher", timeout=30_000)
            await page.wait_for_selector(".hc-panel[data-state=online]", timeout=30_000)
            await page.fill(".hc-input", "Hi! Do you have the waxed jacket in medium?")
            await page.keyboard.press("Enter")
            await page.wait_for_selector(".hc-mine:not(.hc-pending)", timeout=30_000)

            visitor = await page.evaluate("localStorage.getItem('hubchat:visitor')")
            visitor_id = visitor.strip('"')

            async def conversation() -> Any:
                resp = await hub.get("/api/v1/customers", params={"identity": f"webchat:{visitor_id}"}, headers=admin)
                items = (await resp.json())["items"]
                if not items:
                    return None
                tl = await hub.get(f"/api/v1/customers/{items[0]['id']}/timeline", headers=admin)
                return (await tl.json())["items"][0]["conversation_id"]

            conv = await eventually(conversation)
            resp = await hub.post("/api/v1/webchat/typing", json={"conversation_id": conv, "typing": True},
                                  headers=maya)
            assert resp.status == 200
            await page.wait_for_selector("text=Maya Brooks is typing…", timeout=30_000)
            resp = await hub.post(f"/api/v1/conversations/{conv}/messages", headers=maya,
                                  json={"text": "Hi! Yes, medium is in stock in olive and navy. Want me to hold one?"})
            assert resp.status == 201
            await page.wait_for_selector("text=medium is in stock in olive and navy", timeout=30_000)
            assert await page.is_hidden(".hc-typing"), "the reply ends the typing indicator"
            assert await page.inner_text(".hc-theirs .hc-name") == "Maya Brooks"
            assert await page.inner_text(".hc-title") == "Maya Brooks"
            await page.fill(".hc-input", "Navy, please!")
            await page.keyboard.press("Enter")
            await page.wait_for_selector(".hc-mine:not(.hc-pending) >> text=Navy, please!", timeout=30_000)
            await hub.post("/api/v1/webchat/typing", json={"conversation_id": conv, "typing": True}, headers=maya)
            await page.wait_for_selector("text=Maya Brooks is typing…", timeout=30_000)

            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.wait_for_timeout(400)  # let the open animation settle for the picture
            await page.screenshot(path=str(SHOTS / "webchat.png"))

            # HTML from anyone is shown as text and never runs.
            await page.fill(".hc-input", "<img src=x onerror=\"window.pwned=1\">")
            await page.keyboard.press("Enter")
            await hub.post(f"/api/v1/conversations/{conv}/messages", headers=maya,
                           json={"text": "<b>Done</b> <img src=x onerror=\"window.pwned=2\">"})
            await page.wait_for_selector("text=<b>Done</b>", timeout=30_000)
            assert await page.evaluate("window.pwned === undefined")
            assert await page.locator(".hc-bubble img, .hc-bubble b").count() == 0

            # Reload: the same visitor, the whole conversation back.
            await page.reload()
            await page.click(".hc-launcher", timeout=30_000)
            await page.wait_for_selector("text=medium is in stock in olive and navy", timeout=30_000)
            assert await page.locator(".hc-row").count() == 5

            # The socket drops; a message typed meanwhile waits in the queue and goes out on reconnect, once.
            await page.evaluate("window.HubChat.client.ws.close()")
            await page.wait_for_selector(".hc-panel[data-state=offline], .hc-panel[data-state=connecting]",
                                         timeout=30_000)
            await page.fill(".hc-input", "Sent while offline")
            await page.keyboard.press("Enter")
            await page.wait_for_selector(".hc-panel[data-state=online]", timeout=60_000)
            await page.wait_for_selector(".hc-mine:not(.hc-pending) >> text=Sent while offline", timeout=30_000)

            async def stored_once() -> bool:
                resp = await hub.get(f"/api/v1/conversations/{conv}", headers=admin)
                body = await resp.json()
                texts = [m["text"] for m in body.get("messages", [])]
                return texts.count("Sent while offline") == 1

            await eventually(stored_once)

            # A phone-sized screen: the chat takes the whole screen.
            phone = await browser.new_page(viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True)
            await phone.goto(hub.make_url("/chat").human_repr())
            await phone.wait_for_selector(".hc-panel[data-state=online]", timeout=30_000)
            box = await phone.locator(".hc-panel").bounding_box()
            assert box is not None and box["width"] == pytest.approx(390, abs=2)
            await phone.screenshot(path=str(SHOTS / "webchat-phone.png"))
            assert errors == []
        finally:
            await browser.close()
