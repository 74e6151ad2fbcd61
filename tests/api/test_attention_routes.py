"""/api/v1/attention: every event the hub could not place, of every channel, and what operators do about it.
SQLite and PostgreSQL; the email channel reads real corpus emails; each answer is checked against the OpenAPI."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.keys import CHANNELS, DB, INGEST
from tests.api.client import Api, Client
from tests.conftest import free_port

CORPUS = Path(__file__).parents[1] / "channels" / "email" / "emails"
LIST = "/api/v1/attention"
ONE = "/api/v1/attention/{id}"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_CHANNELS__EMAIL__ENABLED="true", HUB_CHANNELS__EMAIL__ADDRESS="support@hub.test",
                         HUB_CHANNELS__EMAIL__SMTP_PORT=str(free_port()))


async def headers_of(client: Client, name: str, role: str) -> dict[str, str]:
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "long password", role, ["support"])
    return {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}


async def test_flagged_events_are_listed_shown_replayed_attached_and_dismissed(api: Api, client: Client) -> None:
    email = client.app[CHANNELS]["email"]
    assert await email.receive((CORPUS / "no_sender.eml").read_bytes(), {"mailbox": "support", "uid": 1}) == "flagged"
    bounce = (CORPUS / "gmail_bounce.eml").read_bytes()
    assert await email.receive(bounce, {"mailbox": "support", "uid": 2}) == "flagged"
    # A Twilio SMS webhook the adapter could not read, kept by the one inbound path like any channel's.
    await client.app[INGEST].flag("sms", "SM-bad", {"MessageSid": "SM-bad", "From": "+1 (999)", "Body": "refund?"},
                                  "'+1 (999)' is not a phone number", "bad_number")

    page = await api.call("GET", LIST, LIST)
    assert page["count"] == 3
    sms, gmail, nosender = page["items"]  # newest first
    assert (sms["channel"], sms["reason"], sms["sender"], sms["summary"]) == ("sms", "bad_number", "+1 (999)",
                                                                             "refund?")
    assert gmail["reason"] == "unmatched_bounce" and "mailer-daemon@googlemail.com" in gmail["sender"]
    assert gmail["summary"] == "Delivery Status Notification (Failure)"
    assert nosender["reason"] == "no_sender" and nosender["summary"] == "who am I" and nosender["sender"] == ""
    only = await api.call("GET", LIST, f"{LIST}?channel=email&reason=no_sender")
    assert [i["id"] for i in only["items"]] == [nosender["id"]]
    # The count is of what the list holds with the same filters (the console's badge shows it), over all pages.
    assert only["count"] == 1
    email_only = await api.call("GET", LIST, f"{LIST}?channel=email&limit=1")
    assert email_only["count"] == 2 and [i["id"] for i in email_only["items"]] == [gmail["id"]]

    shown = await api.call("GET", ONE, f"{LIST}/{nosender['id']}")
    assert "There is no From header" in shown["raw"]["text"] and shown["raw"]["content_type"] == "message/rfc822"
    raw = await client.get(f"{LIST}/{nosender['id']}/raw", headers=api.headers)
    assert raw.status == 200 and raw.content_type == "message/rfc822"
    assert raw.headers["Content-Security-Policy"].startswith("sandbox")
    assert await raw.read() == (CORPUS / "no_sender.eml").read_bytes()

    # Replay: still no sender, so still rejected, with the reason; the attempt is journaled.
    again = await api.call("POST", f"{ONE}/replay", f"{LIST}/{nosender['id']}/replay", {"note": "after the fix"})
    assert again["status"] == "rejected" and again["outcome"].startswith("still unreadable")
    # Attach: the operator knows who wrote it; it is stored on a new customer's timeline through ingest.
    done = await api.call("POST", f"{ONE}/attach", f"{LIST}/{nosender['id']}/attach",
                          {"identity": "email:Olga@Example.com", "name": "Olga", "note": "she phoned about it"})
    assert done["status"] == "done" and done["message_id"]
    msg = await api.call("GET", "/api/v1/messages/{id}", f"/api/v1/messages/{done['message_id']}")
    assert "There is no From header" in msg["text"] and msg["meta"]["attached_from_event"] == nosender["id"]
    timeline_owner = await api.call("GET", "/api/v1/customers", "/api/v1/customers?identity=email:olga@example.com")
    assert timeline_owner["items"][0]["name"] == "Olga"
    shown = await api.call("GET", ONE, f"{LIST}/{nosender['id']}")
    assert [(a["action"], a["note"]) for a in shown["actions"]] == [("replay", "after the fix"),
                                                                   ("attach", "she phoned about it")]
    assert shown["status"] == "done"
    await api.call("POST", f"{ONE}/attach", f"{LIST}/{nosender['id']}/attach", {"customer_id": 1}, expect=409)

    # Dismiss needs a note; then it leaves the list but is kept.
    await api.call("POST", f"{ONE}/dismiss", f"{LIST}/{gmail['id']}/dismiss", {}, expect=422)
    await api.call("POST", f"{ONE}/dismiss", f"{LIST}/{gmail['id']}/dismiss", {"note": "old address, bounced"})
    page = await api.call("GET", LIST, LIST)
    assert [i["id"] for i in page["items"]] == [sms["id"]] and page["count"] == 1
    assert (await api.call("GET", ONE, f"{LIST}/{gmail['id']}"))["status"] == "dismissed"

    metrics = await (await client.get("/metrics")).text()
    assert 'hub_flagged_events_total{channel="email",reason="no_sender"} 1.0' in metrics
    assert 'hub_flagged_events_total{channel="email",reason="unmatched_bounce"} 1.0' in metrics


async def test_a_rejected_email_replayed_after_a_fix_is_stored_on_its_senders_timeline(
    api: Api, client: Client
) -> None:
    """What a later version of the adapter can read, replay stores: here a flagged event whose raw email is fine
    (as when the hub was too strict when it came in)."""
    raw = (CORPUS / "list_post.eml").read_bytes()
    jid = await client.app[INGEST].flag("email", "list.7@lists.example.org",
                                        {"eml_base64": base64.b64encode(raw).decode()}, "auto-reply (Precedence: "
                                        "list)", "automatic")
    done = await api.call("POST", f"{ONE}/replay", f"{LIST}/{jid}/replay")
    assert done["outcome"] == "stored" and done["status"] == "done"
    msg = await api.call("GET", "/api/v1/messages/{id}", f"/api/v1/messages/{done['message_id']}")
    assert msg["identity"] == "email:priya@lists.example.org" and "drops the last row" in msg["text"]
    # The same email fetched again is now a duplicate of it.
    assert await client.app[CHANNELS]["email"].receive(raw) == "duplicate"


async def test_only_supervisors_and_admins_see_flagged_events(api: Api, client: Client) -> None:
    agent = await headers_of(client, "Ann", "agent")
    sup = await headers_of(client, "Sue", "supervisor")
    await api.call("GET", LIST, LIST, headers=agent, expect=403)
    await api.call("POST", f"{ONE}/replay", f"{LIST}/1/replay", headers=agent, expect=403)
    assert (await api.call("GET", LIST, LIST, headers=sup))["count"] == 0
    await api.call("GET", ONE, f"{LIST}/999", headers=sup, expect=404)


