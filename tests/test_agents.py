"""Agent accounts in the store: passwords hashed, voice fields checked, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from hub.agents import AgentError, add_agent, check_password, find_agent, list_agents
from hub.history.db import Database


async def test_agent_with_phone_and_client_identity(db: Database) -> None:
    alice = await add_agent(db, "Alice", "Alice@Example.com", "alice-password", "agent", [],
                            phone="+1 (415) 555-0199", voice_client="alice.desk")
    assert (alice.email, alice.phone, alice.voice_client) == ("alice@example.com", "+14155550199", "alice.desk")
    found = await find_agent(db, "ALICE@example.com")
    assert found is not None and found.phone == "+14155550199"
    bob = await add_agent(db, "Bob", "bob@example.com", "bob-password", "agent", [], phone=" ")
    assert bob.phone is None and bob.voice_client is None
    assert [a.email for a in await list_agents(db)] == ["alice@example.com", "bob@example.com"]
    stored = await db.read(lambda tx: tx.one("SELECT password_hash FROM agents WHERE id = ?", (alice.id,)))
    assert stored is not None and "alice-password" not in str(stored["password_hash"])
    assert check_password(str(stored["password_hash"]), "alice-password")


@pytest.mark.parametrize(("phone", "client", "why"), [
    ("4155550199", None, "E.164 with the country code"),
    ("+1 555", None, "not a possible phone number"),
    (None, "alice desk<script>", "letters, digits"),
])
async def test_bad_voice_fields_are_refused(db: Database, phone: str | None, client: str | None, why: str) -> None:
    with pytest.raises(AgentError, match=why):
        await add_agent(db, "Al", "al@example.com", "al-password", "agent", [], phone=phone, voice_client=client)
    assert await list_agents(db) == []
