"""Phone calls in a real browser against a real hub process whose Twilio channels talk to the local Twilio REST
simulator (run here, in a thread): an inbound call offered, accepted in the console and bridged to the agent's phone
(which the simulator answers, screens and connects), and an agent calling a customer with the Call button while the
status pill follows the simulator's status callbacks (the customer's leg live: "Talking · 0:02").
Screenshot: call.png in $HUB_SCREENSHOTS (`make screenshots`)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.channels.twilio.signature import sign
from tests.channels.twilio.fake import BIZ, CUSTOMER, TOKEN, sample
from tests.e2e.conftest import SHOTS, Hub, SimulatorThread, free_port, run_hub, sign_in

ALEX_PHONE = "+14155550111"


@pytest.fixture
def hub(tmp_path: Path, twilio: SimulatorThread) -> Iterator[Hub]:
    """The e2e hub with the Twilio channels on: the simulator plays Twilio, its callbacks come back signed."""
    port = free_port()
    twilio.sim.ring_seconds, twilio.sim.talk_seconds = 1.5, 4.0
    env = twilio.hub_env(port, NUMBERS=json.dumps({BIZ: {"line": "main"}}))
    with run_hub(tmp_path, port, env) as running:
        alex = running.agent_ids["alex@example.com"]
        status, body = running.call("PATCH", f"/api/v1/agents/{alex}", {"phone": ALEX_PHONE})
        assert status == 200, body
        yield running


def twilio_post(hub: Hub, path: str, params: dict[str, str]) -> tuple[int, str]:
    """A webhook as Twilio sends it: form-encoded, signed over the hub's public URL."""
    url = hub.url + path
    req = urllib.request.Request(url, data=urllib.parse.urlencode(params).encode(), method="POST")
    req.add_header("X-Twilio-Signature", sign(TOKEN, url, params))
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(req, timeout=20) as resp:
        return resp.status, resp.read().decode()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def test_an_inbound_call_is_offered_accepted_and_bridged_to_the_agents_phone(
    hub: Hub, twilio: SimulatorThread, new_page: Any
) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click('.seg[data-presence="available"]')
    alex.wait_for_selector('.seg.active[data-presence="available"]')

    call = sample("voice_inbound", CallerName="Maria Lopez")
    status, body = twilio_post(hub, "/webhooks/twilio/voice", call)
    assert status == 200 and "<Enqueue" in body
    offer = alex.locator(".offer").first
    offer.wait_for()
    # A call is unmistakable: its own card (a ringing phone, "Incoming call", Answer), the caller's history count.
    assert offer.get_attribute("data-channel") == "voice" and "offer-call" in (offer.get_attribute("class") or "")
    assert offer.locator(".ring").count() == 1
    text = offer.inner_text()
    assert "Incoming call" in text and "Maria Lopez" in text and "First contact" in text and "SMS" not in text
    alex.wait_for_timeout(300)
    _shot(alex, "call-offer.png")
    offer.locator("text=Answer").click()
    alex.wait_for_url(re.compile(r"#/c/\d+$"))

    # The hub moved exactly this caller to their hand-off queue and rang Alex's phone; the simulator answers,
    # hears the announcement, presses 1 and is connected.
    def rung() -> list[Any]:
        return [c for c in twilio.sent("Calls") if c["To"] == ALEX_PHONE]

    for _ in range(100):
        if rung() and twilio.sent("Calls.update"):
            break
        alex.wait_for_timeout(100)
    [ring] = rung()
    assert ring["From"] == BIZ and "Call from Maria Lopez in Support. Press 1 to accept." in ring["Twiml"]
    [moved] = twilio.sent("Calls.update")
    assert moved["CallSid"] == call["CallSid"] and f"hub-{call['CallSid']}" in moved["Twiml"]

    card = alex.locator(".tl-msg .call-card").last
    card.filter(has_text="Answered by you").wait_for(timeout=30_000)
    card.filter(has_text="talk time").wait_for(timeout=30_000)
    assert CUSTOMER in card.inner_text()
    picker = alex.locator("#reply-channel")
    assert picker.input_value() == "sms", "after a call the reply goes by text to the same number"
    assert "voice" not in picker.locator("option").evaluate_all("els => els.map(e => e.value)")
    alex.wait_for_timeout(300)
    _shot(alex, "call-incoming.png")
    assert alex.errors == []


