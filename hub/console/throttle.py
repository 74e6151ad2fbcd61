"""Sign-in throttling that slows an attacker, not the agent: failed sign-ins are counted per client address and
account and per address alone (never per account alone, so nobody can lock an agent out from elsewhere); past a few
free failures each further attempt from that address waits twice as long as the one before. Password checks run a
few at a time, and one address gets at most two of them at once."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.config import ConsoleSettings
from hub.history.db import Tx
from hub.model import format_time, parse_time

# A double click is fine; a script firing in parallel from one address waits its turn by being refused.
CHECKS_PER_ADDRESS = 2


class Throttled(Exception):
    """Too many failed sign-ins from this address (for this account, or for any): wait RETRY_AFTER seconds."""

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        seconds = max(1, math.ceil(retry_after))
        wait = f"{seconds} second{'s' if seconds > 1 else ''}"
        if seconds >= 120:
            wait = f"{math.ceil(seconds / 60)} minutes"
        super().__init__(message or f"Too many failed sign-ins from your address. Try again in {wait}.")
        self.retry_after = float(seconds)


@dataclass(frozen=True)
class Failures:
    """The failed sign-ins from one address within the window, newest first."""

    for_account: list[datetime]
    for_address: list[datetime]


class SignInThrottle:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self._checks = asyncio.Semaphore(settings.signin_concurrent_checks)
        self._per_address: dict[str, int] = {}

    def window_start(self, now: datetime) -> str:
        return format_time(now - timedelta(seconds=self.settings.signin_window_seconds))

    def failures(self, tx: Tx, email: str, address: str, now: datetime) -> Failures:
        s = self.settings
        rows = tx.all(
            "SELECT email, at FROM login_failures WHERE ip = ? AND at > ? ORDER BY at DESC LIMIT ?",
            (address, self.window_start(now), s.signin_address_free_failures + 32),
        )
        return Failures([parse_time(str(r["at"])) for r in rows if r["email"] == email],
                        [parse_time(str(r["at"])) for r in rows])

    def _backoff(self, count: int, free: int) -> float:
        if count < free:
            return 0.0
        s = self.settings
        return float(min(s.signin_backoff_seconds * 2 ** min(count - free, 32), s.signin_max_backoff_seconds))

    def wait(self, f: Failures, now: datetime) -> float:
        """Seconds until the next attempt from this address for this account may be checked (0: now)."""
        s = self.settings
        waits = [0.0]
        for times, free in ((f.for_account, s.signin_free_failures),
                            (f.for_address, s.signin_address_free_failures)):
            backoff = self._backoff(len(times), free)
            if backoff and times:
                waits.append((times[0] + timedelta(seconds=backoff) - now).total_seconds())
        return max(waits)

    def record_failure(self, tx: Tx, email: str, address: str, now: datetime) -> None:
        tx.exec("INSERT INTO login_failures (email, ip, at) VALUES (?, ?, ?)", (email, address, format_time(now)))
        # Failures past the window count for nothing: unknown emails included, they leave with them.
        tx.exec("DELETE FROM login_failures WHERE at <= ?", (self.window_start(now),))

    @staticmethod
    def forget(tx: Tx, email: str, address: str) -> None:
        """The agent got in from this address: its failures there are history."""
        tx.exec("DELETE FROM login_failures WHERE email = ? AND ip = ?", (email, address))

    @contextlib.asynccontextmanager
    async def checking(self, address: str) -> AsyncIterator[None]:
        """A turn to check a password: refused at once (Throttled) if this address already has its share."""
        if self._per_address.get(address, 0) >= CHECKS_PER_ADDRESS:
            raise Throttled(1.0, "Another sign-in from your address is being checked. Try again in a second.")
        self._per_address[address] = self._per_address.get(address, 0) + 1
        try:
            async with self._checks:
                yield
        finally:
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]
