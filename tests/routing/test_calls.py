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
from hub.routing.calls import CALLS
from tests.channels.twilio.fake import (
    ACCOUNT,
    BIZ,
    CUSTOMER,
    PUBLIC,
    TOKEN,
    Scripted,
    TwilioFake,
    new_sid,
    sample,
    start_hub,
    twiml,
    webhook,
)
from tests.waiting import eventually

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
    # Without call screening (the screened bridge has a test of its own below): the agent's phone dials at once.
    client, admin = await start(db_url, channels__twilio__screen_agent_calls="never")
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
    # Another number has an agent_phone, so agents without a phone keep their voice capacity and get call offers;
    # a call to a number without one still cannot be accepted by them.
    client, admin = await start(channels__twilio__numbers={"+14155550198": {"agent_phone": "+14155550197"}})
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
    assert only(dial, "Number").text == CUSTOMER and dial.get("callerId") == BIZ
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


# -- call screening, the caller's whole wait, and who is offered calls at all -----------------------------------------


def query_of(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(urlsplit(url).query))


async def test_a_screened_agent_hears_who_is_calling_and_takes_the_call_with_1(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start()  # screen_agent_calls = "phone", the default
    alice, alice_h = await agent(client, "Alice", ["support"], phone="+14155550111")
    await webhook(client, VOICE, sample("voice_inbound", CallerName="Ann Lee"))
    conv_id = (await the_call(client, admin))["conversation_id"]
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=alice_h)).status == 200
    [ring] = await eventually(lambda: _async(sim.sent("Calls")))
    root = twiml(ring["Twiml"])
    assert [el.tag for el in root] == ["Gather", "Say", "Hangup"], "no key pressed: hang up, nobody is connected"
    gather = only(root, "Gather")
    assert gather.get("numDigits") == "1" and gather.get("timeout") == "8"
    assert only(gather, "Say").text == "Call from Ann Lee in Support. Press 1 to accept."
    assert root.find("Dial") is None, "the caller is not dialed before the agent pressed 1"
    assert path_of(gather.get("action") or "").startswith(f"{VOICE}/screen?")
    assert query_of(gather.get("action") or "") == {"call": CALLER, "agent": str(alice)}
    assert query_of(ring["StatusCallback"])["screen"] == "1"
    await eventually(lambda: _async(sim.sent("Calls.update")))

    [agent_sid] = [sid for sid, c in sim.calls.items() if c.get("to") == "+14155550111"]
    leg = {"From": BIZ, "To": "+14155550111", "Direction": "outbound-api", "CallSid": agent_sid}
    status, body, _ = await webhook(client, path_of(gather.get("action") or ""),
                                    sample("voice_menu", **leg, Digits="1"))
    assert status == 200
    assert only(only(twiml(body), "Dial"), "Queue").text == f"hub-{CALLER}", "1 connects exactly that caller"
    await webhook(client, f"{VOICE}/queue-result?handoff=1", sample("voice_queue_result_bridged", QueueTime="4"))
    await webhook(client, path_of(ring["StatusCallback"]), sample("voice_status_completed", **leg,
                                                                  CallDuration="95"))
    call = await the_call(client, admin)
    assert call["meta"]["screen_accepted"] == agent_sid and call["meta"]["talk_seconds"] == 95
    assert call["meta"]["outcome"] == "answered"
    conv = await conversation(client, admin, conv_id)
    assert conv["status"] == "assigned" and conv["agent_id"] == alice, "taken: not put back in line"


