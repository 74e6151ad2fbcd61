"""Phone calls through Twilio: real-format voice webhooks signed with the real algorithm; the TwiML the hub answers
is parsed and asserted; calls the hub places go through the official client to the local REST simulator."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from hub.channels.base import SendError
from hub.channels.twilio.voice import VoiceChannel
from hub.config import Settings
from hub.keys import CHANNELS
from tests.channels.twilio.fake import (
    BIZ,
    CUSTOMER,
    PUBLIC,
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
MENU = {BIZ: {"line": "main", "menu_prompt": "For sales, press 1. For support, press 2.",
              "menu": {"1": "sales", "2": "support"}, "max_wait_seconds": 120}}
QUEUES = {"support": {"title": "Support"}, "sales": {"title": "Sales"}}


@pytest.fixture
def start(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str]
) -> Callable[..., Any]:
    async def go(db_url: str | None = None, **extra: Any) -> tuple[Client, dict[str, str]]:
        extra.setdefault("routing__queues", QUEUES)
        return await start_hub(aiohttp_client, make_settings, fake[1], db_url, **extra)

    return go


async def timeline(client: Client, admin: dict[str, str]) -> list[Any]:
    resp = await client.get("/api/v1/customers", params={"identity": f"phone:{CUSTOMER}"}, headers=admin)
    found = (await resp.json())["items"]
    if not found:
        return []
    resp = await client.get(f"/api/v1/customers/{found[0]['id']}/timeline", headers=admin)
    items: list[Any] = (await resp.json())["items"]
    return items


async def the_call(client: Client, admin: dict[str, str]) -> Any:
    [call] = [m for m in await timeline(client, admin) if m["kind"] == "call"]
    return call


def only(root: ET.Element, tag: str) -> ET.Element:
    found = root.findall(tag)
    assert len(found) == 1, ET.tostring(root)
    return found[0]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    assert url.startswith(PUBLIC), url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def voice(client: Client) -> VoiceChannel:
    channel = client.app[CHANNELS]["voice"]
    assert isinstance(channel, VoiceChannel)
    return channel


async def test_a_call_lands_on_the_callers_timeline_and_is_enqueued(start: Any, db_url: str) -> None:
    client, admin = await start(db_url)
    await webhook(client, "/webhooks/twilio/sms", sample("sms_inbound"))
    status, body, headers = await webhook(client, VOICE, sample("voice_inbound"))
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    root = twiml(body)
    assert [el.tag for el in root] == ["Say", "Enqueue"]
    assert "next available agent" in (only(root, "Say").text or "")
    enqueue = only(root, "Enqueue")
    assert enqueue.text == "support"
    assert enqueue.get("waitUrl") == PUBLIC + f"{VOICE}/wait" and enqueue.get("waitUrlMethod") == "POST"
    assert enqueue.get("action") == PUBLIC + f"{VOICE}/queue-result"
    sms, call = await timeline(client, admin)
    assert call["kind"] == "call" and call["channel"] == "voice" and call["direction"] == "in"
    assert call["conversation_id"] == sms["conversation_id"], "texts and calls share the caller's one timeline"
    assert call["external_id"] == sample("voice_inbound")["CallSid"]
    assert call["meta"]["outcome"] == "queued" and call["meta"]["queue"] == "support"
    assert call["text"] == f"Incoming call from {CUSTOMER}, waiting in queue support"
    again = await webhook(client, VOICE, sample("voice_inbound"))
    assert again[0] == 200 and len(await timeline(client, admin)) == 2, "a retried CallSid is not duplicated"


async def test_forged_voice_webhooks_get_403_and_store_nothing(start: Any) -> None:
    client, admin = await start()
    for path in (VOICE, f"{VOICE}/status", f"{VOICE}/recording", f"{VOICE}/transcription", f"{VOICE}/menu"):
        status, _, _ = await webhook(client, path, sample("voice_inbound"), token="forged")
        assert status == 403, path
    assert await timeline(client, admin) == []


async def test_keypad_menu_picks_the_queue(start: Any) -> None:
    client, admin = await start(channels__twilio__numbers=MENU)
    _, body, _ = await webhook(client, VOICE, sample("voice_inbound"))
    root = twiml(body)
    gather = only(root, "Gather")
    assert gather.get("numDigits") == "1" and gather.get("action") == PUBLIC + f"{VOICE}/menu?retry=0"
    assert only(gather, "Say").text == "For sales, press 1. For support, press 2."
    assert only(root, "Enqueue").text == "support", "no key pressed: the conversation's queue"

    menu = path_of(gather.get("action") or "")
    _, body, _ = await webhook(client, menu, sample("voice_menu", Digits="1"))
    assert only(twiml(body), "Enqueue").text == "sales"
    call = await the_call(client, admin)
    assert call["meta"]["ivr"] == "1" and call["meta"]["queue"] == "sales"

    _, body, _ = await webhook(client, menu, sample("voice_menu", Digits="9"))
    root = twiml(body)
    assert "not one of the options" in (only(root, "Say").text or "")
    assert only(root, "Gather").get("action") == PUBLIC + f"{VOICE}/menu?retry=1"
    _, body, _ = await webhook(client, f"{VOICE}/menu?retry=1", sample("voice_menu", Digits="9"))
    root = twiml(body)
    assert root.find("Gather") is None and only(root, "Enqueue").text == "support", "asked once again, then queued"
    # A retry count that is no number of ours ('²' passes isdigit()) counts as the first try, never a 500.
    status, _, _ = await webhook(client, f"{VOICE}/menu?retry=²", sample("voice_menu", Digits="9"))
    assert status == 200


async def test_the_wait_url_tells_the_position_and_leaves_after_the_max_wait(start: Any) -> None:
    client, _ = await start(channels__twilio__numbers=MENU)
    _, body, _ = await webhook(client, f"{VOICE}/wait", sample("voice_wait", QueuePosition="3", QueueTime="30"))
    root = twiml(body)
    assert only(root, "Say").text == "You are caller number 3 in line."
    assert only(root, "Pause").get("length") == "20"
    _, body, _ = await webhook(client, f"{VOICE}/wait", sample("voice_wait", QueuePosition="1", QueueTime="110"))
    root = twiml(body)
    assert only(root, "Say").text == "You are next in line." and only(root, "Pause").get("length") == "10"
    _, body, _ = await webhook(client, f"{VOICE}/wait", sample("voice_wait", QueueTime="121"))
    assert [el.tag for el in twiml(body)] == ["Leave"]


async def test_no_agent_in_time_means_voicemail_with_transcription(start: Any) -> None:
    client, admin = await start()
    await webhook(client, VOICE, sample("voice_inbound"))
    _, body, _ = await webhook(client, f"{VOICE}/queue-result", sample("voice_queue_result_leave"))
    root = twiml(body)
    assert "leave a message" in (root[0].text or "")
    record = only(root, "Record")
    assert record.get("transcribe") == "true"
    assert record.get("transcribeCallback") == PUBLIC + f"{VOICE}/transcription"
    callback = record.get("recordingStatusCallback") or ""
    assert parse_qs(urlsplit(callback).query) == {"from": [CUSTOMER], "to": [BIZ]}
    call = await the_call(client, admin)
    assert call["meta"]["outcome"] == "no_agent" and call["meta"]["queue_seconds"] == 301
    assert call["text"] == "No agent answered after 5m 01s in queue: offered voicemail"


async def test_outside_business_hours_goes_straight_to_voicemail(start: Any) -> None:
    numbers = {BIZ: {"hours": ["mon-fri 09:00-17:00"], "timezone": "America/New_York"}}
    client, admin = await start(channels__twilio__numbers=numbers)
    voice(client).clock = lambda: datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # a Sunday
    _, body, _ = await webhook(client, VOICE, sample("voice_inbound"))
    root = twiml(body)
    assert "We are closed" in (root[0].text or "") and root.find("Record") is not None
    assert root.find("Enqueue") is None
    assert (await the_call(client, admin))["meta"]["outcome"] == "after_hours"
    voice(client).clock = lambda: datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
    _, body, _ = await webhook(client, VOICE, sample("voice_inbound", CallSid=new_sid("CA")))
    assert twiml(body).find("Enqueue") is not None


async def test_without_hours_of_its_own_a_call_follows_its_queues_stored_business_hours(
    start: Any, db_url: str
) -> None:
    client, admin = await start(db_url)
    weekdays = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    resp = await client.put("/api/v1/business-hours/default", headers=admin, json={
        "timezone": "America/New_York", "weekly": weekdays, "holidays": ["2026-11-26"]})
    assert resp.status == 200
    voice(client).clock = lambda: datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # a Sunday
    _, body, _ = await webhook(client, VOICE, sample("voice_inbound"))
    root = twiml(body)
    assert "We are closed" in (root[0].text or "") and root.find("Record") is not None and root.find("Enqueue") is None
    assert (await the_call(client, admin))["meta"]["outcome"] == "after_hours"
    voice(client).clock = lambda: datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # Thanksgiving, 10:00 in New York
    _, body, _ = await webhook(client, VOICE, sample("voice_inbound", CallSid=new_sid("CA")))
    assert twiml(body).find("Enqueue") is None, "a holiday is closed all day"
    voice(client).clock = lambda: datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
    _, body, _ = await webhook(client, VOICE, sample("voice_inbound", CallSid=new_sid("CA")))
    assert only(twiml(body), "Enqueue").text == "support"
    # The queue's own hours win over the default's: support never opens.
    resp = await client.put("/api/v1/business-hours/support", headers=admin, json={
        "timezone": "UTC", "weekly": {}})
    assert resp.status == 200
    _, body, _ = await webhook(client, VOICE, sample("voice_inbound", CallSid=new_sid("CA")))
    assert twiml(body).find("Enqueue") is None and twiml(body).find("Record") is not None


async def test_the_menu_choice_decides_whose_hours_apply_and_the_numbers_own_hours_win(
    start: Any, db_url: str
) -> None:
    numbers = {**MENU, "+14155550123": {"line": "open", "hours": ["mon-sun 00:00-24:00"]}}
    client, admin = await start(db_url, channels__twilio__numbers=numbers)
    resp = await client.put("/api/v1/business-hours/sales", headers=admin, json={"timezone": "UTC", "weekly": {}})
    assert resp.status == 200
    _, body, _ = await webhook(client, VOICE, sample("voice_inbound"))
    menu = path_of(only(twiml(body), "Gather").get("action") or "")
    _, body, _ = await webhook(client, menu, sample("voice_menu", Digits="1"))
    root = twiml(body)
    assert root.find("Enqueue") is None and "We are closed" in (root[0].text or "") and root.find("Record") is not None
    call = await the_call(client, admin)
    assert call["meta"]["outcome"] == "after_hours" and call["meta"]["queue"] == "sales"
    _, body, _ = await webhook(client, menu, sample("voice_menu", Digits="2"))
    assert only(twiml(body), "Enqueue").text == "support", "support has no hours: open"
    # Asked again after a wrong key, a caller pressing nothing falls to a closed queue: voicemail, not the line.
    resp = await client.put("/api/v1/business-hours/support", headers=admin, json={"timezone": "UTC", "weekly": {}})
    assert resp.status == 200
    _, body, _ = await webhook(client, menu, sample("voice_menu", Digits="9"))
    root = twiml(body)
    assert root.find("Gather") is not None and root.find("Enqueue") is None and root.find("Record") is not None
    # A number with hours of its own follows them, though every queue's stored hours are closed now.
    other = sample("voice_inbound", CallSid=new_sid("CA"), To="+14155550123", Called="+14155550123")
    _, body, _ = await webhook(client, VOICE, other)
    assert twiml(body).find("Record") is None and only(twiml(body), "Enqueue").text in ("sales", "support")


async def test_voicemail_carries_the_audio_and_the_transcript(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim, url = fake
    client, admin = await start()
    await webhook(client, VOICE, sample("voice_inbound"))
    audio = b"ID3 fake mp3 voicemail"
    rec_sid, rec_url = sim.add_recording(url, audio)
    recording = sample("voice_recording", RecordingSid=rec_sid, RecordingUrl=rec_url)
    status, _, _ = await webhook(client, f"{VOICE}/recording?from=%2B14155550100&to=%2B14155550199", recording)
    assert status == 204
    [vm] = [m for m in await timeline(client, admin) if m["kind"] == "voicemail"]
    assert vm["text"] == "Voicemail (23s); transcript pending" and vm["external_id"] == rec_sid
    assert vm["attachments"][0]["content_type"] == "audio/mpeg"
    assert (await the_call(client, admin))["text"] == "Call went to voicemail"

    async def stored() -> Any:
        [m] = [m for m in await timeline(client, admin) if m["kind"] == "voicemail"]
        return m["attachments"][0] if m["attachments"][0]["status"] == "stored" else None

    att = await eventually(stored)
    assert await (await client.get(att["url"], headers=admin)).read() == audio
    transcript = sample("voice_transcription", RecordingSid=rec_sid, RecordingUrl=rec_url)
    for _ in range(2):  # a retried callback changes nothing more
        status, _, _ = await webhook(client, f"{VOICE}/transcription", transcript)
        assert status == 204
    [vm] = [m for m in await timeline(client, admin) if m["kind"] == "voicemail"]
    assert vm["text"].startswith("Hi, this is Ann Lee calling about order 1042")
    assert vm["meta"]["transcript"] == "completed"


async def test_a_transcript_before_its_recording_still_makes_one_voicemail(start: Any) -> None:
    client, admin = await start()
    await webhook(client, f"{VOICE}/transcription", sample("voice_transcription"))
    await webhook(client, f"{VOICE}/recording?from=%2B14155550100&to=%2B14155550199", sample("voice_recording"))
    [vm] = [m for m in await timeline(client, admin) if m["kind"] == "voicemail"]
    assert vm["text"].startswith("Hi, this is Ann Lee") and len(vm["attachments"]) == 1


async def test_abandoned_missed_and_answered_calls_are_visible(start: Any) -> None:
    client, admin = await start()
    await webhook(client, VOICE, sample("voice_inbound"))
    await webhook(client, f"{VOICE}/queue-result", sample("voice_queue_result_hangup"))
    await webhook(client, f"{VOICE}/status", sample("voice_status_completed"))
    call = await the_call(client, admin)
    assert call["text"] == "Abandoned call: the caller hung up after 1m 35s in queue"
    assert call["meta"]["duration_seconds"] == 227 and call["meta"]["call_status"] == "completed"

    missed = new_sid("CA")
    await webhook(client, VOICE, sample("voice_inbound", CallSid=missed))
    await webhook(client, f"{VOICE}/status", sample("voice_status_no_answer", CallSid=missed))
    [m] = [m for m in await timeline(client, admin) if m["external_id"] == missed]
    assert m["text"] == "Missed call (no-answer)" and m["meta"]["outcome"] == "missed"

    answered = new_sid("CA")
    await webhook(client, VOICE, sample("voice_inbound", CallSid=answered))
    await webhook(client, f"{VOICE}/queue-result", sample("voice_queue_result_bridged", CallSid=answered))
    await webhook(client, f"{VOICE}/status", sample("voice_status_completed", CallSid=answered))
    [a] = [m for m in await timeline(client, admin) if m["external_id"] == answered]
    assert a["text"] == "Call answered; talk time 3m 05s (waited 42s)"


async def test_bridging_rings_the_agent_with_twiml_that_dials_the_queue(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start()
    caller_sid = sample("voice_inbound")["CallSid"]
    await webhook(client, VOICE, sample("voice_inbound"))
    agent_sid = await voice(client).bridge(queue="support", agent="+14155550111", from_number=BIZ,
                                           caller_call_sid=caller_sid, agent_id=7)
    [form] = sim.sent("Calls")
    assert form["To"] == "+14155550111" and form["From"] == BIZ and agent_sid in sim.calls
    dial = only(twiml(form["Twiml"]), "Dial")
    assert only(dial, "Queue").text == "support"
    callback = form["StatusCallback"]
    assert parse_qs(urlsplit(callback).query) == {"leg": ["agent"], "call": [caller_sid], "agent": ["7"]}
    assert form.getall("StatusCallbackEvent") == ["initiated", "answered", "completed"]

    await webhook(client, f"{VOICE}/queue-result", sample("voice_queue_result_bridged"))
    agent_leg = sample("voice_status_completed", CallSid=agent_sid, CallDuration="185", From=BIZ,
                       To="+14155550111", Direction="outbound-api")
    status, _, _ = await webhook(client, path_of(callback), agent_leg)
    assert status == 204
    call = await the_call(client, admin)
    assert call["meta"]["agent_id"] == 7 and call["meta"]["agent_call_sid"] == agent_sid
    assert call["text"] == "Call answered by agent 7; talk time 3m 05s (waited 42s)"


async def test_bridging_failures_are_reported_as_send_errors(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    client, _ = await start()
    with pytest.raises(SendError, match="agent_phone"):
        await voice(client).bridge(queue="support", from_number=BIZ)
    sim.script["Calls"] = [Scripted(503), Scripted(400, 21215, "Geo permission not enabled for +44")]
    with pytest.raises(SendError) as retry:
        await voice(client).bridge(queue="support", agent="+14155550111", from_number=BIZ)
    assert not retry.value.permanent and "Twilio error 20500" in retry.value.reason
    with pytest.raises(SendError) as final:
        await voice(client).bridge(queue="support", agent="+442071838750", from_number=BIZ)
    assert final.value.permanent and "Geo permission" in final.value.reason


async def test_click_to_call_rings_the_agent_then_dials_the_customer(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    client, _ = await start(channels__twilio__numbers={BIZ: {"agent_phone": "client:desk"}})
    await voice(client).bridge(queue="support", from_number=BIZ)
    assert fake[0].sent("Calls")[0]["To"] == "client:desk", "the number's agent_phone when none is given"
    fake[0].requests.clear()
    await voice(client).call_customer(agent="client:alice", customer=CUSTOMER, from_number=BIZ, agent_id=1)
    [form] = fake[0].sent("Calls")
    assert form["To"] == "client:alice"
    dial = only(twiml(form["Twiml"]), "Dial")
    assert only(dial, "Number").text == CUSTOMER and dial.get("callerId") == BIZ


async def test_a_text_reply_on_a_call_says_to_use_sms(start: Any) -> None:
    client, admin = await start()
    await webhook(client, VOICE, sample("voice_inbound"))
    call = await the_call(client, admin)
    resp = await client.post(f"/api/v1/conversations/{call['conversation_id']}/messages",
                             json={"text": "call you back"}, headers=admin)
    mid = (await resp.json())["id"]

    async def failed() -> Any:
        got = await (await client.get(f"/api/v1/messages/{mid}", headers=admin)).json()
        return got if got["status"] == "failed" else None

    assert "send it on channel sms" in (await eventually(failed))["status_reason"]


@pytest.mark.parametrize(
    ("at_utc", "open_"),
    [
        (datetime(2026, 11, 23, 13, 59, tzinfo=UTC), False),  # Monday 08:59 in New York
        (datetime(2026, 11, 23, 14, 0, tzinfo=UTC), True),  # Monday 09:00
        (datetime(2026, 11, 23, 21, 59, tzinfo=UTC), True),  # Monday 16:59
        (datetime(2026, 11, 23, 22, 0, tzinfo=UTC), False),  # Monday 17:00: closed
        (datetime(2026, 11, 28, 16, 0, tzinfo=UTC), True),  # Saturday 11:00
        (datetime(2026, 11, 29, 16, 0, tzinfo=UTC), False),  # Sunday
    ],
)
def test_business_hours_in_the_numbers_time_zone(at_utc: datetime, open_: bool) -> None:
    from hub.business_hours import is_open

    assert is_open(["mon-fri 09:00-17:00", "sat 10:00-14:00"], "America/New_York", at_utc) is open_


def test_hours_spans_wrap_the_week_and_bad_ones_say_why() -> None:
    from hub.business_hours import is_open, parse_span

    assert parse_span("fri-mon 00:00-24:00").days == frozenset({4, 5, 6, 0})
    assert is_open([], "UTC", datetime(2026, 11, 29, 3, 0, tzinfo=UTC)), "no hours: always open"
    for bad, why in [("weekdays 9-5", "not a span"), ("mon 17:00-09:00", "end after it starts"),
                     ("mon 09:00-25:00", "00:00 to 24:00")]:
        with pytest.raises(ValueError, match=why):
            parse_span(bad)
