"""API tokens (stored hashed) and the bearer-token middleware guarding /api/v1."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from hub.api.docs import is_docs_path
from hub.history.db import Database, Tx
from hub.model import format_time, utcnow

TOKEN_PREFIX = "hub_"
# Verified tokens are remembered briefly so each request does not cost a database read; revocation takes this long.
CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    token_id: int
    role: str  # admin | agent
    agent_id: int | None
    queues: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(db: Database, role: str, agent_id: int | None = None, label: str = "") -> str:
    """A new random token; only its hash is stored, so this is the one time it can be seen."""
    if role not in ("admin", "agent"):
        raise ValueError("role must be admin or agent")
    if role == "agent" and agent_id is None:
        raise ValueError("an agent token belongs to an agent: pass the agent's id or email")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = format_time(utcnow())
    await db.write(
        lambda tx: tx.exec(
            "INSERT INTO api_tokens (token_hash, role, agent_id, label, created_at) VALUES (?, ?, ?, ?, ?)",
            (hash_token(token), role, agent_id, label, now),
        )
    )
    return token


def _lookup(tx: Tx, digest: str) -> Principal | None:
    row = tx.one(
        "SELECT t.id, t.role, t.agent_id FROM api_tokens t LEFT JOIN agents a ON a.id = t.agent_id "
        "WHERE t.token_hash = ? AND t.revoked_at IS NULL AND (a.id IS NULL OR a.disabled = 0)",
        (digest,),
    )
    if row is None:
        return None
    queues: tuple[str, ...] = ()
    if row["agent_id"] is not None:
        queues = tuple(
            r["queue"] for r in tx.all("SELECT queue FROM agent_queues WHERE agent_id = ?", (row["agent_id"],))
        )
    return Principal(int(row["id"]), str(row["role"]), row["agent_id"], queues)


class TokenAuth:
    def __init__(self, db: Database, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def verify(self, token: str) -> Principal | None:
        digest = hash_token(token)
        hit = self._cache.get(digest)
        if hit and hit[0] > self.clock():
            return hit[1]
        principal = await self.db.read(lambda tx: _lookup(tx, digest))
        if principal is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (self.clock() + CACHE_SECONDS, principal)
        return principal

    async def verify_now(self, token: str) -> Principal | None:
        """As verify, but asking the store whatever is remembered: a change to the token's rights was announced."""
        self._cache.pop(hash_token(token), None)
        return await self.verify(token)

    def forget(self, token_id: int | None = None, agent_id: int | None = None) -> None:
        """Drop remembered verifications of a revoked token or of a changed agent's tokens: the next request with
        them asks the store again, so a revocation takes effect at once. With neither, forget everything."""
        if token_id is None and agent_id is None:
            self._cache.clear()
        for digest, (_, p) in list(self._cache.items()):
            if (token_id is not None and p.token_id == token_id) or (agent_id is not None and p.agent_id == agent_id):
                self._cache.pop(digest, None)


PRINCIPAL = web.RequestKey("principal", Principal)
# "token" (Authorization: Bearer) or "session" (the console's cookie): the WebSocket checks Origin for the latter.
AUTH_VIA = web.RequestKey("auth_via", str)
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CookieAuth(Protocol):
    """The console's sessions (hub.console.sessions.Sessions), as this middleware sees them."""

    cookie_name: str

    async def verify_cookie(self, token: str) -> tuple[Principal, str] | None: ...


def auth_middleware(
    auth: TokenAuth, sessions: CookieAuth | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/api/") or request.path in PUBLIC_PATHS or is_docs_path(request.path):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not header and sessions is not None and sessions.cookie_name in request.cookies:
            found = await sessions.verify_cookie(request.cookies[sessions.cookie_name])
            if found is None:
                raise web.HTTPUnauthorized(text="your console session has ended; sign in again")
            by_cookie, csrf = found
            # A cookie rides along on cross-site requests too; only our own page can read the CSRF token.
            sent = request.headers.get(CSRF_HEADER, "").encode()
            if request.method not in SAFE_METHODS and not hmac.compare_digest(sent, csrf.encode()):
                raise web.HTTPForbidden(text=f"missing or wrong {CSRF_HEADER} header: cookie-authenticated writes "
                                             "must carry the session's CSRF token")
            request[PRINCIPAL], request[AUTH_VIA] = by_cookie, "session"
            return await handler(request)
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="hub"'}
        if scheme.lower() != "bearer" or not token.strip():
            raise web.HTTPUnauthorized(text="send Authorization: Bearer <token> (create one with `hub tokens create`)",
                                       headers=challenge)
        principal = await auth.verify(token.strip())
        if principal is None:
            raise web.HTTPUnauthorized(text="the bearer token is not valid or was revoked", headers=challenge)
        request[PRINCIPAL], request[AUTH_VIA] = principal, "token"
        return await handler(request)

    return middleware


def require_admin(request: web.Request) -> Principal:
    p = request[PRINCIPAL]
    if not p.is_admin:
        raise web.HTTPForbidden(text="this needs an admin token")
    return p
