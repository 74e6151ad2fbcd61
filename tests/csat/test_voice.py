"""The satisfaction question after a call, on SQLite and PostgreSQL: when the agent hangs up, the caller still on the
line hears it in a Twilio <Gather>; the key they press answers it through the inbound path. Real-format voice
webhooks, signed with the real algorithm."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from hub.config import Settings
from hub.keys import CSAT, DB
from tests.channels.twilio.fake import PUBLIC, TwilioFake, new_sid, sample, start_hub, twiml, webhook

Client = TestClient[Any, Any]
VOICE = "/webhooks/twilio/voice"


@pytest.fixture
def start(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str]
) -> Callable[..., Any]:
    async def go(db_url: str | None = None, csat: bool = True) -> tuple[Client, dict[str, str]]:
        queues = {"support": {"title": "Support", "csat": csat}, "sales": {"title": "Sales"}}
        return await start_hub(aiohttp_client, make_settings, fake[1], db_url, routing__queues=queues,
                               csat__poll_interval_seconds="3600")

    return go


def gather_of(body: str) -> ET.Element | None:
    root = twiml(body)
    assert root[-1].tag == "Hangup", body
    found = root.findall("Gather")
    return found[0] if found else None


async def answered_call(client: Client, call_sid: str) -> str:
    """A call that an agent took and has just hung up: the TwiML the caller gets next."""
    await webhook(client, VOICE, sample("voice_inbound", CallSid=call_sid))
    status, body, _ = await webhook(client, f"{VOICE}/queue-result",
                                    sample("voice_queue_result_bridged", CallSid=call_sid))
    assert status == 200
    return body


async def surveys(client: Client) -> list[Any]:
    return list(await client.app[DB].read(lambda tx: tx.all("SELECT * FROM csat_surveys ORDER BY id")))


async def test_the_caller_presses_a_score_after_the_agent_hangs_up(start: Any, db_url: str) -> None:
    client, admin = await start(db_url)
    call_sid = sample("voice_inbound")["CallSid"]
    gather = gather_of(await answered_call(client, call_sid))
    assert gather is not None and gather.get("numDigits") == "1" and gather.get("method") == "POST"
    assert "Press a number from 1, very unhappy, to 5, very happy." in (gather.findtext("Say") or "")
    [survey] = await surveys(client)
    assert (survey["status"], survey["channel"]) == ("sent", "voice")
    action = str(gather.get("action"))
    assert action.startswith(PUBLIC)
    path = urlsplit(action).path + "?" + urlsplit(action).query

    unsigned = await client.post(path, data={"CallSid": call_sid, "Digits": "1"})
    assert unsigned.status == 403
    status, body, _ = await webhook(client, path, sample("voice_menu", CallSid=call_sid, Digits="4"))
    assert status == 200 and "Thank you for your answer" in body
    [survey] = await surveys(client)
    assert (survey["status"], survey["score"]) == ("answered", 4)
    conv = survey["conversation_id"]
    detail = await (await client.get(f"/api/v1/conversations/{conv}", headers=admin)).json()
    assert detail["messages"][-1]["text"] == "4/5" and detail["csat"]["score"] == 4

    # Resolved later: the call's conversation had its survey; no text goes out after it.
    await client.post(f"/api/v1/conversations/{conv}/resolve", headers=admin)
    assert await client.app[CSAT].run_once() == 0
    assert len(await surveys(client)) == 1


async def test_no_key_or_a_bad_key_answers_nothing(start: Any) -> None:
    client, _ = await start()
    call_sid = sample("voice_inbound")["CallSid"]
    gather = gather_of(await answered_call(client, call_sid))
    assert gather is not None
    path = urlsplit(str(gather.get("action"))).path + "?" + urlsplit(str(gather.get("action"))).query
    for digits in ("", "9", "#"):
        status, body, _ = await webhook(client, path, sample("voice_menu", CallSid=call_sid, Digits=digits))
        assert status == 200 and "Goodbye" in body
    assert (await surveys(client))[0]["status"] == "sent"


async def test_no_question_when_the_queue_does_not_survey_or_the_caller_texted_stop(start: Any) -> None:
    client, _ = await start(csat=False)
    assert gather_of(await answered_call(client, new_sid("CA"))) is None
    assert await surveys(client) == []

    client, _ = await start()
    await webhook(client, "/webhooks/twilio/sms", sample("sms_stop"))
    assert gather_of(await answered_call(client, new_sid("CA"))) is None
    assert await surveys(client) == []
