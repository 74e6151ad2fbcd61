"""`hub demo`'s Telegram customer: the Telegram channel's bot pointed at the local Bot API simulator (no network, no
real bot), its webhook registered through the library like `hub telegram set-webhook` does, and a simulated customer
whose messages the simulator posts to that webhook with the secret, who reads agents' replies and answers them."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hub.channels.telegram.channel import WEBHOOK_PATH, set_webhook
from hub.config import Settings
from hub.demo.telegram_simulator import TelegramSimulator

log = logging.getLogger("hub.demo.telegram")

TOKEN = "1000000001:DEMO-token-replace-with-your-bots-own"
CUSTOMER = {"id": 4242001, "is_bot": False, "first_name": "Lena", "last_name": "Vogel", "username": "lena_v",
            "language_code": "de"}
SCRIPT = [
    "Hi! I ordered the waxed jacket yesterday. Can I still change the size?",
    "It's order #2231, size M -> L please",
    "Thanks a lot!",
]
ANSWERS = [
    "Great, thank you! 🙏",
    "Perfect. Will the new size still arrive by Friday?",
    "OK, got it 👍",
]


@dataclass
class DemoTelegram:
    simulator: TelegramSimulator
    settings: Settings
    #: what the customer received from the bot, newest last
    received: list[str] = field(default_factory=list)
    _answers: itertools.cycle[str] = field(default_factory=lambda: itertools.cycle(ANSWERS))
    answer_delay: float = 4.0

    async def close(self) -> None:
        await self.simulator.close()

    async def register_webhook(self, hub_url: str) -> str:
        """What `hub telegram set-webhook` does: the library's Bot tells the (simulated) Bot API where to post."""
        return await set_webhook(self.settings.channels.telegram, hub_url.rstrip("/") + WEBHOOK_PATH)

    async def write(self, text: str) -> int:
        status = await self.simulator.user_writes(TOKEN, CUSTOMER, text)
        log.info("simulated Telegram customer Lena wrote to the bot %r (hub answered %d)", text, status)
        return status

    async def _on_sent(self, token: str, chat_id: int, message: dict[str, Any]) -> None:
        if chat_id != CUSTOMER["id"]:
            return
        text = str(message.get("text") or message.get("caption") or "[file]")
        self.received.append(text)
        log.info("simulated Telegram customer Lena received %r from the bot", text)
        await asyncio.sleep(self.answer_delay * random.uniform(0.5, 1.5))
        buttons = [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row
                   if str(b.get("callback_data", "")).startswith("csat:")]
        try:
            if buttons:  # a satisfaction survey: Lena presses a score, mostly a good one
                pressed = random.choices(buttons, weights=[1, 1, 2, 6, 10][: len(buttons)])[0]
                await self.simulator.user_presses(TOKEN, CUSTOMER, message, pressed["callback_data"])
                log.info("simulated Telegram customer Lena rated %s", pressed["text"])
            else:
                await self.write(next(self._answers))
        except aiohttp.ClientError as e:
            log.warning("simulated Telegram customer could not answer: %s", e)

    async def simulate_customer(self, interval: float = 9.0) -> None:
        """Write the script (slowly), then keep answering what agents send; replies arrive through _on_sent."""
        for text in SCRIPT:
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            try:
                await self.write(text)
            except aiohttp.ClientError as e:
                log.warning("simulated Telegram customer could not reach the hub: %s", e)


async def start(settings: Settings, host: str) -> DemoTelegram | None:
    """Start the simulator and point the Telegram channel at it; None when a real bot token is configured (then the
    demo talks to Telegram itself)."""
    tg = settings.channels.telegram
    if tg.bot_token and tg.bot_token != TOKEN:
        return None
    simulator = TelegramSimulator(TOKEN)
    url = await simulator.start(host)
    tg.bot_token, tg.api_url, tg.file_url = TOKEN, simulator.base_url, simulator.file_url
    tg.enabled = True
    demo = DemoTelegram(simulator, settings)
    simulator.listeners.append(demo._on_sent)
    log.info("Telegram Bot API simulator at %s", url)
    return demo
