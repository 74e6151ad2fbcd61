"""Agent accounts and API tokens through the API, with every role: an admin creates, edits, disables and resets;
a supervisor may read; an agent may not; revoked tokens and disabled agents stop at once. SQLite and PostgreSQL;
every answer checked against the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.keys import DB
from tests.api.client import Api, inbound

Client = TestClient[Any, Any]
PASSWORD = "correct horse battery"


async def session_headers(client: Client, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Sign in to the console as EMAIL; the headers a browser would send afterwards (cookie and CSRF token)."""
    resp = await client.post("/console/session", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    token = resp.cookies["hub_session"].value
    client.session.cookie_jar.clear()
    return {"Cookie": f"hub_session={token}", "X-CSRF-Token": (await resp.json())["csrf_token"]}


async def test_admin_creates_an_agent_who_signs_in(api: Api, client: Client) -> None:
    body = {"name": "Nia Okafor", "email": "Nia@Example.com", "password": PASSWORD, "role": "agent",
            "queues": ["sales"], "phone": "+1 (415) 555-0199", "voice_client": "nia"}
    made = await api.call("POST", "/api/v1/agents", "/api/v1/agents", body, expect=201)
    assert made["email"] == "nia@example.com" and made["phone"] == "+14155550199" and made["queues"] == ["sales"]
    assert "password" not in str(made) and "hash" not in str(made)
    again = await api.call("POST", "/api/v1/agents", "/api/v1/agents", body, expect=409)
    assert "already exists" in again["error"]["message"]
    short = await api.call("POST", "/api/v1/agents", "/api/v1/agents", {**body, "email": "x@y.com", "password": "123"},
                           expect=422)
    assert short["error"]["details"][0]["field"] == "password"
    for bad, reason in ((({"queues": ["nope"]}), "unknown queue"), ({"phone": "555-0199"}, "E.164"),
                        ({"role": "root"}, "role")):
        err = await api.call("POST", "/api/v1/agents", "/api/v1/agents", {**body, "email": "z@y.com", **bad},
                             expect=422)
        assert reason in err["error"]["message"]
    who = await session_headers(client, "nia@example.com")
    listed = await api.call("GET", "/api/v1/agents", "/api/v1/agents", headers=who)
    me = next(a for a in listed["items"] if a["id"] == made["id"])
    assert "phone" not in me, "an agent does not see colleagues' phone numbers"
    full = await api.call("GET", "/api/v1/agents", "/api/v1/agents")
    assert next(a for a in full["items"] if a["id"] == made["id"])["phone"] == "+14155550199"
    one = await api.call("GET", "/api/v1/agents/{id}", f"/api/v1/agents/{made['id']}")
    assert one == made
    await api.call("GET", "/api/v1/agents/{id}", "/api/v1/agents/999999", expect=404)


async def test_patch_queues_role_phone_and_password(api: Api, client: Client) -> None:
    ann = await add_agent(client.app[DB], "Ann", "ann@example.com", PASSWORD, "agent", ["support"], "+14155550100")
    token = await create_token(client.app[DB], "agent", ann.id)
    as_ann = Api(client, {"Authorization": f"Bearer {token}"}, api.spec)
    sale = await inbound(api, "phone:+14155550177", "pricing?")
    conv = sale["conversation"]["id"]
    await client.app[DB].write(lambda tx: tx.exec("UPDATE conversations SET queue = 'sales' WHERE id = ?", (conv,)))
    # Ann's token is verified (and remembered) before her queues change: the change still applies at once.
    await as_ann.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}", expect=404)
    path, template = f"/api/v1/agents/{ann.id}", "/api/v1/agents/{id}"
    changed = await api.call("PATCH", template, path, {"queues": ["sales"], "role": "supervisor", "phone": None})
    assert changed["queues"] == ["sales"] and changed["role"] == "supervisor" and changed["phone"] is None
    await as_ann.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}")
    err = await api.call("PATCH", template, path, {"queues": ["sales", "nope"]}, expect=422)
    assert "unknown queue" in err["error"]["message"]
    err = await api.call("PATCH", template, path, {"name": None}, expect=422)
    assert "name" in err["error"]["message"]
    err = await api.call("PATCH", template, path, {"bogus": 1}, expect=422)
    assert err["error"]["details"][0] == {"field": "bogus", "message": "unknown field"}
    old = await session_headers(client, "ann@example.com")
    await api.call("PATCH", template, path, {"password": "a brand new secret"})
    assert (await client.get("/console/session", headers=old)).status == 401, "a reset signs the agent out"
    assert (await client.post("/console/session", json={"email": "ann@example.com", "password": PASSWORD})).status \
        == 401
    await session_headers(client, "ann@example.com", "a brand new secret")
    await api.call("PATCH", template, "/api/v1/agents/999999", {"name": "x"}, expect=404)
    await add_agent(client.app[DB], "Bo", "bo@example.com", PASSWORD, "agent", [])
    err = await api.call("PATCH", template, path, {"email": "bo@example.com"}, expect=409)
    assert "already exists" in err["error"]["message"]


