"""SMS, MMS and WhatsApp through Twilio: real-format webhooks signed with the real algorithm, into the real app and
store; replies through the official client (async HTTP client) against the local Twilio REST simulator."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.api.auth import create_token
from hub.app import build_app
from hub.channels.base import SendError
from hub.channels.twilio import media as twilio_media
from hub.channels.twilio.sms import SmsChannel
from hub.config import ConfigError, Settings, load_settings
from hub.keys import CHANNELS, DB
from hub.model import Identity, Outbound
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
    settings_env,
    signature,
    start_hub,
    twiml,
    webhook,
)
from tests.waiting import eventually

Client = TestClient[Any, Any]
SMS = "/webhooks/twilio/sms"
STATUS = "/webhooks/twilio/sms/status"


@pytest.fixture
def start(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str]
) -> Callable[..., Any]:
    async def go(db_url: str | None = None, **extra: Any) -> tuple[Client, dict[str, str]]:
        return await start_hub(aiohttp_client, make_settings, fake[1], db_url, **extra)

    return go


async def timeline(client: Client, admin: dict[str, str], identity: str = f"phone:{CUSTOMER}") -> list[Any]:
    resp = await client.get("/api/v1/customers", params={"identity": identity}, headers=admin)
    found = (await resp.json())["items"]
    if not found:
        return []
    resp = await client.get(f"/api/v1/customers/{found[0]['id']}/timeline", headers=admin)
    items: list[Any] = (await resp.json())["items"]
    return items


async def journal_count(client: Client) -> int:
    row = await client.app[DB].read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM journal"))
    return int(row["n"])


async def message(client: Client, admin: dict[str, str], mid: int) -> Any:
    return await (await client.get(f"/api/v1/messages/{mid}", headers=admin)).json()


# -- inbound -----------------------------------------------------------------------------------------------------------


async def test_inbound_sms_is_stored_then_answered_with_empty_twiml(start: Any, db_url: str) -> None:
    client, admin = await start(db_url)
    status, body, headers = await webhook(client, SMS, sample("sms_inbound"))
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert len(twiml(body)) == 0, "an empty <Response/>: the hub replies through the outbox, not in TwiML"
    [msg] = await timeline(client, admin)
    assert msg["channel"] == "sms" and msg["direction"] == "in" and msg["kind"] == "text"
    assert msg["text"] == "Hi, my order #1042 has not arrived yet. Can you check?"
    assert msg["identity"] == f"phone:{CUSTOMER}" and msg["external_id"] == sample("sms_inbound")["MessageSid"]
    assert msg["meta"]["to"] == BIZ and msg["meta"]["from_city"] == "SAN FRANCISCO"


async def test_a_retried_message_sid_is_not_duplicated(start: Any, db_url: str) -> None:
    client, admin = await start(db_url)
    for _ in range(3):
        status, _, _ = await webhook(client, SMS, sample("sms_inbound"))
        assert status == 200
    assert len(await timeline(client, admin)) == 1
    assert await journal_count(client) == 1


async def test_an_sms_with_a_nul_byte_is_journaled_and_never_a_500(start: Any, db_url: str) -> None:
    """PostgreSQL text cannot hold NUL: the message is kept on both stores with U+FFFD in its place, and Twilio
    gets its answer, so nothing fails on every replay."""
    client, admin = await start(db_url)
    status, _, _ = await webhook(client, SMS, sample("sms_inbound", Body="a\x00b"))
    assert status == 200
    rows = await client.app[DB].read(lambda tx: tx.all("SELECT status FROM journal"))
    assert [r["status"] for r in rows] == ["done"]
    assert [m["text"] for m in await timeline(client, admin)] == ["a\ufffdb"]


async def test_forged_and_unsigned_webhooks_get_403_and_store_nothing(start: Any) -> None:
    client, admin = await start()
    params = sample("sms_inbound")
    good = signature(PUBLIC + SMS, params)
    attempts = [
        ({}, params),  # unsigned
        ({"X-Twilio-Signature": signature(PUBLIC + SMS, params, "not-the-token")}, params),  # forged
        # signed for the URL the hub sees locally, not the public one Twilio was given
        ({"X-Twilio-Signature": signature(str(client.make_url(SMS)), params)}, params),
        ({"X-Twilio-Signature": good}, {**params, "Body": "send me a refund"}),  # tampered body
        ({"X-Twilio-Signature": good, "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_MD5"}, params),
    ]
    for headers, data in attempts:
        resp = await client.post(SMS, data=data, headers=headers)
        assert resp.status == 403, await resp.text()
        assert "X-Twilio-Signature" in (await resp.json())["error"]["message"]
    assert await timeline(client, admin) == [] and await journal_count(client) == 0


async def test_signature_is_checked_against_the_public_url_with_its_query(start: Any) -> None:
    client, _admin = await start()
    params = sample("sms_inbound")
    status, _, _ = await webhook(client, SMS + "?line=sales", params, signed_url=PUBLIC + SMS)
    assert status == 403, "the query string is part of what Twilio signs"
    status, _, _ = await webhook(client, SMS + "?line=sales", params)
    assert status == 200


async def test_log_only_mode_accepts_and_logs_bad_signatures(start: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, admin = await start(channels__twilio__signature_mode="log-only")
    with caplog.at_level(logging.WARNING, logger="hub.channels.twilio"):
        status, _, _ = await webhook(client, SMS, sample("sms_inbound"), signed=False)
    assert status == 200
    assert len(await timeline(client, admin)) == 1
    assert any("signature_mode = log-only" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text


async def test_unparseable_events_are_flagged_and_answered(start: Any) -> None:
    client, _admin = await start()
    status, _body, headers = await webhook(client, SMS, sample("sms_inbound", From="", Body="no sender"))
    assert status == 202 and "has no From" in headers["X-Hub-Flagged"]
    status, _, headers = await webhook(client, SMS, sample("sms_inbound", MessageSid="SMbad", SmsSid="SMbad",
                                                           From="not a phone"))
    assert status == 202 and "not a phone number" in headers["X-Hub-Flagged"]
    rows = await client.app[DB].read(lambda tx: tx.all("SELECT status, reason, error FROM journal ORDER BY id"))
    assert [r["status"] for r in rows] == ["rejected", "rejected"]
    assert [r["reason"] for r in rows] == ["unreadable", "bad_number"], "operators filter on these (attention.md)"
    metrics = await (await client.get("/metrics")).text()
    assert 'hub_flagged_events_total{channel="sms",reason="bad_number"} 1.0' in metrics
    resp = await client.post(SMS, json={"MessageSid": "x"})
    assert resp.status == 415 and "x-www-form-urlencoded" in (await resp.json())["error"]["message"]


async def test_whatsapp_is_its_own_channel_on_the_same_timeline(start: Any) -> None:
    client, admin = await start()
    await webhook(client, SMS, sample("sms_inbound"))
    status, _, _ = await webhook(client, SMS, sample("whatsapp_inbound"))
    assert status == 200
    sms, wa = await timeline(client, admin)
    assert wa["channel"] == "whatsapp" and wa["identity"] == sms["identity"] == f"phone:{CUSTOMER}"
    assert wa["conversation_id"] == sms["conversation_id"], "one open conversation across channels"
    resp = await client.get("/api/v1/customers", params={"identity": f"phone:{CUSTOMER}"}, headers=admin)
    assert (await resp.json())["items"][0]["name"] == "Ann Lee", "WhatsApp's ProfileName names the customer"


async def test_the_number_texted_is_the_business_line(start: Any) -> None:
    client, admin = await start(channels__twilio__numbers={BIZ: {"line": "sales"}})
    await webhook(client, SMS, sample("sms_inbound"))
    [msg] = await timeline(client, admin)
    conv = await (await client.get(f"/api/v1/conversations/{msg['conversation_id']}", headers=admin)).json()
    assert conv["business_line"] == "sales" and msg["meta"]["business_line"] == "sales"


# -- outbound ----------------------------------------------------------------------------------------------------------


async def _conversation(client: Client, admin: dict[str, str], name: str = "sms_inbound") -> int:
    await webhook(client, SMS, sample(name))
    return int((await timeline(client, admin))[-1]["conversation_id"])


async def _reply(client: Client, admin: dict[str, str], conv: int, text: str, **body: Any) -> tuple[int, Any]:
    resp = await client.post(f"/api/v1/conversations/{conv}/messages", json={"text": text, **body}, headers=admin)
    return resp.status, await resp.json()


async def test_reply_goes_out_from_the_number_texted_and_status_callbacks_move_it(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start()
    conv = await _conversation(client, admin)
    status, reply = await _reply(client, admin, conv, "It ships today!")
    assert status == 201 and reply["status"] == "queued"
    sent = await eventually(lambda: _status_is(client, admin, reply["id"], "sending"))
    [form] = sim.sent()
    assert form["To"] == CUSTOMER and form["From"] == BIZ and form["Body"] == "It ships today!"
    assert form["StatusCallback"] == PUBLIC + STATUS
    sid = sent["external_id"]
    assert sid in sim.messages and sid.startswith("SM")
    for twilio_status, ours in [("sent", "sent"), ("delivered", "delivered"), ("sent", "delivered")]:
        code, _, _ = await webhook(client, STATUS, sample("sms_status_sent", MessageSid=sid, SmsSid=sid,
                                                          MessageStatus=twilio_status, SmsStatus=twilio_status))
        assert code == 204
        assert (await message(client, admin, reply["id"]))["status"] == ours, "a late 'sent' never undoes delivered"


async def test_undelivered_shows_twilios_error_code_to_the_agent(start: Any) -> None:
    client, admin = await start()
    conv = await _conversation(client, admin)
    _, reply = await _reply(client, admin, conv, "Are you there?")
    sent = await eventually(lambda: _status_is(client, admin, reply["id"], "sending"))
    sid = sent["external_id"]
    await webhook(client, STATUS, sample("sms_status_undelivered", MessageSid=sid, SmsSid=sid))
    got = await message(client, admin, reply["id"])
    assert got["status"] == "undelivered"
    assert got["status_reason"] == "Twilio error 30003: unreachable destination handset (phone off or out of coverage)"


async def test_status_callbacks_are_signed_too(start: Any) -> None:
    client, _admin = await start()
    status, _, _ = await webhook(client, STATUS, sample("sms_status_delivered"), signed=False)
    assert status == 403
    status, body, _ = await webhook(client, STATUS, sample("sms_status_delivered", MessageStatus="bogus"))
    assert status == 400 and "MessageStatus 'bogus'" in body


async def _status_is(client: Client, admin: dict[str, str], mid: int, status: str) -> Any:
    got = await message(client, admin, mid)
    return got if got["status"] == status else None


async def test_bodies_over_1600_characters_are_refused_before_sending(start: Any, fake: tuple[TwilioFake, str]) -> None:
    client, admin = await start()
    conv = await _conversation(client, admin)
    status, body = await _reply(client, admin, conv, "x" * 1601)
    assert status == 422 and "channel sms allows at most 1600" in body["error"]["message"]
    assert fake[0].sent() == []


async def test_rest_500_and_429_are_retried_then_sent(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    sim.script["Messages"] = [Scripted(500), Scripted(429, headers={"Retry-After": "0"})]
    client, admin = await start()
    conv = await _conversation(client, admin)
    _, reply = await _reply(client, admin, conv, "third time lucky")
    sent = await eventually(lambda: _status_is(client, admin, reply["id"], "sending"))
    assert len(sim.sent()) == 3 and sent["status_reason"] is None
    assert len(sim.messages) == 1, "retries never sent the message twice"


async def test_rest_errors_that_persist_are_reported_not_lost(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    sim.script["Messages"] = [Scripted(503)] * 10
    client, admin = await start(outbox__max_attempts="3")
    conv = await _conversation(client, admin)
    _, reply = await _reply(client, admin, conv, "doomed")
    failed = await eventually(lambda: _status_is(client, admin, reply["id"], "failed"))
    assert "Twilio error 20500" in failed["status_reason"] and "gave up after 3 attempts" in failed["status_reason"]
    assert len(sim.sent()) == 3


async def test_a_4xx_from_twilio_is_final(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    sim.script["Messages"] = [Scripted(400, 21211, "The 'To' number +14155550100 is not a valid phone number.")]
    client, admin = await start()
    conv = await _conversation(client, admin)
    _, reply = await _reply(client, admin, conv, "hello")
    failed = await eventually(lambda: _status_is(client, admin, reply["id"], "failed"))
    assert failed["status_reason"] == (
        "sending failed: Twilio error 21211: The 'To' number +14155550100 is not a valid phone number."
    )
    assert len(sim.sent()) == 1


async def test_stop_opts_out_until_start(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    client, admin = await start()
    conv = await _conversation(client, admin)
    await webhook(client, SMS, sample("sms_stop"))
    before = len(await timeline(client, admin))
    status, refused = await _reply(client, admin, conv, "Wait, one more thing")
    # Refused when the agent sends it, not later in the outbox: nothing stored, nothing sent.
    assert status == 422, refused
    reason = refused["error"]["message"]
    assert "opted out by texting STOP on 20" in reason and "until they text START" in reason
    assert len(await timeline(client, admin)) == before
    assert sim.sent() == []
    stop = [m for m in await timeline(client, admin) if m["text"] == "STOP"]
    assert stop and stop[0]["meta"]["opt_out"] == "STOP", "the STOP itself is on the timeline"
    await webhook(client, SMS, sample("sms_start"))
    _, reply = await _reply(client, admin, conv, "Welcome back")
    await eventually(lambda: _status_is(client, admin, reply["id"], "sending"))
    assert [f["Body"] for f in sim.sent()] == ["Welcome back"]


async def test_twilio_saying_unsubscribed_records_the_opt_out(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    sim.script["Messages"] = [Scripted(400, 21610, "Attempt to send to unsubscribed recipient")]
    client, admin = await start()
    conv = await _conversation(client, admin)
    _, first = await _reply(client, admin, conv, "one")
    failed = await eventually(lambda: _status_is(client, admin, first["id"], "failed"))
    assert "opted out" in failed["status_reason"]
    status, second = await _reply(client, admin, conv, "two")
    assert status == 422 and "until they text START" in second["error"]["message"] and len(sim.sent()) == 1


async def test_whatsapp_replies_go_out_as_whatsapp(start: Any, fake: tuple[TwilioFake, str]) -> None:
    sim = fake[0]
    client, admin = await start()
    conv = await _conversation(client, admin, "whatsapp_inbound")
    _, reply = await _reply(client, admin, conv, "Yes, 10 to 4")
    assert reply["channel"] == "whatsapp"
    await eventually(lambda: _status_is(client, admin, reply["id"], "sending"))
    [form] = sim.sent()
    assert form["To"] == f"whatsapp:{CUSTOMER}" and form["From"] == "whatsapp:+14155238886"


async def test_messaging_service_is_the_sender_when_configured(start: Any, fake: tuple[TwilioFake, str]) -> None:
    client, admin = await start(channels__twilio__messaging_service_sid="MG" + "1" * 32)
    conv = await _conversation(client, admin)
    _, reply = await _reply(client, admin, conv, "via the service")
    await eventually(lambda: _status_is(client, admin, reply["id"], "sending"))
    [form] = fake[0].sent()
    assert form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in form


# -- MMS media -----------------------------------------------------------------------------------------------------


async def _attachments(client: Client, admin: dict[str, str]) -> list[Any]:
    msgs = await timeline(client, admin)
    return [a for m in msgs for a in m["attachments"]]


async def test_mms_media_is_listed_at_once_and_fetched_with_the_account_credentials(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim, url = fake
    sid = new_sid("MM")
    jpeg, png = b"\xff\xd8\xff\xe0 a photo", b"\x89PNG a screenshot"
    sim.script["media"] = [Scripted(500)]  # the first download fails and is retried
    params = sample("mms_inbound", MessageSid=sid, SmsSid=sid, SmsMessageSid=sid,
                    MediaUrl0=sim.add_media(url, sid, jpeg, "image/jpeg"),
                    MediaUrl1=sim.add_media(url, sid, png, "image/png"))
    client, admin = await start()
    status, _, _ = await webhook(client, SMS, params)
    assert status == 200
    [msg] = await timeline(client, admin)
    assert msg["text"] == "Here is the damaged box"
    assert [a["content_type"] for a in msg["attachments"]] == ["image/jpeg", "image/png"]
    assert msg["attachments"][0]["filename"] == f"{sid}-0.jpg"

    async def stored() -> list[Any] | None:
        atts = await _attachments(client, admin)
        return atts if all(a["status"] == "stored" for a in atts) else None

    atts = await eventually(stored)
    bodies = [await (await client.get(a["url"], headers=admin)).read() for a in atts]
    assert bodies == [jpeg, png]
    assert len(sim.media_gets) == 3, "one failed download, retried, then the second file"


async def test_media_over_the_limit_or_off_twilio_is_recorded_as_failed(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim, url = fake
    sid = new_sid("MM")
    params = sample("mms_inbound", MessageSid=sid, SmsSid=sid, SmsMessageSid=sid,
                    MediaUrl0=sim.add_media(url, sid, b"x" * 2048, "image/jpeg"),
                    MediaUrl1="https://evil.example.com/steal-credentials.png")
    client, admin = await start(channels__twilio__max_media_bytes="1024")
    await webhook(client, SMS, params)

    async def settled() -> list[Any] | None:
        atts = await _attachments(client, admin)
        return atts if all(a["status"] == "failed" for a in atts) else None

    big, foreign = await eventually(settled)
    assert "over the 1024-byte limit" in big["error"]
    assert "evil.example.com is not Twilio's API host" in foreign["error"]
    assert all("Media" in p for p in sim.media_gets), "the foreign URL was never requested"


async def test_failed_downloads_give_up_after_the_configured_attempts(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim, url = fake
    sid = new_sid("MM")
    sim.script["media"] = [Scripted(500)] * 10
    params = sample("mms_inbound", MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, NumMedia="1",
                    MediaUrl0=sim.add_media(url, sid, b"data", "image/jpeg"))
    client, admin = await start(channels__twilio__media_attempts="2")
    await webhook(client, SMS, params)

    async def failed() -> Any:
        atts = await _attachments(client, admin)
        return atts[0] if atts and atts[0]["status"] == "failed" else None

    att = await eventually(failed)
    assert "attempt 2 of 2" in att["error"] and "HTTP 500" in att["error"]


# -- configuration -------------------------------------------------------------------------------------------------


def test_enabled_without_credentials_is_a_startup_error() -> None:
    with pytest.raises(ConfigError, match="auth_token is required"):
        load_settings(None, environ={"HUB_CHANNELS__TWILIO__ENABLED": "true",
                                     "HUB_CHANNELS__TWILIO__ACCOUNT_SID": ACCOUNT})
    with pytest.raises(ConfigError, match="account_sid is required"):
        load_settings(None, environ={"HUB_CHANNELS__TWILIO__ENABLED": "true",
                                     "HUB_CHANNELS__TWILIO__AUTH_TOKEN": TOKEN})
    with pytest.raises(ConfigError, match=r"must be in E\.164"):
        load_settings(None, environ={"HUB_CHANNELS__TWILIO__NUMBERS": '{"4155550199": {}}'})
    with pytest.raises(ConfigError, match="not a span of hours"):
        load_settings(None, environ={"HUB_CHANNELS__TWILIO__NUMBERS": '{"+14155550199": {"hours": ["9 to 5"]}}'})
    settings = load_settings(None, environ={"HUB_CHANNELS__TWILIO__ENABLED": "true",
                                            "HUB_CHANNELS__TWILIO__ACCOUNT_SID": ACCOUNT,
                                            "HUB_CHANNELS__TWILIO__AUTH_TOKEN": TOKEN})
    with pytest.raises(ConfigError, match=r"server\.public_url is required"):
        build_app(settings)


# -- files agents send, and downloads shared by several hub processes ----------------------------------------------


def _file(name: str, data: bytes, content_type: str = "image/png") -> dict[str, str]:
    return {"filename": name, "content_type": content_type, "data_base64": base64.b64encode(data).decode()}


async def test_files_go_out_as_media_urls_twilio_can_fetch_and_nobody_else(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    sim = fake[0]
    client, admin = await start()
    conv = await _conversation(client, admin)
    png, pdf = b"\x89PNG the label", b"%PDF the invoice"
    status, reply = await _reply(client, admin, conv, "Here you go",
                                 attachments=[_file("label.png", png), _file("invoice.pdf", pdf, "application/pdf")])
    assert status == 201, reply
    await eventually(lambda: _status_is(client, admin, reply["id"], "sending"))
    [form] = sim.sent()
    urls = form.getall("MediaUrl")
    assert len(urls) == 2 and all(u.startswith(PUBLIC + "/webhooks/twilio/media/") for u in urls)
    assert form["Body"] == "Here you go"
    got = []
    for u in urls:  # what Twilio does next: GET each URL (no credentials; the signature is the key)
        parts = urlsplit(u)
        resp = await client.get(parts.path + "?" + parts.query)
        assert resp.status == 200 and resp.headers["Cache-Control"] == "private, no-store"
        got.append((resp.headers["Content-Type"], await resp.read()))
    assert got == [("image/png", png), ("application/pdf", pdf)]

    parts = urlsplit(urls[0])
    query = parse_qs(parts.query)
    forged = await client.get(parts.path, params={"expires": query["expires"][0], "sig": "0" * 64})
    assert forged.status == 403
    later = await client.get(parts.path, params={"expires": str(int(query["expires"][0]) + 3600),
                                                 "sig": query["sig"][0]})
    assert later.status == 403, "the expiry is signed too"
    assert (await client.get(parts.path)).status == 403
    # Digits int() does not take, and ids past 64 bits: refused with a reason, never a 500.
    odd = await client.get(parts.path, params={"expires": "²²", "sig": query["sig"][0]})
    assert odd.status == 403 and (await odd.json())["error"]["message"]
    huge = await client.get("/webhooks/twilio/media/99999999999999999999999/x.png", params=query)
    assert huge.status == 400 and "id" in (await huge.json())["error"]["message"]

    key = _sms(client).account.media_key
    expired = twilio_media.signed_url(PUBLIC, key, reply["attachments"][0]["id"], "label.png", 60, now=0)
    parts = urlsplit(expired)
    assert (await client.get(parts.path + "?" + parts.query)).status == 403
    # Even correctly signed, only files agents sent are ever served: never a customer's.
    sid = new_sid("MM")
    await webhook(client, SMS, sample("mms_inbound", MessageSid=sid, SmsSid=sid, SmsMessageSid=sid,
                                      MediaUrl0=sim.add_media(fake[1], sid, b"private", "image/jpeg")))
    theirs = [a for m in await timeline(client, admin) if m["direction"] == "in" for a in m["attachments"]]
    parts = urlsplit(twilio_media.signed_url(PUBLIC, key, theirs[0]["id"], "x.jpg", 60))
    assert (await client.get(parts.path + "?" + parts.query)).status == 404


async def test_media_limits_are_refused_when_the_agent_sends(start: Any, fake: tuple[TwilioFake, str]) -> None:
    client, admin = await start(outbox__max_attachments="20")
    conv = await _conversation(client, admin)
    status, body = await _reply(client, admin, conv, "many", attachments=[_file(f"{i}.png", b"x") for i in range(11)])
    assert status == 422 and "channel sms carries at most 10 per message" in body["error"]["message"]
    wa = await _conversation(client, admin, "whatsapp_inbound")
    status, body = await _reply(client, admin, wa, "two", channel="whatsapp",
                                attachments=[_file("a.png", b"x"), _file("b.png", b"y")])
    assert status == 422 and "channel whatsapp carries at most 1 per message" in body["error"]["message"]
    assert fake[0].sent() == []


async def test_the_simulator_fetches_sent_media_from_the_hub_like_twilio(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str]
) -> None:
    sim, url = fake
    settings = make_settings(None, **settings_env(url))
    server = TestServer(build_app(settings))
    client: Client = await aiohttp_client(server)
    sim.hub_url, sim.callback_delay = str(server.make_url("")).rstrip("/"), 0.05
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    conv = await _conversation(client, admin)
    _, reply = await _reply(client, admin, conv, "", attachments=[_file("label.png", b"\x89PNG")])
    await eventually(lambda: _status_is(client, admin, reply["id"], "delivered"))
    assert [(status, size) for _, status, size in sim.fetched] == [(200, 4)]


async def test_two_hub_processes_never_fetch_the_same_media_twice(
    start: Any, fake: tuple[TwilioFake, str], db_url: str
) -> None:
    sim, url = fake
    sim.media_delay = 0.3  # downloads overlap
    first, admin = await start(db_url)
    second, _ = await start(db_url)
    sid = new_sid("MM")
    files = [sim.add_media(url, sid, f"photo {i}".encode(), "image/jpeg") for i in range(2)]
    await webhook(first, SMS, sample("mms_inbound", MessageSid=sid, SmsSid=sid, SmsMessageSid=sid,
                                     MediaUrl0=files[0], MediaUrl1=files[1]))
    accounts = [_sms(c).account for c in (first, second)]
    # Both processes' fetchers (and the first one's own background task) go for the same downloads at once.
    await asyncio.gather(*(a.fetch_due() for a in accounts for _ in range(2)))

    async def stored() -> list[Any] | None:
        atts = await _attachments(first, admin)
        return atts if atts and all(a["status"] == "stored" for a in atts) else None

    await eventually(stored)
    assert sorted(sim.media_gets) == sorted(urlsplit(u).path for u in files), "each file downloaded exactly once"


def _sms(client: Client) -> SmsChannel:
    channel = client.app[CHANNELS]["sms"]
    assert isinstance(channel, SmsChannel)
    return channel


async def test_an_opt_out_between_reply_and_send_still_stops_the_message(
    start: Any, fake: tuple[TwilioFake, str]
) -> None:
    client, admin = await start()
    await _conversation(client, admin)
    sms = _sms(client)
    await sms.twilio_sink.set_opt_out(Identity("phone", CUSTOMER), "sms", "STOP")
    with pytest.raises(SendError, match="until they text START") as refused:
        await sms.send(Outbound(message_id=1, conversation_id=1, channel="sms", to=Identity("phone", CUSTOMER),
                                text="hi", attempt=1))
    assert refused.value.permanent and fake[0].sent() == []


async def test_an_uploaded_page_is_served_as_a_download_never_inline(start: Any, fake: tuple[TwilioFake, str]) -> None:
    """The seen attack: the signed media route served an agent-uploaded HTML file inline, and Chromium ran its
    script on the hub's origin. Every file leaves as an attachment, nosniff, under a sandbox policy."""
    sim = fake[0]
    client, admin = await start()
    conv = await _conversation(client, admin)
    page = b"<script>fetch('/console/session')</script>"
    status, reply = await _reply(client, admin, conv, "see attached",
                                 attachments=[_file("Pr\u00e9sentation \"final\".html", page, "text/html")])
    assert status == 201, reply
    await eventually(lambda: _status_is(client, admin, reply["id"], "sending"))
    [form] = sim.sent()
    parts = urlsplit(form.getall("MediaUrl")[0])
    resp = await client.get(parts.path + "?" + parts.query)
    assert resp.status == 200 and await resp.read() == page
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"Presentation _final_.html\"; filename*=UTF-8''Pr%C3%A9sentation%20%22final%22.html")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"].startswith("sandbox")