async def test_a_screened_agent_who_does_not_press_1_puts_the_call_back_in_line(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start()
    _, alice_h = await agent(client, "Alice", ["support"], phone="+14155550111")
    await webhook(client, VOICE, sample("voice_inbound"))
    conv_id = (await the_call(client, admin))["conversation_id"]
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=alice_h)).status == 200
    [ring] = await eventually(lambda: _async(sim.sent("Calls")))
    gather = only(twiml(ring["Twiml"]), "Gather")
    assert only(gather, "Say").text == "Call from 1 4 1 5 5 5 5 0 1 0 0 in Support. Press 1 to accept.", \
        "no name: the number, digit by digit"
    agent_sid = new_sid("CA")
    leg = {"From": BIZ, "To": "+14155550111", "Direction": "outbound-api", "CallSid": agent_sid}
    status, body, _ = await webhook(client, path_of(gather.get("action") or ""), sample("voice_menu", **leg,
                                                                                        Digits="2"))
    assert status == 200 and [el.tag for el in twiml(body)] == ["Say", "Hangup"]
    assert (await conversation(client, admin, conv_id))["status"] == "assigned", "until the leg ends"
    # The leg ends (as it would after a voicemail answered or the agent hung up): a missed offer.
    await webhook(client, path_of(ring["StatusCallback"]), sample("voice_status_completed", **leg,
                                                                  CallDuration="12"))
    conv = await conversation(client, admin, conv_id)
    assert conv["status"] == "open" and conv["agent_id"] is None, "back in line for the next agent"
    call = await the_call(client, admin)
    assert "talk_seconds" not in call["meta"] and call["meta"]["screen_result"] == "agent pressed 2"
    assert call["meta"]["outcome"] == "queued", "the caller is still waiting"
    # A retried callback changes nothing more.
    await webhook(client, path_of(ring["StatusCallback"]), sample("voice_status_completed", **leg,
                                                                  CallDuration="12"))
    assert (await conversation(client, admin, conv_id))["status"] == "open"


async def test_screening_with_the_simulator_no_key_goes_to_the_next_agent_who_presses_1(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    """The simulator plays the agents' phones: the first agent's answers and presses nothing (say, their
    voicemail picked up), so the call goes back in line and routing offers it to the other agent, who presses 1
    and is connected to the caller."""
    sim = fake[0]
    client, admin = await start()
    sim.hub_url = str(client.make_url("")).rstrip("/")
    sim.public_url = PUBLIC
    sim.ring_seconds, sim.talk_seconds = 0.05, 0.2
    phones = {"Alice": "+14155550111", "Bob": "+14155550112"}
    agents = {name: await agent(client, name, ["support"], phone=phone) for name, phone in phones.items()}
    await webhook(client, VOICE, sample("voice_inbound"))
    conv_id = (await the_call(client, admin))["conversation_id"]

    async def offered_to(name: str) -> Any:
        await client.app[ROUTER].tick()
        items = (await (await client.get("/api/v1/offers", headers=agents[name][1])).json())["items"]
        return [o["conversation_id"] for o in items] == [conv_id]

    first = "Alice" if await offered_to("Alice") else "Bob"
    second = "Bob" if first == "Alice" else "Alice"
    sim.keypad[phones[first]] = ""
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=agents[first][1])).status == 200
    await eventually(lambda: offered_to(second))
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=agents[second][1])).status == 200

    async def answered() -> Any:
        call = await the_call(client, admin)
        meta = call["meta"]
        return call if meta.get("outcome") == "answered" and meta.get("agent_call_status") == "completed" else None

    call = await eventually(answered)
    assert call["meta"]["agent_id"] == agents[second][0] and call["meta"]["screen_result"] == "accepted"
    assert [f["To"] for f in sim.sent("Calls")] == [phones[first], phones[second]]
    assert len(sim.sent("Calls.update")) == 1, "the caller was moved to their hand-off queue once"
    assert (await conversation(client, admin, conv_id))["agent_id"] == agents[second][0]


async def test_a_softphone_is_not_screened_unless_always_and_never_turns_screening_off(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start(channels__twilio__screen_agent_calls="always")
    _, carol_h = await agent(client, "Carol", ["support"], voice_client="carol")
    await webhook(client, VOICE, sample("voice_inbound"))
    conv_id = (await the_call(client, admin))["conversation_id"]
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=carol_h)).status == 200
    [ring] = await eventually(lambda: _async(sim.sent("Calls")))
    assert ring["To"] == "client:carol" and only(twiml(ring["Twiml"]), "Gather") is not None, "always"

    calls = client.app[CALLS]
    calls.settings.screen_agent_calls = "phone"
    assert not calls.screens("client:carol") and calls.screens("+14155550111") and calls.screens(None)
    calls.settings.screen_agent_calls = "never"
    assert not calls.screens("+14155550111")