async def test_disabling_ends_sessions_and_tokens_at_once(api: Api, client: Client) -> None:
    cy = await add_agent(client.app[DB], "Cy", "cy@example.com", PASSWORD, "agent", ["support"])
    token = await create_token(client.app[DB], "agent", cy.id)
    bearer = {"Authorization": f"Bearer {token}"}
    cookie = await session_headers(client, "cy@example.com")
    assert (await client.get("/api/v1/inbox", headers=bearer)).status == 200  # remembered by the token cache
    assert (await client.get("/api/v1/inbox", headers=cookie)).status == 200
    async with client.ws_connect("/api/v1/events", headers=bearer) as ws:
        assert (await ws.receive_json())["type"] == "hello"
        done = await api.call("PATCH", "/api/v1/agents/{id}", f"/api/v1/agents/{cy.id}", {"disabled": True})
        assert done["disabled"] is True
        assert (await ws.receive(timeout=5)).data == 4401, "the live stream closes at once"
    assert (await client.get("/api/v1/inbox", headers=bearer)).status == 401
    assert (await client.get("/api/v1/inbox", headers=cookie)).status == 401
    assert (await client.post("/console/session", json={"email": "cy@example.com", "password": PASSWORD})).status \
        == 401
    await api.call("PATCH", "/api/v1/agents/{id}", f"/api/v1/agents/{cy.id}", {"disabled": False})
    assert (await client.get("/api/v1/inbox", headers=bearer)).status == 200


async def test_roles_are_enforced(api: Api, client: Client) -> None:
    db = client.app[DB]
    agent = await add_agent(db, "Al", "al@example.com", PASSWORD, "agent", ["support"])
    await add_agent(db, "Sue", "sue@example.com", PASSWORD, "supervisor", ["support"])
    admin = await add_agent(db, "Ada", "ada@example.com", PASSWORD, "admin", [])
    as_agent = Api(client, {"Authorization": f"Bearer {await create_token(db, 'agent', agent.id)}"}, api.spec)
    as_sup = Api(client, await session_headers(client, "sue@example.com"), api.spec)
    as_admin = Api(client, await session_headers(client, "ada@example.com"), api.spec)
    new = {"name": "X", "email": "x@example.com", "password": PASSWORD}
    for caller in (as_agent, as_sup):
        await caller.call("POST", "/api/v1/agents", "/api/v1/agents", new, expect=403)
        await caller.call("PATCH", "/api/v1/agents/{id}", f"/api/v1/agents/{agent.id}", {"role": "admin"},
                          expect=403)
        await caller.call("GET", "/api/v1/tokens", "/api/v1/tokens", expect=403)
        await caller.call("POST", "/api/v1/tokens", "/api/v1/tokens", {"role": "admin"}, expect=403)
        await caller.call("DELETE", "/api/v1/tokens/{id}", "/api/v1/tokens/1", expect=403)
    await as_agent.call("GET", "/api/v1/agents/{id}", f"/api/v1/agents/{agent.id}", expect=403)
    assert (await as_sup.call("GET", "/api/v1/agents/{id}", f"/api/v1/agents/{agent.id}"))["id"] == agent.id
    assert (await as_agent.call("GET", "/api/v1/agents", "/api/v1/agents"))["items"]  # names for transfer
    # An admin signed in to the console may do it all, but not lock themselves (or everyone) out.
    await as_admin.call("POST", "/api/v1/agents", "/api/v1/agents", new, expect=201)
    err = await as_admin.call("PATCH", "/api/v1/agents/{id}", f"/api/v1/agents/{admin.id}", {"disabled": True},
                              expect=409)
    assert "yourself" in err["error"]["message"]
    err = await api.call("PATCH", "/api/v1/agents/{id}", f"/api/v1/agents/{admin.id}", {"role": "agent"},
                         expect=409)
    assert "no enabled admin" in err["error"]["message"]


