"""Calls meet routing and agents, end to end: signed real-format Twilio webhooks in, the agent's actions through the
REST API, and the calls the hub places seen by the local Twilio REST simulator through the official client."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.keys import DB, ROUTER
from tests.channels.twilio_fake import (
    ACCOUNT,
    BIZ,
    CUSTOMER,
    PUBLIC,
    TOKEN,
    Scripted,
    TwilioFake,
    eventually,
    new_sid,
    sample,
    start_hub,
    twiml,
    webhook,
)

Client = TestClient[Any, Any]
VOICE = "/webhooks/twilio/voice"
QUEUES = {"support": {"title": "Support"}, "sales": {"title": "Sales"}}
CALLER = sample("voice_inbound")["CallSid"]


@pytest.fixture
async def fake(aiohttp_server: Any) -> tuple[TwilioFake, str]:
    sim = TwilioFake(ACCOUNT, TOKEN)
    server: TestServer = await aiohttp_server(sim.app())
    return sim, str(server.make_url("")).rstrip("/")


@pytest.fixture
def start(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str]
) -> Callable[..., Any]:
    async def go(db_url: str | None = None, **extra: Any) -> tuple[Client, dict[str, str]]:
        extra.setdefault("routing__queues", QUEUES)
        return await start_hub(aiohttp_client, make_settings, fake[1], db_url, **extra)

    return go


async def agent(client: Client, name: str, queues: list[str], **voice: str) -> tuple[int, dict[str, str]]:
    """An available agent with an API token: (id, headers)."""
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "correct horse", "agent", queues,
                        **voice)
    headers = {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}
    resp = await client.post("/api/v1/agents/me/presence", json={"presence": "available"}, headers=headers)
    assert resp.status == 200, await resp.text()
    return a.id, headers


async def the_call(client: Client, admin: dict[str, str], sid: str = CALLER) -> Any:
    resp = await client.get("/api/v1/customers", params={"identity": f"phone:{CUSTOMER}"}, headers=admin)
    [customer] = (await resp.json())["items"]
    resp = await client.get(f"/api/v1/customers/{customer['id']}/timeline", headers=admin)
    [call] = [m for m in (await resp.json())["items"] if m["external_id"] == sid]
    return call


async def conversation(client: Client, admin: dict[str, str], conv_id: int) -> Any:
    return await (await client.get(f"/api/v1/conversations/{conv_id}", headers=admin)).json()


def only(root: ET.Element, tag: str) -> ET.Element:
    found = root.findall(tag)
    assert len(found) == 1, ET.tostring(root)
    return found[0]


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC), url
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def test_an_accepted_call_rings_the_agent_and_connects_exactly_that_caller(
    start: Any, fake: tuple[TwilioFake, str], db_url: str
) -> None:
    sim = fake[0]
    client, admin = await start(db_url)
    alice, alice_h = await agent(client, "Alice", ["support"], phone="+14155550111")
    status, _, _ = await webhook(client, VOICE, sample("voice_inbound"))
    assert status == 200
    call = await the_call(client, admin)
    conv_id = call["conversation_id"]
    offers = await (await client.get("/api/v1/offers", headers=alice_h)).json()
    assert [o["conversation_id"] for o in offers["items"]] == [conv_id]

    resp = await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=alice_h)
    assert resp.status == 200, await resp.text()
    [ring] = await eventually(lambda: _async(sim.sent("Calls")))
    assert ring["To"] == "+14155550111" and ring["From"] == BIZ
    handoff = only(only(twiml(ring["Twiml"]), "Dial"), "Queue").text
    assert handoff == f"hub-{CALLER}", "the agent dials the accepted caller's own hand-off queue"
    [moved] = await eventually(lambda: _async(sim.sent("Calls.update")))
    assert moved["CallSid"] == CALLER
    enqueue = only(twiml(moved["Twiml"]), "Enqueue")
    assert enqueue.text == handoff and enqueue.get("action") == PUBLIC + f"{VOICE}/queue-result?handoff=1"

    # Twilio then: the caller leaves the shared line (redirected), is bridged from the hand-off queue, hangs up.
    await webhook(client, f"{VOICE}/queue-result", sample("voice_queue_result_redirected"))
    _, body, _ = await webhook(client, path_of(enqueue.get("action") or ""),
                               sample("voice_queue_result_bridged", QueueTime="4"))
    assert only(twiml(body), "Hangup") is not None
    [agent_sid] = [sid for sid, c in sim.calls.items() if c.get("to") == "+14155550111"]
    agent_leg = sample("voice_status_completed", CallSid=agent_sid,
                       CallDuration="185", From=BIZ, To="+14155550111", Direction="outbound-api")
    status, _, _ = await webhook(client, path_of(ring["StatusCallback"]), agent_leg)
    assert status == 204
    await webhook(client, f"{VOICE}/status", sample("voice_status_completed"))
    call = await the_call(client, admin)
    assert call["meta"]["outcome"] == "answered" and call["meta"]["agent_id"] == alice
    assert call["text"] == f"Call answered by agent {alice}; talk time 3m 05s (waited 34s)"
    assert (await conversation(client, admin, conv_id))["agent_id"] == alice
    deleted = await eventually(lambda: _async(sim.sent("Queues.delete")))
    assert deleted[0]["QueueSid"] == sample("voice_queue_result_bridged")["QueueSid"], "the hand-off queue is removed"


async def _async(value: Any) -> Any:
    return value


async def test_a_caller_in_their_hand_off_queue_hears_they_are_being_connected(start: Any) -> None:
    client, _ = await start(channels__twilio__numbers={BIZ: {"max_wait_seconds": 120}})
    _, body, _ = await webhook(client, f"{VOICE}/wait?handoff=1", sample("voice_wait", QueueTime="0"))
    root = twiml(body)
    assert only(root, "Say").text == "Connecting you to an agent." and only(root, "Pause").get("length") == "20"
    _, body, _ = await webhook(client, f"{VOICE}/wait?handoff=1", sample("voice_wait", QueueTime="40"))
    assert [el.tag for el in twiml(body)] == ["Pause"]
    _, body, _ = await webhook(client, f"{VOICE}/wait?handoff=1", sample("voice_wait", QueueTime="121"))
    assert [el.tag for el in twiml(body)] == ["Leave"], "nobody picked up in time: voicemail"


async def test_an_agent_with_no_phone_cannot_accept_a_call_and_the_offer_stays(start: Any) -> None:
    client, admin = await start()
    _, bob_h = await agent(client, "Bob", ["support"])
    await webhook(client, VOICE, sample("voice_inbound"))
    conv_id = (await the_call(client, admin))["conversation_id"]
    resp = await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=bob_h)
    assert resp.status == 409
    reason = (await resp.json())["error"]["message"]
    assert "phone call" in reason and "no phone or Twilio Client identity" in reason
    offers = await (await client.get("/api/v1/offers", headers=bob_h)).json()
    assert [o["conversation_id"] for o in offers["items"]] == [conv_id], "the offer stays"


async def test_an_agent_who_does_not_pick_up_puts_the_call_back_in_line(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start()
    carol, carol_h = await agent(client, "Carol", ["support"], phone="+14155550112", voice_client="carol")
    await webhook(client, VOICE, sample("voice_inbound"))
    conv_id = (await the_call(client, admin))["conversation_id"]
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=carol_h)).status == 200
    [ring] = await eventually(lambda: _async(sim.sent("Calls")))
    assert ring["To"] == "client:carol", "a Twilio Client identity is rung before the phone"
    await eventually(lambda: _async(sim.sent("Calls.update")))
    missed = sample("voice_status_no_answer", CallSid=new_sid("CA"), From=BIZ, To="client:carol",
                    Direction="outbound-api")
    await webhook(client, path_of(ring["StatusCallback"]), missed)
    conv = await conversation(client, admin, conv_id)
    assert conv["status"] == "open" and conv["agent_id"] is None, "back in line for routing to offer again"
    assert (await the_call(client, admin))["meta"]["agent_call_status"] == "no-answer"

    # Accepted again: the caller is already in their hand-off queue, so only the agent is rung.
    async def offered() -> Any:
        items = (await (await client.get("/api/v1/offers", headers=carol_h)).json())["items"]
        return items if items else None

    await client.app[ROUTER].tick()
    await eventually(offered)
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=carol_h)).status == 200
    await eventually(lambda: _async(len(sim.sent("Calls")) == 2))
    assert len(sim.sent("Calls.update")) == 1
    assert (await conversation(client, admin, conv_id))["agent_id"] == carol


async def test_twilio_500_and_429_while_bridging_are_retried_then_reported(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    sim.script["Calls"] = [Scripted(503), Scripted(429, headers={"Retry-After": "0"})]
    client, admin = await start()
    _, jo_h = await agent(client, "Jo", ["support"], phone="+14155550117")
    await webhook(client, VOICE, sample("voice_inbound"))
    conv_id = (await the_call(client, admin))["conversation_id"]
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=jo_h)).status == 200
    await eventually(lambda: _async(len(sim.sent("Calls")) == 3))
    assert [f["To"] for f in sim.sent("Calls")] == ["+14155550117"] * 3, "retried, then rung"
    assert "bridge_error" not in (await the_call(client, admin))["meta"]

    other = new_sid("CA")
    sim.script["Calls"] = [Scripted(500)] * 3
    await webhook(client, VOICE, sample("voice_inbound", CallSid=other, From="+14155550124", Caller="+14155550124"))
    resp = await client.get("/api/v1/customers", params={"identity": "phone:+14155550124"}, headers=admin)
    customer = (await resp.json())["items"][0]
    items = (await (await client.get(f"/api/v1/customers/{customer['id']}/timeline", headers=admin)).json())["items"]
    _, kim_h = await agent(client, "Kim", ["support"], phone="+14155550118")
    assert (await client.post(f"/api/v1/conversations/{items[0]['conversation_id']}/accept",
                              headers=kim_h)).status == 200

    async def reported() -> Any:
        timeline = await (await client.get(f"/api/v1/customers/{customer['id']}/timeline", headers=admin)).json()
        meta = timeline["items"][0]["meta"]
        return meta if meta.get("bridge_error") else None

    meta = await eventually(reported)
    assert "Twilio error 20500" in meta["bridge_error"] and len(sim.sent("Calls")) == 6


async def test_a_caller_who_hung_up_is_not_bridged_and_the_agent_sees_why(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    sim.script["Calls.update"] = [Scripted(400, 21220, "Call is not in-progress. Cannot redirect.")]
    client, admin = await start()
    _, hana_h = await agent(client, "Hana", ["support"], phone="+14155550115")
    await webhook(client, VOICE, sample("voice_inbound"))
    conv_id = (await the_call(client, admin))["conversation_id"]
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=hana_h)).status == 200

    async def failed() -> Any:
        call = await the_call(client, admin)
        return call if call["meta"].get("bridge_error") else None

    call = await eventually(failed)
    assert "Twilio error 21220" in call["meta"]["bridge_error"]
    assert "could not ring agent" in call["text"] and "21220" in call["text"], "on the timeline, not only in meta"
    assert sim.sent("Calls") == [], "no agent's phone rings for a caller who is gone"


async def test_a_call_from_a_customer_an_agent_already_has_rings_that_agent(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start()
    ivy, ivy_h = await agent(client, "Ivy", ["support"], phone="+14155550116")
    await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound"))
    [offer] = (await (await client.get("/api/v1/offers", headers=ivy_h)).json())["items"]
    assert (await client.post(f"/api/v1/conversations/{offer['conversation_id']}/accept", headers=ivy_h)).status == 200
    assert sim.sent("Calls") == [], "accepting a text conversation rings no one"
    await webhook(client, VOICE, sample("voice_inbound"))
    call = await the_call(client, admin)
    assert call["conversation_id"] == offer["conversation_id"]
    [ring] = await eventually(lambda: _async(sim.sent("Calls")))
    assert ring["To"] == "+14155550116"
    [moved] = await eventually(lambda: _async(sim.sent("Calls.update")))
    assert moved["CallSid"] == CALLER
    assert (await conversation(client, admin, call["conversation_id"]))["agent_id"] == ivy


async def test_the_keypad_choice_reaches_the_routing_rules(start: Any) -> None:
    menu = {BIZ: {"line": "main", "menu_prompt": "Press 1 for sales.", "menu": {"1": "support", "3": "billing"}}}
    rules = [{"name": "press 1 for sales", "queue": "sales", "ivr": ["1"]},
             {"name": "billing option", "queue": "sales", "ivr": ["billing"], "priority": 5}]
    client, admin = await start(channels__twilio__numbers=menu, routing__rules=rules)
    await webhook(client, VOICE, sample("voice_inbound"))
    call = await the_call(client, admin)
    assert (await conversation(client, admin, call["conversation_id"]))["queue"] == "support"
    _, body, _ = await webhook(client, f"{VOICE}/menu?retry=0", sample("voice_menu", Digits="1"))
    assert only(twiml(body), "Enqueue").text == "sales", "the rule on the digit wins over the menu's option"
    assert (await conversation(client, admin, call["conversation_id"]))["queue"] == "sales"
    assert (await the_call(client, admin))["meta"]["ivr"] == "1"

    other = new_sid("CA")
    await webhook(client, VOICE, sample("voice_inbound", CallSid=other, From="+14155550123", Caller="+14155550123"))
    _, body, _ = await webhook(client, f"{VOICE}/menu?retry=0", sample("voice_menu", CallSid=other, Digits="3",
                                                                       From="+14155550123"))
    assert only(twiml(body), "Enqueue").text == "sales", "a rule may name the menu option instead of the digit"


async def test_click_to_call_rings_the_agent_then_the_customer_and_tracks_the_call(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start()
    dana, dana_h = await agent(client, "Dana", ["support"], phone="+14155550113")
    spec = await (await client.get("/api/v1/openapi.json")).json()
    schema = {**spec["paths"]["/api/v1/conversations/{id}/call"]["post"]["responses"]["202"]["content"][
        "application/json"]["schema"], "components": spec["components"]}
    await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound"))
    resp = await client.get("/api/v1/customers", params={"identity": f"phone:{CUSTOMER}"}, headers=admin)
    customer = (await resp.json())["items"][0]
    timeline = await (await client.get(f"/api/v1/customers/{customer['id']}/timeline", headers=admin)).json()
    conv_id = timeline["items"][0]["conversation_id"]

    resp = await client.post(f"/api/v1/conversations/{conv_id}/call", headers=dana_h)
    assert resp.status == 202, await resp.text()
    msg = await resp.json()
    jsonschema.validate(msg, schema)
    assert msg["kind"] == "call" and msg["direction"] == "out" and msg["status"] == "sending"
    assert msg["agent_id"] == dana and msg["text"] == f"Calling {CUSTOMER}: ringing the agent first"
    [ring] = sim.sent("Calls")
    assert ring["To"] == "+14155550113" and ring["From"] == BIZ and msg["external_id"] in sim.calls
    dial = only(twiml(ring["Twiml"]), "Dial")
    assert dial.text == CUSTOMER and dial.get("callerId") == BIZ
    leg = {"From": BIZ, "To": "+14155550113", "Direction": "outbound-api", "CallSid": msg["external_id"]}
    await webhook(client, path_of(ring["StatusCallback"]), sample("voice_status_completed", CallStatus="in-progress",
                                                                  **leg))
    got = await (await client.get(f"/api/v1/messages/{msg['id']}", headers=admin)).json()
    assert got["text"] == f"Calling {CUSTOMER}: the agent answered, dialing the customer"
    dialed = sample("voice_dialed", **leg)
    for _ in range(2):  # a retried callback changes nothing more
        status, body, _ = await webhook(client, path_of(dial.get("action") or ""), dialed)
        assert status == 200 and only(twiml(body), "Hangup") is not None
    got = await (await client.get(f"/api/v1/messages/{msg['id']}", headers=admin)).json()
    assert got["status"] == "delivered" and got["text"] == f"Call to {CUSTOMER}; talk time 1m 05s"

    resp = await client.post(f"/api/v1/conversations/{conv_id}/call", json={"to": "+14155550177"}, headers=dana_h)
    assert resp.status == 202 and sim.sent("Calls")[-1]["Twiml"].count("+14155550177") == 1
    sim.requests.clear()
    resp = await client.post(f"/api/v1/conversations/{conv_id}/call", json={"to": "+1415555017"}, headers=dana_h)
    assert resp.status == 422 and not sim.sent("Calls")


async def test_click_to_call_says_why_it_cannot(start: Any, fake: tuple[TwilioFake, str]) -> None:
    client, admin = await start()
    _, eve_h = await agent(client, "Eve", ["support"])
    _, finn_h = await agent(client, "Finn", ["support"], voice_client="finn")
    await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound"))
    resp = await client.get("/api/v1/conversations", headers=admin)
    conv_id = (await resp.json())["items"][0]["id"]
    resp = await client.post(f"/api/v1/conversations/{conv_id}/call", headers=eve_h)
    assert resp.status == 409 and "no phone or Twilio Client identity" in (await resp.json())["error"]["message"]
    email = await client.post("/api/v1/inbound", json={"identity": "email:ann@example.com", "text": "hi"},
                              headers=admin)
    mail_conv = (await email.json())["message"]["conversation_id"]
    resp = await client.post(f"/api/v1/conversations/{mail_conv}/call", headers=finn_h)
    assert resp.status == 409 and "has no phone number" in (await resp.json())["error"]["message"]
    fake[0].script["Calls"] = [Scripted(400, 21215, "Geo permission not enabled")]
    resp = await client.post(f"/api/v1/conversations/{conv_id}/call", headers=finn_h)
    msg = await resp.json()
    assert resp.status == 202 and msg["status"] == "failed" and "Geo permission" in msg["status_reason"]


async def test_click_to_call_without_voice_is_a_conflict(aiohttp_client: Any, settings: Settings) -> None:
    from hub.app import build_app

    client = await aiohttp_client(build_app(settings))
    a = await add_agent(client.app[DB], "Gus", "gus@example.com", "correct horse", "agent", ["support"],
                        phone="+14155550114")
    headers = {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    got = await client.post("/api/v1/inbound", json={"identity": "phone:+14155550100", "text": "hi"}, headers=admin)
    conv_id = (await got.json())["message"]["conversation_id"]
    resp = await client.post(f"/api/v1/conversations/{conv_id}/call", headers=headers)
    assert resp.status == 409 and "voice is not configured" in (await resp.json())["error"]["message"]
