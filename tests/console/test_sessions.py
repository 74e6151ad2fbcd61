"""Console sign-in as a browser does it: session cookie flags, CSRF on cookie-authenticated writes, sign out,
throttling after repeated failures, idle and absolute expiry. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.config import ConsoleSettings, Settings
from hub.console.sessions import Sessions, SignInError
from hub.console.throttle import Throttled
from hub.history.db import open_database
from hub.history.schema import migrate
from hub.keys import DB
from hub.model import utcnow

Client = TestClient[Any, Any]
PASSWORD = "correct horse battery"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(
        db_url,
        HUB_ROUTING__QUEUES='{"support": {"title": "Support"}, "sales": {"title": "Sales"}}',
        HUB_CONSOLE__SIGNIN_FREE_FAILURES="3",
        HUB_CONSOLE__SIGNIN_BACKOFF_SECONDS="60",
    )


@pytest.fixture
async def agent(client: Client) -> int:
    a = await add_agent(client.app[DB], "Ada Agent", "ada@example.com", PASSWORD, "agent", ["sales"])
    return a.id


async def sign_in(client: Client, email: str = "ada@example.com", password: str = PASSWORD,
                  **headers: str) -> Any:
    return await client.post("/console/session", json={"email": email, "password": password}, headers=headers)


async def test_sign_in_sets_a_safe_cookie_and_says_who_you_are(client: Client, agent: int) -> None:
    resp = await sign_in(client, "  ADA@example.com ")
    assert resp.status == 200, await resp.text()
    who = await resp.json()
    assert who["agent"] == {"id": agent, "name": "Ada Agent", "email": "ada@example.com", "role": "agent",
                            "queues": ["sales"]}
    assert len(who["csrf_token"]) >= 32 and "api" in [c["name"] for c in who["channels"]]
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("hub_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie  # plain http here: a Secure cookie would never come back
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token not in str(await client.app[DB].read(lambda tx: tx.all("SELECT * FROM console_sessions")))
    again = await client.get("/console/session")
    assert again.status == 200 and (await again.json())["csrf_token"] == who["csrf_token"]
    listed = await client.get("/api/v1/conversations")
    assert listed.status == 200


async def test_wrong_password_and_unknown_email_get_the_same_answer(client: Client, agent: int) -> None:
    wrong = await sign_in(client, password="nope nope nope")
    unknown = await sign_in(client, email="nobody@example.com")
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["error"]["message"] == (await unknown.json())["error"]["message"]
    assert "Set-Cookie" not in wrong.headers
    assert (await client.get("/console/session")).status == 401
    assert (await client.get("/api/v1/conversations")).status == 401
    bad = await client.post("/console/session", data="email=ada@example.com&password=x",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status == 415, "a cross-site form cannot sign anyone in"
    missing = await client.post("/console/session", json={"email": "ada@example.com"})
    assert missing.status == 422 and "password" in (await missing.json())["error"]["message"]


async def test_sign_in_from_another_origin_is_refused(client: Client, agent: int) -> None:
    resp = await sign_in(client, Origin="https://evil.example")
    assert resp.status == 403 and "Set-Cookie" not in resp.headers
    ok = await sign_in(client, Origin=f"http://{client.host}:{client.port}")
    assert ok.status == 200


async def test_cookie_writes_need_the_csrf_token(client: Client, agent: int, admin_headers: dict[str, str]) -> None:
    made = await client.post("/api/v1/inbound", json={"identity": "phone:+14155550100", "text": "hi"},
                             headers=admin_headers)
    conv = (await made.json())["conversation"]["id"]
    await client.app[DB].write(lambda tx: tx.exec("UPDATE conversations SET queue = 'sales' WHERE id = ?", (conv,)))
    csrf = (await (await sign_in(client)).json())["csrf_token"]
    url = f"/api/v1/conversations/{conv}/messages"
    refused = await client.post(url, json={"text": "forged", "note": True})
    assert refused.status == 403 and "X-CSRF-Token" in (await refused.json())["error"]["message"]
    wrong = await client.post(url, json={"text": "forged", "note": True}, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status == 403
    ok = await client.post(url, json={"text": "real", "note": True}, headers={"X-CSRF-Token": csrf})
    assert ok.status == 201, await ok.text()
    texts = await client.app[DB].read(lambda tx: [r["text"] for r in tx.all("SELECT text FROM messages")])
    assert "forged" not in texts and "real" in texts
    # Reads need no token, and a bearer token never needs one (it is not sent by the browser on its own).
    assert (await client.get(f"/api/v1/conversations/{conv}")).status == 200


async def test_sign_out_ends_the_session_everywhere(client: Client, agent: int) -> None:
    csrf = (await (await sign_in(client)).json())["csrf_token"]
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["hub_session"].value
    assert (await client.delete("/console/session")).status == 403, "signing out is a write: it needs the token"
    out = await client.delete("/console/session", headers={"X-CSRF-Token": csrf})
    assert out.status == 200
    assert (await client.get("/console/session")).status == 401
    # The old cookie, replayed, is dead on the server too (not just deleted from the browser).
    replay = await client.get("/api/v1/conversations", headers={"Cookie": f"hub_session={cookie}"})
    assert replay.status == 401


async def test_repeated_failures_slow_that_address_down_for_that_account(client: Client, agent: int) -> None:
    for _ in range(2):
        assert (await sign_in(client, password="wrong wrong")).status == 401
    third = await sign_in(client, password="wrong wrong")
    assert third.status == 429
    body = await third.json()
    assert "Too many failed sign-ins from your address" in body["error"]["message"]
    retry = int(third.headers["Retry-After"])
    assert 55 <= retry <= 61 and body["error"]["retry_after"] == retry
    right = await sign_in(client)
    assert right.status == 429, "from this address, even the right password waits its turn"
    assert "Set-Cookie" not in right.headers
    # Another account from the same address is not affected (the address-wide allowance is far larger).
    await add_agent(client.app[DB], "Ben", "ben@example.com", PASSWORD, "agent", [])
    assert (await sign_in(client, email="ben@example.com")).status == 200


async def test_disabled_agent_is_signed_out(client: Client, agent: int) -> None:
    assert (await sign_in(client)).status == 200
    await client.app[DB].write(lambda tx: tx.exec("UPDATE agents SET disabled = 1 WHERE id = ?", (agent,)))
    assert (await client.get("/api/v1/conversations")).status == 401
    assert (await sign_in(client)).status == 401


async def test_secure_cookie_behind_https(aiohttp_client: Any, make_settings: Callable[..., Settings],
                                          db_url: str) -> None:
    from hub.app import build_app

    s = make_settings(db_url, HUB_SERVER__PUBLIC_URL="https://hub.example.com")
    client: Client = await aiohttp_client(build_app(s))
    await add_agent(client.app[DB], "Ada", "ada@example.com", PASSWORD, "agent", [])
    resp = await sign_in(client, Origin="https://hub.example.com")
    assert resp.status == 200
    assert "Secure" in resp.headers["Set-Cookie"]


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_throttle_and_session_expiry_follow_the_clock(db_url: str) -> None:
    db = open_database(db_url)
    try:
        await migrate(db)
        await add_agent(db, "Ada", "ada@example.com", PASSWORD, "agent", [])
        clock = Clock()
        sessions = Sessions(db, ConsoleSettings(signin_free_failures=2, signin_backoff_seconds=30,
                                                signin_window_seconds=600, session_idle_seconds=300,
                                                session_lifetime_seconds=1000), clock)
        with pytest.raises(SignInError):
            await sessions.sign_in("ada@example.com", "bad password", "10.0.0.66")
        clock.advance(100)
        with pytest.raises(Throttled) as slowed:
            await sessions.sign_in("ada@example.com", "bad password", "10.0.0.66")
        assert slowed.value.retry_after == 30
        clock.advance(20)
        with pytest.raises(Throttled) as still:
            await sessions.sign_in("ada@example.com", PASSWORD, "10.0.0.66")
        assert still.value.retry_after == 10, "waiting from the last failure"
        clock.advance(10)
        info = await sessions.sign_in("ada@example.com", PASSWORD, "10.0.0.66")
        # Success cleared that address's count: one new failure does not slow it again.
        with pytest.raises(SignInError):
            await sessions.sign_in("ada@example.com", "bad password", "10.0.0.66")

        assert await sessions.verify(info.token) is not None
        clock.advance(299)
        assert await sessions.verify(info.token) is not None, "activity keeps the session alive"
        clock.advance(299)
        assert await sessions.verify(info.token) is not None
        clock.advance(301)
        assert await sessions.verify(info.token) is None, "idle too long"
        info = await sessions.sign_in("ada@example.com", PASSWORD)
        for _ in range(3):
            clock.advance(250)
            assert await sessions.verify(info.token) is not None
        clock.advance(250)
        assert await sessions.verify(info.token) is None, "past the absolute lifetime, however active"
        assert await sessions.verify("made-up") is None
    finally:
        await db.close()