async def test_tokens_created_listed_and_revoked(api: Api, client: Client) -> None:
    bot = await add_agent(client.app[DB], "Bot", "bot@example.com", PASSWORD, "agent", ["support"])
    made = await api.call("POST", "/api/v1/tokens", "/api/v1/tokens", {"role": "admin", "label": "CRM sync"},
                          expect=201)
    secret = made.pop("token")
    assert secret.startswith("hub_") and made["label"] == "CRM sync" and made["revoked_at"] is None
    fresh = Api(client, {"Authorization": f"Bearer {secret}"}, api.spec)
    await fresh.call("GET", "/api/v1/tokens", "/api/v1/tokens")  # works, and is now remembered
    listed = await api.call("GET", "/api/v1/tokens", "/api/v1/tokens")
    assert made in listed["items"] and secret not in str(listed)
    agent_token = await api.call("POST", "/api/v1/tokens", "/api/v1/tokens",
                                 {"role": "agent", "agent_id": bot.id, "label": "bot"}, expect=201)
    assert agent_token["agent_name"] == "Bot"
    for body, reason in (({"role": "agent"}, "agent_id"), ({"role": "agent", "agent_id": 999}, "does not exist"),
                         ({"role": "admin", "agent_id": bot.id}, "acts as no agent")):
        err = await api.call("POST", "/api/v1/tokens", "/api/v1/tokens", body, expect=422)
        assert reason in err["error"]["message"]
    revoked = await api.call("DELETE", "/api/v1/tokens/{id}", f"/api/v1/tokens/{made['id']}")
    assert revoked["revoked_at"] is not None
    resp = await client.get("/api/v1/tokens", headers=fresh.headers)
    assert resp.status == 401, "a revoked token stops working at once"
    again = await api.call("DELETE", "/api/v1/tokens/{id}", f"/api/v1/tokens/{made['id']}")
    assert again["revoked_at"] == revoked["revoked_at"]
    await api.call("DELETE", "/api/v1/tokens/{id}", "/api/v1/tokens/999999", expect=404)
    listed = await api.call("GET", "/api/v1/tokens", "/api/v1/tokens")
    assert listed["items"][-1]["id"] == made["id"], "revoked tokens are listed last"


async def test_new_agent_and_queue_change_reach_routing(api: Api, client: Client) -> None:
    made = await api.call("POST", "/api/v1/agents", "/api/v1/agents",
                          {"name": "Rae", "email": "rae@example.com", "password": PASSWORD}, expect=201)
    rae = Api(client, await session_headers(client, "rae@example.com"), api.spec)
    await rae.call("POST", "/api/v1/agents/me/presence", "/api/v1/agents/me/presence", {"presence": "available"})
    await api.call("PATCH", "/api/v1/agents/{id}", f"/api/v1/agents/{made['id']}", {"queues": ["support"]})
    conv = (await inbound(api, "phone:+14155550123", "hello?"))["conversation"]["id"]
    offers = await rae.call("GET", "/api/v1/offers", "/api/v1/offers")
    assert [o["conversation_id"] for o in offers["items"]] == [conv]
