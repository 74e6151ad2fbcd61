"""Twilio's later facts (message status, call status) through the real app and store, signed with the real
algorithm: a status that beats the send's REST answer, an unknown SID flagged with a reason that `hub events list
--flagged` shows, a retried callback stored once, and `hub events replay` applying a call's status late."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.config import Settings
from hub.keys import DB, INGEST
from tests.channels.twilio.fake import (
    ACCOUNT,
    PUBLIC,
    TOKEN,
    TwilioFake,
    new_sid,
    sample,
    start_hub,
    webhook,
)
from tests.waiting import eventually

Client = TestClient[Any, Any]
SMS, STATUS = "/webhooks/twilio/sms", "/webhooks/twilio/sms/status"
VOICE = "/webhooks/twilio/voice"


class EarlyCallbacks(TwilioFake):
    """Twilio whose status callbacks for a new message reach the hub before its answer to the send itself does."""

    def __init__(self) -> None:
        super().__init__(ACCOUNT, TOKEN)
        #: the hub's HTTP status for each early callback
        self.answers: list[int] = []

    async def create_message(self, request: web.Request) -> web.Response:
        resp = await super().create_message(request)
        if resp.status == 201:
            assert isinstance(resp.text, str)
            sid = json.loads(resp.text)["sid"]
            callback = self.requests[-1][1]["StatusCallback"]
            for status in ("sent", "delivered"):
                self.answers.append(await self.status_callback(sid, callback, status))
        return resp

    async def _deliver(self, sid: str, callback: str, media: list[str] | None = None) -> None:
        return None  # the callbacks went out above, early


def hub_cli(*args: str, db_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATABASE__URL"] = db_url
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


async def timeline(client: Client, admin: dict[str, str]) -> list[Any]:
    resp = await client.get("/api/v1/customers", params={"identity": "phone:+14155550100"}, headers=admin)
    found = (await resp.json())["items"]
    if not found:
        return []
    resp = await client.get(f"/api/v1/customers/{found[0]['id']}/timeline", headers=admin)
    items: list[Any] = (await resp.json())["items"]
    return items


async def facts(client: Client) -> list[dict[str, Any]]:
    rows = await client.app[DB].read(lambda tx: tx.all(
        "SELECT dedupe_key, status, error, attempts FROM journal WHERE dedupe_key LIKE 'fact:%' ORDER BY id"
    ))
    return [dict(r) for r in rows]


async def test_a_status_callback_that_beats_the_send_result_ends_delivered(
    aiohttp_client: Any, aiohttp_server: Any, make_settings: Callable[..., Settings], db_url: str
) -> None:
    sim = EarlyCallbacks()
    fake_url = str((await aiohttp_server(sim.app())).make_url("")).rstrip("/")
    client, admin = await start_hub(aiohttp_client, make_settings, fake_url, db_url)
    sim.hub_url = str(client.server.make_url("")).rstrip("/")
    sim.public_url = PUBLIC
    await webhook(client, SMS, sample("sms_inbound"))
    [inbound] = await timeline(client, admin)
    resp = await client.post(f"/api/v1/conversations/{inbound['conversation_id']}/messages",
                             json={"text": "It ships today!"}, headers=admin)
    reply = await resp.json()

    async def final() -> Any:
        got = await (await client.get(f"/api/v1/messages/{reply['id']}", headers=admin)).json()
        return got if got["external_id"] else None

    got = await eventually(final)
    assert sim.answers == [202, 202], "both callbacks came before the hub knew the SID: kept, waiting"
    assert got["status"] == "delivered", "applied once the outbox recorded the SID, not left at 'sending'"
    sid = got["external_id"]
    assert await facts(client) == [
        # tried twice each: on arrival (waiting), then in the transaction that recorded the SID
        {"dedupe_key": f"fact:{sid}:status:sent", "status": "done", "error": None, "attempts": 2},
        {"dedupe_key": f"fact:{sid}:status:delivered", "status": "done", "error": None, "attempts": 2},
    ]


async def test_an_unknown_sid_is_flagged_with_a_reason_that_events_list_shows(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str], db_url: str,
    tmp_path: Path,
) -> None:
    client, _admin = await start_hub(aiohttp_client, make_settings, fake[1], db_url,
                                     ingest__pending_fact_seconds="0.3")
    unknown = new_sid("SM")
    status, _, headers = await webhook(client, STATUS, sample("sms_status_delivered", MessageSid=unknown,
                                                              SmsSid=unknown))
    assert status == 202
    assert headers["X-Hub-Pending"].endswith(f"status 'delivered' for sms message {unknown}: no such outgoing "
                                             "message yet; applied as soon as it is recorded")
    await asyncio.sleep(0.4)
    await client.app[INGEST].process_journal()  # the journal sweep a running hub does every few seconds
    [row] = await facts(client)
    assert row["status"] == "failed" and "waited" in row["error"]
    out = hub_cli("events", "list", "--flagged", db_url=db_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"sms       failed   fact:{unknown}:status:delivered" in out.stdout
    assert f"status 'delivered' for sms message {unknown}: no such outgoing message (waited" in out.stdout
    # Twilio retries (same callback): stored once, answered as flagged.
    status, _, headers = await webhook(client, STATUS, sample("sms_status_delivered", MessageSid=unknown,
                                                              SmsSid=unknown))
    assert status == 204 and len(await facts(client)) == 1


async def test_a_retried_status_callback_is_not_duplicated(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str], db_url: str
) -> None:
    client, admin = await start_hub(aiohttp_client, make_settings, fake[1], db_url)
    await webhook(client, SMS, sample("sms_inbound"))
    [inbound] = await timeline(client, admin)
    resp = await client.post(f"/api/v1/conversations/{inbound['conversation_id']}/messages",
                             json={"text": "Tracking number follows"}, headers=admin)
    mid = (await resp.json())["id"]

    async def sending() -> Any:
        got = await (await client.get(f"/api/v1/messages/{mid}", headers=admin)).json()
        return got["external_id"] if got["status"] == "sending" else None

    sid = await eventually(sending)
    callback = sample("sms_status_delivered", MessageSid=sid, SmsSid=sid)
    answers = [(await webhook(client, STATUS, callback))[0] for _ in range(3)]
    assert answers == [204, 204, 204]
    got = await (await client.get(f"/api/v1/messages/{mid}", headers=admin)).json()
    assert got["status"] == "delivered"
    assert await facts(client) == [
        {"dedupe_key": f"fact:{sid}:status:delivered", "status": "done", "error": None, "attempts": 1},
    ]


async def test_a_call_status_for_a_call_not_on_a_timeline_is_kept_and_replay_applies_it(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str], db_url: str,
    tmp_path: Path,
) -> None:
    client, admin = await start_hub(aiohttp_client, make_settings, fake[1], db_url,
                                    ingest__pending_fact_seconds="0.3")
    call_sid = new_sid("CA")
    status, _, headers = await webhook(client, f"{VOICE}/status",
                                       sample("voice_status_completed", CallSid=call_sid))
    assert status == 202 and "no such incoming message yet" in headers["X-Hub-Pending"]
    await asyncio.sleep(0.4)
    await client.app[INGEST].process_journal()
    assert [r["status"] for r in await facts(client)] == ["failed"]
    # The call itself turns up late (e.g. its own webhook was replayed); the flagged status waits for an operator.
    await webhook(client, VOICE, sample("voice_inbound", CallSid=call_sid))
    [call] = [m for m in await timeline(client, admin) if m["kind"] == "call"]
    assert call["meta"]["outcome"] == "queued"
    out = hub_cli("events", "replay", db_url=db_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "replayed: 1 event(s)" in out.stdout
    [call] = [m for m in await timeline(client, admin) if m["kind"] == "call"]
    assert call["meta"]["call_status"] == "completed" and call["meta"]["duration_seconds"] == 227
    assert call["meta"]["outcome"] == "abandoned" and call["text"] == "Abandoned call: the caller hung up"
    assert [r["status"] for r in await facts(client)] == ["done"]


@pytest.mark.parametrize("first", ["recording", "transcription"])
async def test_a_transcript_and_its_recording_in_either_order_make_one_voicemail(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: tuple[TwilioFake, str], first: str
) -> None:
    client, admin = await start_hub(aiohttp_client, make_settings, fake[1])
    recording = sample("voice_recording")
    transcription = sample("voice_transcription", RecordingSid=recording["RecordingSid"])
    query = "?from=%2B14155550100&to=%2B14155550199"
    posts = {"recording": (f"{VOICE}/recording{query}", recording),
             "transcription": (f"{VOICE}/transcription", transcription)}
    order = [first, "transcription" if first == "recording" else "recording"]
    for name in order + order:  # and each retried once
        path, params = posts[name]
        status, _, _ = await webhook(client, path, params)
        assert status in (200, 204), (name, status)
    [voicemail] = [m for m in await timeline(client, admin) if m["kind"] == "voicemail"]
    assert voicemail["text"] == transcription["TranscriptionText"] and voicemail["meta"]["transcript"] == "completed"
    assert [r["status"] for r in await facts(client)] == ["done"]
