"""The routing config changed through the API as an admin would: roles, validation (400 and nothing changes), live
effect on routing, survival across a restart, and a second hub process on the same Redis seeing the change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import BUS, DB, ROUTER
from tests.api.client import Api

Client = TestClient[Any, Any]
QUEUES = json.dumps({"support": {"title": "Support"}, "sales": {"title": "Sales"}})


@pytest.fixture
def env(db_url: str, backend: str, prefix: str) -> dict[str, str]:
    return {"HUB_ROUTING__QUEUES": QUEUES, "HUB_ROUTING__BACKEND": backend, "HUB_ROUTING__KEY_PREFIX": prefix,
            "HUB_ROUTING__TICK_SECONDS": "0.1"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str, env: dict[str, str]) -> Settings:
    return make_settings(db_url, **env)


async def agent_headers(client: Client, name: str, role: str = "agent") -> tuple[int, dict[str, str]]:
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "long password", role, ["support"])
    return a.id, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}


BILLING = {"title": "Billing", "strategy": "least_occupied", "offer_timeout": 20, "sla_wait": 30}
BILLING_RULES = {"rules": [{"name": "money", "queue": "billing", "keywords": ["invoice", "refund"]}]}


async def inbound(api: Api, identity: str, text: str) -> Any:
    return await api.call("POST", "/api/v1/inbound", "/api/v1/inbound", {"identity": identity, "text": text},
                          expect=201)


async def test_only_admins_and_supervisors_see_or_change_routing(api: Api, client: Client) -> None:
    _, agent_h = await agent_headers(client, "Alice")
    for method, template, path, body in [
        ("GET", "/api/v1/routing", "/api/v1/routing", None),
        ("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/billing", BILLING),
        ("DELETE", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/sales", None),
        ("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules", BILLING_RULES),
    ]:
        await api.call(method, template, path, body, expect=403, headers=agent_h)
    assert "billing" not in client.app[ROUTER].engine.queues
    _, sup_h = await agent_headers(client, "Sam", role="supervisor")
    sup = await api.call("GET", "/api/v1/routing", "/api/v1/routing", headers=sup_h)
    assert set(sup["queues"]) == {"support", "sales"} and sup["queue_sources"]["sales"] == "config"


async def test_a_queue_and_rules_apply_live_and_are_announced(api: Api, client: Client) -> None:
    sub = client.app[BUS].subscribe()
    view = await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/billing", BILLING)
    assert view["queues"]["billing"]["strategy"] == "least_occupied" and view["queue_sources"]["billing"] == "api"
    view = await api.call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules", BILLING_RULES)
    assert view["rules"][0]["queue"] == "billing" and view["rules_source"] == "api"
    routed = await inbound(api, "email:ann@example.com", "Where is my refund?")
    assert routed["conversation"]["queue"] == "billing"
    queues = {q["name"]: q for q in (await api.call("GET", "/api/v1/queues", "/api/v1/queues"))["items"]}
    assert queues["billing"]["waiting"] == 1 and queues["billing"]["title"] == "Billing"
    changes = [e.data for e in (sub.queue.get_nowait() for _ in range(sub.queue.qsize()))
               if e.type == "routing.config_changed"]
    assert [(c["kind"], c["name"]) for c in changes] == [("queue", "billing"), ("rules", "")]
    # An agent added to the new queue is offered its work.
    a = await add_agent(client.app[DB], "Bo", "bo@example.com", "long password", "agent", ["billing"])
    await client.app[ROUTER].refresh_agents()
    await client.app[ROUTER].set_presence(a.id, "available")
    conv = routed["conversation"]["id"]
    row = await client.app[DB].read(lambda tx: tx.one("SELECT offered_to FROM conversations WHERE id = ?", (conv,)))
    assert row is not None and row["offered_to"] == a.id


async def test_bad_changes_are_400_and_change_nothing(api: Api, client: Client) -> None:
    before = await api.call("GET", "/api/v1/routing", "/api/v1/routing")
    bad_rule = {"rules": [{"queue": "nowhere", "keywords": ["x"]}]}
    err = await api.call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules", bad_rule, expect=400)
    assert "unknown queue 'nowhere'" in err["error"]["message"]
    err = await api.call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules",
                         {"rules": [{"queue": "sales"}]}, expect=400)
    assert "no condition" in err["error"]["message"]
    bad_stage = {"stages": [{"after": 10, "overflow": "nowhere"}]}
    err = await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/sales", bad_stage,
                         expect=400)
    assert "unknown queue 'nowhere'" in err["error"]["message"]
    await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/sales",
                   {"strategy": "fastest"}, expect=422)
    err = await api.call("DELETE", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/support", expect=400)
    assert "default_queue" in err["error"]["message"]
    await api.call("DELETE", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/nope", expect=404)
    await api.call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules",
                   {"rules": [{"queue": "sales", "keywords": ["quote"]}]})
    await inbound(api, "email:raj@example.com", "a quote please")
    err = await api.call("DELETE", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/sales", expect=400)
    assert "sales" in err["error"]["message"]  # a rule still names it
    await api.call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules", {"rules": []})
    err = await api.call("DELETE", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/sales", expect=409)
    assert "wait" in err["error"]["message"]
    after = await api.call("GET", "/api/v1/routing", "/api/v1/routing")
    assert after["queues"] == before["queues"] and set(client.app[ROUTER].engine.queues) == {"support", "sales"}
    rows = await client.app[DB].read(lambda tx: tx.all("SELECT kind, name FROM routing_overrides"))
    assert [(r["kind"], r["name"]) for r in rows] == [("rules", "")]


async def test_agent_routing_profile(api: Api, client: Client) -> None:
    aid, agent_h = await agent_headers(client, "Alice")
    profile = {"skills": {"spanish": 80}, "capacity": {"voice": 0, "chat": 1, "email": 2}, "wrapup": 5}
    view = await api.call("PUT", "/api/v1/routing/agents/{id}", f"/api/v1/routing/agents/{aid}", profile)
    mine = next(a for a in view["agents"] if a["agent_id"] == aid)
    assert mine["skills"] == {"spanish": 80} and mine["capacity"]["chat"] == 1 and mine["source"] == "api"
    stats = await client.app[ROUTER].engine.agent_stats(aid)
    assert stats is not None and stats.capacity == {"voice": 0, "chat": 1, "email": 2}
    bad = {"capacity": {"fax": 1}}
    err = await api.call("PUT", "/api/v1/routing/agents/{id}", f"/api/v1/routing/agents/{aid}", bad, expect=400)
    assert "capacity" in err["error"]["message"]
    await api.call("PUT", "/api/v1/routing/agents/{id}", "/api/v1/routing/agents/99999", profile, expect=404)
    await api.call("PUT", "/api/v1/routing/agents/{id}", f"/api/v1/routing/agents/{aid}", profile, expect=403,
                   headers=agent_h)


async def test_changes_survive_a_restart(aiohttp_client: Any, make_settings: Callable[..., Settings],
                                         db_url: str, env: dict[str, str]) -> None:
    first: Client = await aiohttp_client(build_app(make_settings(db_url, **env)))
    admin = {"Authorization": f"Bearer {await create_token(first.app[DB], 'admin')}"}
    spec = dict(await (await first.get("/api/v1/openapi.json")).json())
    api = Api(first, admin, spec)
    await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/billing", BILLING)
    await api.call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules", BILLING_RULES)
    await api.call("DELETE", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/sales")
    await first.close()
    second: Client = await aiohttp_client(build_app(make_settings(db_url, **env)))  # the file still has sales
    api = Api(second, admin, spec)
    view = await api.call("GET", "/api/v1/routing", "/api/v1/routing")
    assert set(view["queues"]) == {"support", "billing"} and view["rules"][0]["queue"] == "billing"
    assert (await inbound(api, "phone:+14155550100", "invoice 42 is wrong"))["conversation"]["queue"] == "billing"


async def test_a_change_reaches_another_hub_process(aiohttp_client: Any, make_settings: Callable[..., Settings],
                                                    db_url: str, env: dict[str, str], backend: str) -> None:
    if backend != "redis":
        pytest.skip("with the memory backend there is one hub process")
    one: Client = await aiohttp_client(build_app(make_settings(db_url, **env)))
    two: Client = await aiohttp_client(build_app(make_settings(db_url, **env)))  # its own settings, same stores
    admin = {"Authorization": f"Bearer {await create_token(one.app[DB], 'admin')}"}
    spec = dict(await (await one.get("/api/v1/openapi.json")).json())
    await Api(one, admin, spec).call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/billing",
                                     BILLING)
    await Api(one, admin, spec).call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules", BILLING_RULES)
    deadline = asyncio.get_running_loop().time() + 10
    while "billing" not in two.app[ROUTER].engine.queues or not two.app[ROUTER].settings.routing.rules:
        assert asyncio.get_running_loop().time() < deadline, "the other process never saw the change"
        await asyncio.sleep(0.05)
    routed = await inbound(Api(two, admin, spec), "email:ann@example.com", "refund please")
    assert routed["conversation"]["queue"] == "billing"
    queues = {q["name"] for q in (await Api(two, admin, spec).call("GET", "/api/v1/queues", "/api/v1/queues"))["items"]}
    assert "billing" in queues


async def test_a_first_response_target_set_live_times_new_conversations(api: Api, client: Client) -> None:
    await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/support",
                   {"title": "Support", "first_response": -1}, expect=422)
    view = await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/support",
                          {"title": "Support", "first_response": 120})
    assert view["queues"]["support"]["first_response"] == 120
    assert view["queues"]["sales"]["first_response"] == 0  # the default: no target
    conv = (await inbound(api, "email:ann@example.com", "hello"))["conversation"]["id"]
    queues = {q["name"]: q for q in (await api.call("GET", "/api/v1/queues", "/api/v1/queues"))["items"]}
    assert queues["support"]["first_response"] == 120 and queues["support"]["first_response_attainment"] is None
    a, _ = await agent_headers(client, "Ann")
    router = client.app[ROUTER]
    router.clock = router.engine.clock = lambda: 10.0**10  # long past the target
    got = await router.engine.responded(conv, a)
    assert got[0].type == "routing.first_response" and got[0].data()["within"] is False
    # The breach is counted once: by this reply (it records the breach with it), or by a tick that saw the clock first.
    assert [e.type for e in got[1:]] in ([], ["routing.sla_breached"])
    assert (await router.engine.queue_stats("support")).response_breached == 1


async def test_how_a_first_response_target_counts_is_set_per_queue(api: Api) -> None:
    bad = await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/support",
                         {"title": "Support", "first_response": 60, "first_response_hours": "weekdays"}, expect=422)
    assert "first_response_hours" in str(bad["error"])
    view = await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/support",
                          {"title": "Support", "first_response": 60, "first_response_hours": "business"})
    assert view["queues"]["support"]["first_response_hours"] == "business"
    assert view["queues"]["sales"]["first_response_hours"] is None  # unset: routing.first_response_hours
    queues = {q["name"]: q for q in (await api.call("GET", "/api/v1/queues", "/api/v1/queues"))["items"]}
    assert (queues["support"]["first_response_hours"], queues["sales"]["first_response_hours"]) == (
        "business", "calendar")


XSS = "<img src=x onerror=alert(document.domain)>"


async def test_a_supervisor_cannot_plant_markup_in_a_queue_name(api: Api, client: Client) -> None:
    """The seen attack: a supervisor's queue named with markup ran in an admin's browser on `/`."""
    _, sup_h = await agent_headers(client, "Sam", role="supervisor")
    err = await api.call("PUT", "/api/v1/routing/queues/{name}", f"/api/v1/routing/queues/{XSS}", BILLING,
                         expect=422, headers=sup_h)
    assert "not a slug" in err["error"]["message"] and "title" in err["error"]["message"]
    for name in ("Billing", "billing queue", "-billing", "b" * 65, "billing:de", "billing\u00e9"):
        await api.call("PUT", "/api/v1/routing/queues/{name}", f"/api/v1/routing/queues/{name}", BILLING,
                       expect=422, headers=sup_h)
    assert not [q for q in client.app[ROUTER].engine.queues if q not in ("support", "sales")]
    # The words people read go in the title, which is free text and shown escaped.
    view = await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/billing-de",
                          {**BILLING, "title": XSS}, headers=sup_h)
    assert view["queues"]["billing-de"]["title"] == XSS
    page = await (await client.get("/")).text()
    assert XSS not in page and "&lt;img src=x onerror=alert(document.domain)&gt;" in page


async def test_rule_and_skill_names_are_slugs(api: Api, client: Client) -> None:
    err = await api.call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules",
                         {"rules": [{"name": XSS, "queue": "sales", "keywords": ["x"]}]}, expect=422)
    assert "rule name" in err["error"]["message"]
    err = await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/billing",
                         {**BILLING, "strategy": "skills", "skills": {"Deutsch <b>": 1}}, expect=422)
    assert "skill name" in err["error"]["message"]
    agent, _ = await agent_headers(client, "Alice")
    await api.call("PUT", "/api/v1/routing/agents/{id}", f"/api/v1/routing/agents/{agent}",
                   {"skills": {"German!": 3}}, expect=422)
    await api.call("PUT", "/api/v1/routing/agents/{id}", f"/api/v1/routing/agents/{agent}", {"skills": {"german": 3}})


async def test_names_stored_before_slugs_keep_working(make_settings: Callable[..., Settings], db_url: str,
                                                      env: dict[str, str], aiohttp_client: Any,
                                                      spec: dict[str, Any]) -> None:
    """A hub whose config (or earlier API changes) named things freely still starts, routes and edits them."""
    old = json.dumps({"Support Team": {"title": "Support"}, "sales": {}})
    rules = json.dumps([{"name": "Big Customers", "queue": "Support Team", "keywords": ["vip"]}])
    settings = make_settings(db_url, **{**env, "HUB_ROUTING__QUEUES": old, "HUB_ROUTING__RULES": rules,
                                        "HUB_ROUTING__DEFAULT_QUEUE": "Support Team"})
    c = await aiohttp_client(build_app(settings))
    admin = {"Authorization": f"Bearer {await create_token(c.app[DB], 'admin')}"}
    api = Api(c, admin, spec)
    routed = await inbound(api, "email:vip@example.com", "vip here")
    assert routed["conversation"]["queue"] == "Support Team"
    await api.call("PUT", "/api/v1/routing/queues/{name}", "/api/v1/routing/queues/Support Team",
                   {"title": "Support (all)"})
    await api.call("PUT", "/api/v1/routing/rules", "/api/v1/routing/rules",
                   {"rules": [{"name": "Big Customers", "queue": "Support Team", "keywords": ["vip", "gold"]}],
                    "default_queue": "Support Team"})