def test_the_agent_calls_a_customer_and_follows_the_call(hub: Hub, twilio: SimulatorThread, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click('.seg[data-presence="available"]')
    alex.wait_for_selector('.seg.active[data-presence="available"]')
    text = sample("sms_inbound", Body="Hi! Could someone call me about order #4821? Easier to explain by phone.")
    status, _ = twilio_post(hub, "/webhooks/twilio/sms", text)
    assert status == 200
    offer = alex.locator(".offer").first
    offer.wait_for()
    assert offer.get_attribute("data-channel") == "sms" and offer.locator(".ring").count() == 0
    assert "Incoming call" not in offer.inner_text()
    offer.locator("text=Accept").click()
    alex.wait_for_url(re.compile(r"#/c/\d+$"))
    alex.wait_for_selector(".conv-header .status-assigned")
    button = alex.locator("#call-btn")
    button.wait_for()
    assert CUSTOMER in (button.get_attribute("title") or "")
    button.click()
    pill = alex.locator("#call-state")
    pill.filter(has_text="Ringing your phone").wait_for()
    pill.filter(has_text="Dialing the customer").wait_for(timeout=30_000)
    alex.locator(".tl-msg .call-card >> text=Outgoing call").last.wait_for()
    # The customer answers (the <Number> status callback): the pill and the call's card count the talk time live.
    pill.filter(has_text=re.compile(r"Talking · 0:0\d")).wait_for(timeout=30_000)
    pill.filter(has_text=re.compile(r"Talking · 0:0[2-9]")).wait_for(timeout=10_000)
    card = alex.locator(".tl-msg .call-card").last
    card.filter(has_text=re.compile(r"Talking · 0:0\d")).wait_for()
    assert button.is_disabled(), "one call at a time: the customer is on the line"
    _shot(alex, "call.png")
    pill.filter(has_text="Call ended · talk time 0:04").wait_for(timeout=30_000)
    assert not button.is_disabled(), "the call is over: the agent can call again"
    [ring] = [c for c in twilio.sent("Calls") if c["To"] == ALEX_PHONE]
    assert "<Gather" not in ring["Twiml"], "the agent placed the call: no screening"
    assert f">{CUSTOMER}</Number></Dial>" in ring["Twiml"] and f'callerId="{BIZ}"' in ring["Twiml"]
    card.filter(has_text="talk time").wait_for()
    assert "Talking" not in card.inner_text(), "the live clock stops with the call"
    assert alex.errors == []


def test_admin_sees_who_routing_cannot_give_calls(hub: Hub, new_page: Any) -> None:
    page = new_page()
    sign_in(page, "admin@example.com")
    page.goto("/console/#/admin/routing")
    alex, ada = hub.agent_ids["alex@example.com"], hub.agent_ids["admin@example.com"]
    # Ada has no phone and no Twilio Client identity: routing gives her no calls, whatever her profile says.
    limited = page.locator(f'tr[data-profile="{ada}"] .chip.load.limited')
    limited.wait_for()
    assert limited.inner_text() == "0 of 1" and "no phone" in (limited.get_attribute("title") or "")
    assert page.locator(f'tr[data-profile="{alex}"] .chip.load.limited').count() == 0
    assert page.errors == []


def _silent_mp3(frames: int = 40) -> bytes:
    """About a second of silence as real MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz): a recording Chromium plays."""
    frame = bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(417 - 4)
    return frame * frames


def test_a_voicemail_shows_its_transcript_and_plays(hub: Hub, twilio: SimulatorThread, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    status, _ = twilio_post(hub, "/webhooks/twilio/voice", sample("voice_inbound", CallerName="Ann Lee"))
    assert status == 200
    rec_sid, rec_url = twilio.sim.add_recording(twilio.url, _silent_mp3())
    recording = sample("voice_recording", RecordingSid=rec_sid, RecordingUrl=rec_url)
    status, _ = twilio_post(hub, f"/webhooks/twilio/voice/recording?from=%2B14155550100&to={BIZ.replace('+', '%2B')}",
                            recording)
    assert status == 204
    alex.locator(".conv-item").first.click()
    card = alex.locator(".voicemail-card")
    card.wait_for()
    # While the transcript is on its way the card says so, and never shows the raw state word.
    assert card.get_attribute("data-transcript") == "pending"
    assert "Transcribing" in card.inner_text() and "pending" not in card.inner_text()

    transcript = sample("voice_transcription", RecordingSid=rec_sid, RecordingUrl=rec_url)
    status, _ = twilio_post(hub, "/webhooks/twilio/voice/transcription", transcript)
    assert status == 204
    card.locator(".transcript >> text=Hi, this is Ann Lee calling about order 1042").wait_for()
    text = card.inner_text()
    assert "completed" not in text and "Transcribing" not in text and "No transcript" not in text

    # The recording plays in the page: the browser reads its length from the hub's copy.
    for _ in range(50):
        if card.locator("audio").count():
            break
        alex.reload()  # the recording is fetched from Twilio after the voicemail is stored
        alex.wait_for_selector("#live-status.s-live")
        card = alex.locator(".voicemail-card")
        card.wait_for()
    seconds = card.locator("audio").evaluate(
        "a => new Promise((ok, bad) => { a.onloadedmetadata = () => ok(a.duration); a.onerror = () => bad(a.error && "
        "a.error.message || 'cannot play'); a.load(); })")
    assert 0.5 < seconds < 2
    _shot(alex, "voicemail.png")
    assert alex.errors == []
