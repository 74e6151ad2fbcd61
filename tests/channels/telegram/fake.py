"""The Telegram Bot API as the tests see it: the local simulator `hub demo` runs (Telegram's wire format, scripted
429 flood control and refusals), for python-telegram-bot's `Bot(token, base_url=...)`."""

from __future__ import annotations

from typing import Any

from hub.demo.telegram_simulator import Call, SimulatedBot, TelegramSimulator

__all__ = ["Call", "FakeBotApi"]


class FakeBotApi(TelegramSimulator):
    """The simulator; `webhook` and `updates` are the first bot's (the only one in single-bot tests)."""

    @property
    def first(self) -> SimulatedBot:
        return next(iter(self.bots.values()))

    @property
    def webhook(self) -> dict[str, Any]:
        return self.first.webhook

    @webhook.setter
    def webhook(self, value: dict[str, Any]) -> None:
        self.first.webhook = value

    @property
    def updates(self) -> list[dict[str, Any]]:
        return self.first.updates
