"""Web-chat limits, as token buckets: each visitor's messages per minute, and how many new anonymous visitors one
client address, and everyone together, may start per minute (in this hub process): a script opening sockets by the
hundred gets a clear refusal, not a customer and a conversation offered to an agent for each."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.config import WebchatSettings


@dataclass
class Bucket:
    """PER_MINUTE tokens, refilled continuously; a full bucket lets a short burst through."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    tokens: float = -1.0
    at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.tokens, self.at = float(self.per_minute), self.clock()

    def take(self) -> float:
        """0 if one may go now (and it is taken), else seconds until one may."""
        now = self.clock()
        self.tokens = min(float(self.per_minute), self.tokens + (now - self.at) * self.per_minute / 60.0)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) * 60.0 / self.per_minute

    def give_back(self) -> None:
        self.tokens = min(float(self.per_minute), self.tokens + 1.0)


class NewVisitorGate:
    def __init__(self, settings: WebchatSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.clock = settings, clock
        self.overall = Bucket(settings.new_visitors_per_minute, clock)
        self._by_address: dict[str, Bucket] = {}

    def admit(self, address: str) -> tuple[str, int] | None:
        """None if a new visitor from ADDRESS may start a chat now, else (which limit, seconds to wait)."""
        if len(self._by_address) > 50_000:  # forget addresses whose buckets have long refilled
            self._by_address = {a: b for a, b in self._by_address.items() if b.tokens < b.per_minute - 1}
        bucket = self._by_address.get(address)
        if bucket is None:
            bucket = self._by_address[address] = Bucket(self.settings.new_visitors_per_address_per_minute, self.clock)
        wait = bucket.take()
        if wait:
            return "address", math.ceil(wait)
        wait = self.overall.take()
        if wait:
            bucket.give_back()  # refused overall: this address did not get its chat
            return "overall", math.ceil(wait)
        return None