async def test_click_to_call_is_not_screened(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    client, admin = await start(channels__twilio__screen_agent_calls="always")
    _, dana_h = await agent(client, "Dana", ["support"], phone="+14155550113")
    await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound"))
    conv_id = (await (await client.get("/api/v1/conversations", headers=admin)).json())["items"][0]["id"]
    assert (await client.post(f"/api/v1/conversations/{conv_id}/call", headers=dana_h)).status == 202
    [ring] = sim.sent("Calls")
    assert twiml(ring["Twiml"]).find("Gather") is None
    assert only(only(twiml(ring["Twiml"]), "Dial"), "Number").text == CUSTOMER


async def test_the_callers_wait_counts_from_when_they_first_queued(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    from datetime import timedelta

    from hub.keys import CHANNELS
    from hub.model import utcnow

    sim = fake[0]
    client, admin = await start(channels__twilio__numbers={BIZ: {"max_wait_seconds": 60}})
    _, carol_h = await agent(client, "Carol", ["support"], voice_client="carol")
    await webhook(client, VOICE, sample("voice_inbound"))
    queued_at = (await the_call(client, admin))["meta"]["queued_at"]
    conv_id = (await the_call(client, admin))["conversation_id"]
    assert (await client.post(f"/api/v1/conversations/{conv_id}/accept", headers=carol_h)).status == 200
    [moved] = await eventually(lambda: _async(sim.sent("Calls.update")))
    wait_url = only(twiml(moved["Twiml"]), "Enqueue").get("waitUrl") or ""
    assert query_of(wait_url) == {"handoff": "1", "since": str(int(queued_at))}

    voice = client.app[CHANNELS]["voice"]
    start_time = utcnow()
    voice.clock = lambda: start_time + timedelta(seconds=30)
    _, body, _ = await webhook(client, path_of(wait_url), sample("voice_wait", QueueTime="2"))
    assert only(twiml(body), "Say").text == "Connecting you to an agent.", "just moved: told so"
    assert only(twiml(body), "Pause").get("length") == "20"
    voice.clock = lambda: start_time + timedelta(seconds=50)
    _, body, _ = await webhook(client, path_of(wait_url), sample("voice_wait", QueueTime="22"))
    # (since= is whole seconds, and the clock above started a moment after the caller queued)
    assert [el.tag for el in twiml(body)] == ["Pause"]
    assert only(twiml(body), "Pause").get("length") in ("8", "9", "10"), "the pause ends at max_wait_seconds in all"
    # 61s after the caller first queued, though only 5s in the hand-off queue: off to voicemail.
    voice.clock = lambda: start_time + timedelta(seconds=61)
    _, body, _ = await webhook(client, path_of(wait_url), sample("voice_wait", QueueTime="5"))
    assert [el.tag for el in twiml(body)] == ["Leave"]


async def test_agents_the_hub_cannot_ring_are_not_offered_calls(
    start: Any, fake: tuple[TwilioFake, str], backend: str, prefix: str
) -> None:
    extra = {"routing__backend": "redis", "routing__key_prefix": prefix} if backend == "redis" else {}
    client, admin = await start(**extra)
    bob, bob_h = await agent(client, "Bob", ["support"])

    async def offers() -> list[int]:
        await client.app[ROUTER].tick()
        items = (await (await client.get("/api/v1/offers", headers=bob_h)).json())["items"]
        return [o["conversation_id"] for o in items]

    await webhook(client, VOICE, sample("voice_inbound"))
    call_conv = (await the_call(client, admin))["conversation_id"]
    assert await offers() == [], "no phone and no Twilio Client identity: no call offers"
    await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound", From="+14155550125"))
    texted = await eventually(offers)
    assert call_conv not in texted and len(texted) == 1, "texts are still offered"
    assert (await client.post(f"/api/v1/conversations/{texted[0]}/reject", headers=bob_h)).status == 200

    # An admin gives Bob a phone: calls reach him now.
    resp = await client.patch(f"/api/v1/agents/{bob}", json={"phone": "+14155550126"}, headers=admin)
    assert resp.status == 200, await resp.text()

    async def call_offered() -> Any:
        return call_conv in await offers()

    await eventually(call_offered)


# -- direct queues, the routing view's voice capacity, the customer's leg live, one write per call update -------------

DIRECT = {"support": {"title": "Support", "direct": True}}


class Updates:
    """Every message.updated event the hub publishes, collected while the test runs (what the console reads)."""

    def __init__(self, client: Client) -> None:
        import asyncio

        from hub.keys import BUS

        self.items: list[dict[str, Any]] = []
        self._sub = client.app[BUS].subscribe()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self._sub:
            if event.type == "message.updated":
                self.items.append(event.data["message"])

    async def close(self) -> None:
        import asyncio
        import contextlib

        self._sub.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def of(self, message_id: int) -> list[dict[str, Any]]:
        return [m for m in self.items if m["id"] == message_id]


def play(sim: TwilioFake, client: Client) -> None:
    """Let the simulator play the phones the hub rings, with signed callbacks back to this hub."""
    sim.hub_url = str(client.make_url("")).rstrip("/")
    sim.public_url = PUBLIC
    sim.ring_seconds, sim.talk_seconds = 0.05, 0.2


async def test_a_direct_queue_gives_a_missed_screened_call_to_the_next_agent(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    """A direct queue assigns without offers, so there is no offer to decline: the agent who did not press 1
    gets no calls while that caller waits, and routing assigns the call to the other agent, who takes it."""
    from hub.channels.twilio.outcome import summary

    sim = fake[0]
    client, admin = await start(routing__queues=DIRECT)
    play(sim, client)
    updates = Updates(client)
    try:
        alice, _ = await agent(client, "Alice", ["support"], phone="+14155550111")
        sim.keypad["+14155550111"] = ""  # Alice's voicemail answers: nothing pressed
        await webhook(client, VOICE, sample("voice_inbound", CallerName="Ann Lee"))
        call = await the_call(client, admin)
        conv_id = call["conversation_id"]
        assert (await conversation(client, admin, conv_id))["agent_id"] == alice, "assigned without an offer"
        bob, _ = await agent(client, "Bob", ["support"], phone="+14155550112")

        async def answered() -> Any:
            got = await the_call(client, admin)
            meta = got["meta"]
            return got if meta.get("outcome") == "answered" and meta.get("agent_call_status") == "completed" else None

        call = await eventually(answered, within=30)
        assert call["meta"]["agent_id"] == bob and call["meta"]["screen_accepted"]
        assert [f["To"] for f in sim.sent("Calls")] == ["+14155550111", "+14155550112"], "Alice was rung once"
        for ring in sim.sent("Calls"):
            assert only(twiml(ring["Twiml"]), "Gather") is not None, "both screened"
        assert (await conversation(client, admin, conv_id))["agent_id"] == bob
        assert len(sim.sent("Calls.update")) == 1, "the caller was moved to their hand-off queue once"
        # Every update the console saw carried its facts and their text together.
        seen = updates.of(call["id"])
        assert len(seen) > 5
        for m in seen:
            assert m["text"] == summary(m["meta"]), m
    finally:
        await updates.close()


async def test_a_direct_queue_with_one_agent_sends_a_missed_call_to_voicemail_not_round_again(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    import asyncio
    from datetime import timedelta

    from hub.keys import CHANNELS
    from hub.model import utcnow

    sim = fake[0]
    client, admin = await start(routing__queues=DIRECT, channels__twilio__numbers={BIZ: {"max_wait_seconds": 60}})
    play(sim, client)
    alice, _ = await agent(client, "Alice", ["support"], phone="+14155550111")
    sim.keypad["+14155550111"] = ""
    await webhook(client, VOICE, sample("voice_inbound"))
    conv_id = (await the_call(client, admin))["conversation_id"]

    async def back_in_line() -> Any:
        conv = await conversation(client, admin, conv_id)
        return conv["status"] == "open" and conv["agent_id"] is None

    await eventually(back_in_line, within=30)

    async def voice_capacity() -> tuple[int, int]:
        view = await (await client.get("/api/v1/routing", headers=admin)).json()
        [me] = [a for a in view["agents"] if a["agent_id"] == alice]
        return me["capacity"]["voice"], me["effective_capacity"]["voice"]

    assert await voice_capacity() == (1, 0), "no calls for Alice while this caller waits"
    await asyncio.sleep(1.0)
    await client.app[ROUTER].tick()
    assert [f["To"] for f in sim.sent("Calls")] == ["+14155550111"], "not rung again"

    # The caller waits on; at max_wait_seconds the wait URL sends them to voicemail.
    [moved] = sim.sent("Calls.update")
    wait_url = only(twiml(moved["Twiml"]), "Enqueue").get("waitUrl") or ""
    voice = client.app[CHANNELS]["voice"]
    now = utcnow()
    voice.clock = lambda: now + timedelta(seconds=61)
    _, body, _ = await webhook(client, path_of(wait_url), sample("voice_wait", QueueTime="40"))
    assert [el.tag for el in twiml(body)] == ["Leave"]
    _, body, _ = await webhook(client, f"{VOICE}/queue-result?handoff=1",
                               sample("voice_queue_result_leave", QueueTime="40"))
    assert only(twiml(body), "Record") is not None, "voicemail"
    assert (await the_call(client, admin))["meta"]["outcome"] == "no_agent"

    # The caller no longer waits: Alice takes calls again, and the conversation (with its voicemail to come) is
    # assigned to her without ringing anyone.
    async def rested() -> Any:
        return await voice_capacity() == (1, 1)

    await eventually(rested)

    async def assigned() -> Any:
        return (await conversation(client, admin, conv_id))["agent_id"] == alice

    await eventually(assigned)
    await asyncio.sleep(0.5)
    assert len(sim.sent("Calls")) == 1


async def test_the_routing_view_shows_the_voice_capacity_routing_uses(start: Any) -> None:
    client, admin = await start()
    bob, _ = await agent(client, "Bob", ["support"])
    carol, _ = await agent(client, "Carol", ["support"], voice_client="carol")
    spec = await (await client.get("/api/v1/openapi.json")).json()
    schema = {**spec["paths"]["/api/v1/routing"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
              "components": spec["components"]}
    resp = await client.get("/api/v1/routing", headers=admin)
    view = await resp.json()
    jsonschema.validate(view, schema)
    agents = {a["agent_id"]: a for a in view["agents"]}
    assert agents[bob]["effective_capacity"]["voice"] == 0, "the hub cannot ring Bob: no calls"
    assert agents[bob]["capacity"]["voice"] == 1, "as configured (what PUT /routing/agents sets)"
    assert agents[bob]["effective_capacity"]["chat"] == agents[bob]["capacity"]["chat"]
    assert agents[carol]["effective_capacity"] == agents[carol]["capacity"]
    resp = await client.patch(f"/api/v1/agents/{bob}", json={"phone": "+14155550126"}, headers=admin)
    assert resp.status == 200
    view = await (await client.get("/api/v1/routing", headers=admin)).json()
    [me] = [a for a in view["agents"] if a["agent_id"] == bob]
    assert me["effective_capacity"]["voice"] == 1


async def test_click_to_call_follows_the_customers_leg_live(start: Any, fake: tuple[TwilioFake, str]) -> None:
    import time

    sim = fake[0]
    client, admin = await start()
    dana, dana_h = await agent(client, "Dana", ["support"], phone="+14155550113")
    await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound"))
    conv_id = (await (await client.get("/api/v1/conversations", headers=admin)).json())["items"][0]["id"]
    msg = await (await client.post(f"/api/v1/conversations/{conv_id}/call", headers=dana_h)).json()
    [ring] = sim.sent("Calls")
    dial = only(twiml(ring["Twiml"]), "Dial")
    number = only(dial, "Number")
    assert number.text == CUSTOMER and number.get("statusCallbackMethod") == "POST"
    assert number.get("statusCallbackEvent") == "initiated ringing answered completed"
    progress = number.get("statusCallback") or ""
    assert path_of(progress).startswith(f"{VOICE}/status?")
    assert query_of(progress) == {"leg": "customer", "agent": str(dana), "message": str(msg["id"])}

    async def message() -> Any:
        return await (await client.get(f"/api/v1/messages/{msg['id']}", headers=admin)).json()

    agent_leg = {"From": BIZ, "To": "+14155550113", "Direction": "outbound-api", "CallSid": msg["external_id"]}
    await webhook(client, path_of(ring["StatusCallback"]), sample("voice_status_completed", CallStatus="in-progress",
                                                                  **agent_leg))
    leg = sample("voice_status_dialed_answered", ParentCallSid=msg["external_id"])
    status, _, _ = await webhook(client, path_of(progress), {**leg, "CallStatus": "ringing"})
    assert status == 204
    got = await message()
    assert got["meta"]["outcome"] == "dialing" and got["text"] == f"Calling {CUSTOMER}: the customer's phone is ringing"
    status, _, _ = await webhook(client, path_of(progress), leg, signed=False)
    assert status == 403 and (await message())["meta"]["outcome"] == "dialing", "unsigned: refused, nothing changed"

    status, _, _ = await webhook(client, path_of(progress), leg)  # answered: CallStatus in-progress
    assert status == 204
    got = await message()
    assert got["meta"]["outcome"] == "talking" and got["text"] == f"Call to {CUSTOMER} in progress"
    assert got["status"] == "sending" and abs(got["meta"]["talk_started_at"] - time.time()) < 30
    assert got["meta"]["customer_call_sid"] == leg["CallSid"]
    # Late or retried callbacks do not take it back to dialing.
    await webhook(client, path_of(progress), {**leg, "CallStatus": "ringing"})
    await webhook(client, path_of(ring["StatusCallback"]), sample("voice_status_completed", CallStatus="in-progress",
                                                                  **agent_leg))
    assert (await message())["meta"]["outcome"] == "talking"

    await webhook(client, path_of(progress), {**leg, "CallStatus": "completed", "CallDuration": "42"})
    got = await message()
    assert got["status"] == "delivered" and got["text"] == f"Call to {CUSTOMER}; talk time 42s"
    # The <Dial> action after it changes nothing more.
    await webhook(client, path_of(dial.get("action") or ""), sample("voice_dialed", **agent_leg))
    assert (await message())["meta"]["talk_seconds"] == 42
    resp = await client.post(f"{VOICE}/status?leg=customer", data=leg)
    assert resp.status == 403, "unsigned, and without ?message=: refused before anything is read"
    status, _, _ = await webhook(client, f"{VOICE}/status?leg=customer", leg)
    assert status == 400


async def test_click_to_call_with_the_simulator_goes_dialing_talking_answered(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    from hub.routing.calls import outbound_summary

    sim = fake[0]
    client, admin = await start()
    play(sim, client)
    sim.talk_seconds = 1.0
    _, dana_h = await agent(client, "Dana", ["support"], phone="+14155550113")
    await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound"))
    conv_id = (await (await client.get("/api/v1/conversations", headers=admin)).json())["items"][0]["id"]
    updates = Updates(client)
    try:
        msg = await (await client.post(f"/api/v1/conversations/{conv_id}/call", headers=dana_h)).json()

        async def done() -> Any:
            got = await (await client.get(f"/api/v1/messages/{msg['id']}", headers=admin)).json()
            return got if got["status"] == "delivered" else None

        got = await eventually(done)
        assert got["meta"]["outcome"] == "answered" and got["meta"]["talk_seconds"] == 1
        outcomes = [m["meta"].get("outcome") for m in updates.of(msg["id"])]
        steps = [o for i, o in enumerate(outcomes) if i == 0 or outcomes[i - 1] != o]
        assert steps == ["ringing_agent", "dialing", "talking", "answered"], outcomes
        for m in updates.of(msg["id"]):
            assert m["text"] == outbound_summary(m["meta"]), m
    finally:
        await updates.close()
