"""Console sign-in: argon2 password check, throttled per client address (hub.console.throttle), and server-side
sessions (the browser holds only a random token in an HttpOnly cookie; the database holds its hash and a CSRF token)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from hub.agents import check_password, hash_password
from hub.api.auth import Principal
from hub.config import ConsoleSettings
from hub.console.throttle import Failures, SignInThrottle, Throttled
from hub.history.db import Database, Tx
from hub.model import format_time, utcnow

COOKIE_NAME = "hub_session"
# Sliding idle expiry is written back at most this often, so reads stay reads.
TOUCH_EVERY = timedelta(seconds=60)


@functools.cache
def _dummy_hash() -> str:
    # Verifying against this when the email is unknown keeps the answer time the same as for a wrong password.
    return hash_password("not-a-real-password")


class SignInError(Exception):
    """Wrong email or password (deliberately not saying which)."""


@dataclass(frozen=True)
class SessionInfo:
    token: str  # only ever seen here, at sign-in: the database keeps its hash
    csrf_token: str
    agent_id: int
    expires_at: str


@dataclass(frozen=True)
class Verified:
    principal: Principal
    csrf_token: str
    session_id: int


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Everything the console needs to know who is at the keyboard."""

    cookie_name = COOKIE_NAME

    def __init__(self, db: Database, settings: ConsoleSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self.db, self.settings, self.clock = db, settings, clock
        self.throttle = SignInThrottle(settings)

    # -- sign in -------------------------------------------------------------------------------------------------

    async def sign_in(self, email: str, password: str, ip: str = "", user_agent: str = "") -> SessionInfo:
        """A new session for the agent, or SignInError / Throttled (hub.console.throttle)."""
        email, address = email.strip().lower(), ip[:100]
        now = self.clock()
        throttle = self.throttle

        def look(tx: Tx) -> tuple[Failures, int | None, str | None]:
            failures = throttle.failures(tx, email, address, now)
            row = tx.one("SELECT id, password_hash FROM agents WHERE email = ? AND disabled = 0", (email,))
            return failures, (int(row["id"]) if row else None), (str(row["password_hash"]) if row else None)

        failures, agent_id, digest = await self.db.read(look)
        wait = throttle.wait(failures, now)
        if wait > 0:
            raise Throttled(wait)  # refused before any password is checked: waiting costs the attacker, not us
        async with throttle.checking(address):
            # argon2 is slow on purpose: never on the event loop.
            ok = await asyncio.to_thread(check_password, digest or _dummy_hash(), password)
        if not ok or agent_id is None:
            def fail(tx: Tx) -> Failures:
                throttle.record_failure(tx, email, address, now)
                return throttle.failures(tx, email, address, now)

            wait = throttle.wait(await self.db.write(fail), now)
            if wait > 0:
                raise Throttled(wait, f"Wrong email or password. {Throttled(wait)}")
            raise SignInError("Wrong email or password.")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = format_time(now + timedelta(seconds=self.settings.session_lifetime_seconds))
        stamp = format_time(now)
        found_agent = agent_id

        def create(tx: Tx) -> None:
            throttle.forget(tx, email, address)
            # Expired sessions of this agent are swept here, so the table does not grow without bound.
            tx.exec("DELETE FROM console_sessions WHERE agent_id = ? AND expires_at < ?", (found_agent, stamp))
            tx.exec(
                "INSERT INTO console_sessions (token_hash, agent_id, csrf_token, created_at, last_seen_at, expires_at,"
                " user_agent, ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_digest(token), found_agent, csrf, stamp, stamp, expires, user_agent[:300], address),
            )

        await self.db.write(create)
        return SessionInfo(token, csrf, agent_id, expires)

    # -- each request --------------------------------------------------------------------------------------------

    async def verify(self, token: str) -> Verified | None:
        """The principal behind a session cookie, or None if it is unknown, expired, idle too long or disabled."""
        now = self.clock()
        stamp = format_time(now)
        idle_since = format_time(now - timedelta(seconds=self.settings.session_idle_seconds))
        digest = _digest(token)

        def look(tx: Tx) -> tuple[Verified, str] | None:
            row = tx.one(
                "SELECT s.id, s.agent_id, s.csrf_token, s.last_seen_at, a.role FROM console_sessions s "
                "JOIN agents a ON a.id = s.agent_id "
                "WHERE s.token_hash = ? AND s.expires_at > ? AND s.last_seen_at > ? AND a.disabled = 0",
                (digest, stamp, idle_since),
            )
            if row is None:
                return None
            queues = tuple(str(r["queue"]) for r in tx.all(
                "SELECT queue FROM agent_queues WHERE agent_id = ? ORDER BY queue", (row["agent_id"],)))
            principal = Principal(0, str(row["role"]), int(row["agent_id"]), queues)
            return Verified(principal, str(row["csrf_token"]), int(row["id"])), str(row["last_seen_at"])

        found = await self.db.read(look)
        if found is None:
            return None
        verified, last_seen = found
        if last_seen < format_time(now - TOUCH_EVERY):
            await self.db.write(lambda tx: tx.exec(
                "UPDATE console_sessions SET last_seen_at = ? WHERE id = ?", (stamp, verified.session_id)))
        return verified

    async def verify_cookie(self, token: str) -> tuple[Principal, str] | None:
        found = await self.verify(token)
        return (found.principal, found.csrf_token) if found else None

    async def sign_out(self, token: str) -> None:
        await self.db.write(lambda tx: tx.exec("DELETE FROM console_sessions WHERE token_hash = ?", (_digest(token),)))


SESSIONS = web.AppKey("console_sessions", Sessions)
