"""Sign-in throttling slows an attacker, never the agent: a stranger failing on an agent's account from one address
waits longer and longer while the agent signs in from theirs at once; many accounts from one address slow that
address; failure rows expire; a flood of parallel bogus sign-ins does not queue the real one behind it; the old
lockout settings say what to use now. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from hub.agents import add_agent
from hub.config import ConfigError, ConsoleSettings, load_settings
from hub.console.sessions import Sessions, SignInError
from hub.console.throttle import Throttled
from hub.history.db import Database, open_database
from hub.history.schema import migrate
from hub.model import utcnow

PASSWORD = "correct horse battery"
ATTACKER, AGENT_DESK = "203.0.113.66", "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Database]:
    db = open_database(db_url)
    await migrate(db)
    await add_agent(db, "Ada", "ada@example.com", PASSWORD, "agent", [])
    yield db
    await db.close()


async def attempt(sessions: Sessions, password: str, address: str, email: str = "ada@example.com") -> str | float:
    """'ok', 'wrong', or the seconds the attempt was told to wait."""
    try:
        await sessions.sign_in(email, password, address)
    except Throttled as e:
        return e.retry_after
    except SignInError:
        return "wrong"
    return "ok"


async def test_an_attacker_waits_longer_each_time_while_the_agent_signs_in_at_once(store: Database) -> None:
    clock = Clock()
    sessions = Sessions(store, ConsoleSettings(signin_free_failures=3, signin_backoff_seconds=1,
                                               signin_max_backoff_seconds=10), clock)
    answers = [await attempt(sessions, "guess", ATTACKER) for _ in range(2)]
    assert answers == ["wrong"] * 2
    waits = []
    for i in range(6):
        wait = await attempt(sessions, "guess", ATTACKER)
        assert isinstance(wait, float), wait
        waits.append(wait)
        # Trying again before the wait is over is refused without a password check, and does not count.
        assert await attempt(sessions, "guess", ATTACKER) == wait
        if i in (0, 5):
            assert await attempt(sessions, PASSWORD, AGENT_DESK) == "ok", "the agent is never locked out"
        clock.advance(wait)
    assert waits == [1, 2, 4, 8, 10, 10], "doubling, capped at signin_max_backoff_seconds"
    # Once the attacker's wait is over, even they are heard again (just slowly).
    assert await attempt(sessions, PASSWORD, ATTACKER) == "ok"


async def test_one_address_trying_many_accounts_is_slowed_for_all(store: Database) -> None:
    clock = Clock()
    sessions = Sessions(store, ConsoleSettings(signin_free_failures=5, signin_address_free_failures=4,
                                               signin_backoff_seconds=10), clock)
    for i in range(3):
        assert await attempt(sessions, "guess", ATTACKER, f"user{i}@example.com") == "wrong"
    assert await attempt(sessions, "guess", ATTACKER, "user3@example.com") == 10.0
    assert await attempt(sessions, PASSWORD, ATTACKER) == 10.0, "every account, from that address"
    assert await attempt(sessions, PASSWORD, AGENT_DESK) == "ok"


async def test_failures_expire_with_the_window_unknown_emails_included(store: Database) -> None:
    clock = Clock()
    sessions = Sessions(store, ConsoleSettings(signin_window_seconds=600), clock)
    for i in range(3):
        assert await attempt(sessions, "guess", ATTACKER, f"nobody{i}@example.com") == "wrong"
    clock.advance(601)
    assert await attempt(sessions, "guess", AGENT_DESK, "someone@example.com") == "wrong"
    rows = await store.read(lambda tx: tx.all("SELECT email FROM login_failures"))
    assert [r["email"] for r in rows] == ["someone@example.com"]


async def test_a_flood_of_parallel_bogus_sign_ins_does_not_hold_up_the_agent(store: Database) -> None:
    sessions = Sessions(store, ConsoleSettings(signin_free_failures=1000, signin_address_free_failures=1000,
                                               signin_concurrent_checks=4))

    async def real() -> float:
        start = time.perf_counter()
        assert await attempt(sessions, PASSWORD, AGENT_DESK) == "ok"
        return time.perf_counter() - start

    alone = min([await real() for _ in range(3)])
    flood = [asyncio.create_task(attempt(sessions, "guess", ATTACKER, f"u{i}@example.com")) for i in range(60)]
    await asyncio.sleep(0)
    under_attack = await real()
    answers = await asyncio.gather(*flood)
    refused = [a for a in answers if isinstance(a, float)]
    # One address gets two password checks at a time; the rest of the flood is refused without any.
    assert len(refused) >= 55, answers
    assert under_attack < alone * 6, (under_attack, alone)


def test_the_old_lockout_settings_say_what_to_use_now() -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(None, environ={"HUB_CONSOLE__LOCKOUT_THRESHOLD": "5"})
    assert "console.lockout_threshold" in str(e.value) and "signin_free_failures" in str(e.value)
    assert "HUB_CONSOLE__LOCKOUT_THRESHOLD" in str(e.value)
