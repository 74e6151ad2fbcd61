"""`hub demo`: the embedded default with demo queues and agents, and simulated customers writing in through the
real inbound path (HTTP, bearer token, journal, timeline), so a newcomer sees live traffic at once."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
from pathlib import Path

import aiohttp

from hub.agents import add_agent, find_agent, sync_queues
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import QueueSettings, Settings, load_settings
from hub.history.db import open_database
from hub.history.schema import migrate

log = logging.getLogger("hub.demo")

DEMO_AGENTS = [
    # name, email, password, role, queues
    ("Alice Agent", "alice@demo.hub", "alice-demo-1", "agent", ["support"]),
    ("Bob Agent", "bob@demo.hub", "bob-demo-12", "agent", ["sales"]),
    ("Sam Supervisor", "sam@demo.hub", "sam-demo-123", "supervisor", ["support", "sales"]),
]

# A simulated customer's side of a few conversations: (identity, name, line).
SCRIPT = [
    ("phone:+14155550100", "Ann Lee", "Hi! My order #1042 hasn't arrived yet. Can you check?"),
    ("email:raj@example.com", "Raj Patel", "Do you offer volume pricing for 50 seats?"),
    ("phone:(415) 555-0100", "Ann Lee", "It was supposed to come on Monday."),
    ("telegram:1111111", "Mia Chen", "Is the store open on Sunday?"),
    ("email:Raj@Example.com ", "Raj Patel", "Also: can we pay by invoice?"),
    ("webchat:visitor-7f3a", "", "hello? anyone there"),
]


def demo_settings(data: Path) -> Settings:
    settings = load_settings(None)
    settings.database.url = f"sqlite:///{data / 'hub.db'}"
    settings.routing.queues = {"support": QueueSettings(title="Support"), "sales": QueueSettings(title="Sales")}
    # Chat channels: the web chat page to try, and a Telegram bot whose customer is simulated through the real
    # webhook (a demo token: replies to Telegram need a real one in HUB_CHANNELS__TELEGRAM__BOT_TOKEN).
    settings.channels.webchat.enabled = True
    tg = settings.channels.telegram
    if not tg.bot_token:
        tg.bot_token, tg.webhook_secret = DEMO_TELEGRAM_TOKEN, secrets.token_urlsafe(24)
    tg.enabled = True
    return settings


async def prepare(settings: Settings) -> str:
    """Schema, queues and demo agents (once); returns a fresh admin token for the simulated traffic."""
    db = open_database(settings.database.url, 1)
    try:
        await migrate(db)
        await sync_queues(db, settings.routing.queues)
        for name, email, password, role, queues in DEMO_AGENTS:
            if await find_agent(db, email) is None:
                await add_agent(db, name, email, password, role, queues)
        return await create_token(db, "admin", label="hub demo")
    finally:
        await db.close()


async def simulate_customers(base_url: str, token: str, interval: float = 4.0) -> None:
    """Post the script forever through POST /api/v1/inbound, as another system would."""
    headers = {"Authorization": f"Bearer {token}"}
    run = int(time.time())
    async with aiohttp.ClientSession(base_url, headers=headers) as http:
        for n, (identity, name, text) in enumerate(itertools.cycle(SCRIPT)):
            body = {"identity": identity, "text": text, "external_id": f"demo-{run}-{n}"}
            if name:
                body["name"] = name
            try:
                async with http.post("/api/v1/inbound", json=body) as resp:
                    data = await resp.json()
                    if resp.status in (200, 201):
                        log.info("simulated customer %s wrote on api channel -> customer %d, conversation %d",
                                 identity, data["customer"]["id"], data["conversation"]["id"])
                    else:
                        log.warning("simulated message refused (%d): %s", resp.status, data)
            except aiohttp.ClientError as e:
                log.warning("simulated customer could not reach the hub: %s", e)
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))


DEMO_TELEGRAM_TOKEN = "1000000001:DEMO-token-replace-with-your-bots-own"
TELEGRAM_SCRIPT = [
    "Hi! I ordered the waxed jacket yesterday. Can I still change the size?",
    "It's order #2231, size M -> L please",
    "Thanks a lot!",
]


async def simulate_telegram_customer(base_url: str, secret: str, interval: float = 9.0) -> None:
    """A Telegram user writing to the bot: Bot API updates POSTed to the real webhook with the real secret header."""
    from hub.channels.telegram import SECRET_HEADER, WEBHOOK_PATH

    run = int(time.time()) % 1_000_000
    user = {"id": 4242001, "is_bot": False, "first_name": "Lena", "last_name": "Vogel", "username": "lena_v",
            "language_code": "de"}
    chat = {"id": 4242001, "first_name": "Lena", "last_name": "Vogel", "username": "lena_v", "type": "private"}
    async with aiohttp.ClientSession(base_url, headers={SECRET_HEADER: secret}) as http:
        for n, text in enumerate(itertools.cycle(TELEGRAM_SCRIPT)):
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            update = {"update_id": run * 1000 + n, "message": {"message_id": run * 1000 + n, "from": user,
                                                              "chat": chat, "date": int(time.time()), "text": text}}
            try:
                async with http.post(WEBHOOK_PATH, json=update) as resp:
                    body = await resp.json()
                    log.info("simulated Telegram customer wrote through the webhook: %s", body.get("status", body))
            except aiohttp.ClientError as e:
                log.warning("simulated Telegram customer could not reach the hub: %s", e)


async def run_demo(data: Path, host: str, port: int, traffic: bool = True) -> int:
    from hub.cli import run_server

    data = data.resolve()  # noqa: ASYNC240 (start-up, before serving)
    data.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(data)
    # Phone and SMS through Twilio, against a local simulator of Twilio's REST API: no network, no account.
    from hub.channels import twilio_demo

    twilio = await twilio_demo.start(settings, host, port)
    port = twilio.port
    token = await prepare(settings)
    app = build_app(settings)
    tasks: list[asyncio.Task[None]] = []

    async def stop_traffic(_app: object) -> None:
        for t in tasks:
            t.cancel()

    app.on_shutdown.append(stop_traffic)

    async def started(bound: int) -> None:
        url = f"http://{host}:{bound}"
        lines = [
            "",
            "  hub demo is running",
            f"  console:      {url}/",
            f"  REST API:     {url}/api/v1/openapi.json",
            f"  admin token:  {token}",
            "  demo logins:",
            *[f"    {email:<16} {password:<14} ({role}; queues: {', '.join(q)})"
              for _, email, password, role, q in DEMO_AGENTS],
            f"  data folder:  {data}",
            f"  twilio:       simulated (local Twilio REST simulator at {twilio.simulator_url}; number "
            f"{twilio_demo.NUMBER}; replay: hub webhooks replay webhooks/twilio/sms_inbound.txt --fresh --url "
            f"{url}/webhooks/twilio/sms with HUB_CHANNELS__TWILIO__AUTH_TOKEN={twilio_demo.TOKEN})",
            f"  web chat:     {url}/chat   (or embed <script type=\"module\" src=\"{url}/widget.js\"></script>)",
            f"  telegram:     simulated customer via {url}/webhooks/telegram (real secret header)",
            f"  try:          curl -H 'Authorization: Bearer {token}' {url}/api/v1/conversations",
            "  stop with Ctrl-C",
            "",
        ]
        print("\n".join(lines), flush=True)
        if traffic:
            tasks.append(asyncio.create_task(simulate_customers(url, token)))
            tasks.append(asyncio.create_task(
                simulate_telegram_customer(url, settings.channels.telegram.webhook_secret)))
            tasks.append(asyncio.create_task(twilio.simulate_customer()))

    try:
        await run_server(app, host, port, settings.server.shutdown_timeout_seconds, started)
    finally:
        await twilio.close()
    return 0
