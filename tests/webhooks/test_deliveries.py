"""Outbound webhooks as an admin uses them, against a real receiver that verifies every signature: subscribe,
get signed events in order per conversation, retries with backoff, disable after persistent failure, the delivery
log and resend; and the SSRF guard on targets. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from hub.config import Settings
from tests.api.client import Api, inbound
from tests.waiting import eventually
from tests.webhooks.receiver import Receiver

FAST = {
    "HUB_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
    "HUB_WEBHOOKS__BASE_DELAY_SECONDS": "0.05",
    "HUB_WEBHOOKS__MAX_DELAY_SECONDS": "0.2",
    "HUB_WEBHOOKS__POLL_INTERVAL_SECONDS": "0.1",
    "HUB_AUTOMATION__POLL_INTERVAL_SECONDS": "0.1",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, **FAST)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, str]:
    r = Receiver()
    server: TestServer = await aiohttp_server(r.app(), host="127.0.0.1")
    return r, f"http://127.0.0.1:{server.port}/hook"


async def subscribe(api: Api, receiver: Receiver, url: str, events: list[str]) -> dict[str, Any]:
    sub = await api.call("POST", "/api/v1/webhooks", "/api/v1/webhooks", {"url": url, "events": events}, expect=201)
    assert sub["secret"].startswith("whsec_")
    receiver.secret = sub["secret"]
    return dict(sub)


async def deliveries(api: Api, sub_id: int, status: str = "") -> list[dict[str, Any]]:
    q = f"?status={status}" if status else ""
    page = await api.call("GET", "/api/v1/webhooks/{id}/deliveries", f"/api/v1/webhooks/{sub_id}/deliveries{q}")
    return list(page["items"])


async def test_signed_events_arrive_in_order_per_conversation(api: Api, receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    sub = await subscribe(api, r, url, ["message.received", "conversation.opened", "conversation.resolved"])
    # The first delivery is refused twice: the events after it for the same conversation must wait their turn.
    r.failures = [500, 503]
    first = await inbound(api, "phone:+14155550100", "hello", "w1")
    conv = first["conversation"]["id"]
    await inbound(api, "phone:+14155550100", "are you there?", "w2")
    await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{conv}/resolve", {})
    await eventually(lambda: _count(r, 4), what="four deliveries accepted")
    types = [event["type"] for _, event in r.accepted]
    assert types == ["conversation.opened", "message.received", "message.received", "conversation.resolved"]
    texts = [event["data"]["message"]["text"] for _, event in r.accepted if event["type"] == "message.received"]
    assert texts == ["hello", "are you there?"]
    ids = [event["id"] for _, event in r.accepted]
    assert ids == sorted(ids)
    for _, event in r.accepted:
        assert event["version"] == 1 and event["data"]["conversation"]["id"] == conv
        assert event["data"]["customer"]["identities"][0]["id"] == "phone:+14155550100"
    assert all(ok for _, _, ok in r.seen)
    # The hub marks a delivery delivered once the receiver's answer is back: a moment after the receiver counted it.
    async def all_delivered() -> list[dict[str, Any]] | None:
        got = await deliveries(api, sub["id"])
        return got if [d["status"] for d in got] == ["delivered"] * 4 else None

    log = await eventually(all_delivered, what="four deliveries marked delivered")
    retried = next(d for d in log if d["event_type"] == "conversation.opened")
    assert retried["attempts"] == 3 and retried["response_status"] == 204 and retried["last_error"] is None


async def _count(r: Receiver, n: int) -> bool:
    return len(r.accepted) >= n


async def test_a_forged_signature_is_refused_by_the_receiver(api: Api, receiver: tuple[Receiver, str]) -> None:
    """The receiver's check is real: with the wrong secret every delivery is refused and retried."""
    r, url = receiver
    sub = await subscribe(api, r, url, ["*"])
    r.secret = "whsec_not-the-one-the-hub-signs-with"
    await inbound(api, "phone:+14155550101", "hi", "f1")
    await eventually(lambda: _refused(r), what="a refused delivery")
    assert r.accepted == []
    pending = await deliveries(api, sub["id"], "pending")
    await eventually(lambda: _has_error(api, sub["id"]), what="the 401 in the delivery log")
    assert pending


async def _refused(r: Receiver) -> bool:
    return any(not ok for _, _, ok in r.seen)


async def _has_error(api: Api, sub_id: int) -> bool:
    return any(d["response_status"] == 401 and "bad signature" in (d["last_error"] or "")
               for d in await deliveries(api, sub_id))


async def test_persistent_failure_disables_then_resend_delivers(
    make_settings: Callable[..., Settings], db_url: str, aiohttp_client: Any, admin_token_api: Any,
    receiver: tuple[Receiver, str],
) -> None:
    api: Api = await admin_token_api(make_settings(db_url, **FAST, HUB_WEBHOOKS__MAX_ATTEMPTS="3"))
    r, url = receiver
    sub = await subscribe(api, r, url, ["message.received"])
    r.failures = [500] * 3
    await inbound(api, "phone:+14155550102", "one", "p1")

    async def disabled() -> dict[str, Any] | None:
        got = await api.call("GET", "/api/v1/webhooks/{id}", f"/api/v1/webhooks/{sub['id']}")
        return None if got["enabled"] else dict(got)

    off = await eventually(disabled, what="the subscription disabled")
    assert "failed 3 times" in off["disabled_reason"] and "HTTP 500" in off["disabled_reason"]
    assert not off["secret"].endswith(r.secret[-6:])  # the whole secret is shown once only
    [failed] = await deliveries(api, sub["id"], "failed")
    # While disabled, new events wait (they are not lost).
    await inbound(api, "phone:+14155550102", "two", "p2")
    await eventually(lambda: _pending(api, sub["id"], 1), what="a waiting delivery")
    assert r.accepted == []
    # Resend the failed one, enable again: both arrive, in order.
    again = await api.call("POST", "/api/v1/webhooks/{id}/deliveries/{delivery}/resend",
                           f"/api/v1/webhooks/{sub['id']}/deliveries/{failed['id']}/resend", expect=202)
    assert again["status"] == "pending" and again["attempts"] == 0
    on = await api.call("PATCH", "/api/v1/webhooks/{id}", f"/api/v1/webhooks/{sub['id']}", {"enabled": True})
    assert on["enabled"] and on["disabled_reason"] is None
    await eventually(lambda: _count(r, 2), what="both delivered after enabling")
    assert [e["data"]["message"]["text"] for _, e in r.accepted] == ["one", "two"]


async def _pending(api: Api, sub_id: int, n: int) -> bool:
    return len(await deliveries(api, sub_id, "pending")) == n


async def test_rotate_secret_and_event_filter(api: Api, receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    sub = await subscribe(api, r, url, ["conversation.resolved"])
    rotated = await api.call("PATCH", "/api/v1/webhooks/{id}", f"/api/v1/webhooks/{sub['id']}",
                             {"rotate_secret": True})
    assert rotated["secret"] != sub["secret"] and rotated["secret"].startswith("whsec_")
    r.secret = rotated["secret"]
    first = await inbound(api, "phone:+14155550103", "hi", "r1")
    conv = first["conversation"]["id"]
    await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{conv}/resolve", {})
    await eventually(lambda: _count(r, 1), what="the resolve delivered")
    assert [e["type"] for _, e in r.accepted] == ["conversation.resolved"]
    assert r.accepted[0][1]["data"]["conversation"]["status"] == "resolved"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook", "http://localhost/hook", "http://[::ffff:192.168.0.1]/", "ftp://example.com/hook",
    "http://user:pw@example.com/hook", "http:///nohost", "http://0.0.0.0/",
])
async def test_private_targets_are_refused_by_default(
    make_settings: Callable[..., Settings], db_url: str, admin_token_api: Any, url: str
) -> None:
    api: Api = await admin_token_api(make_settings(db_url))
    answer = await api.call("POST", "/api/v1/webhooks", "/api/v1/webhooks", {"url": url, "events": ["*"]}, expect=422)
    assert answer["error"]["message"].startswith("url: ")


async def test_bad_subscriptions_get_reasons(api: Api) -> None:
    bad = await api.call("POST", "/api/v1/webhooks", "/api/v1/webhooks",
                         {"url": "https://example.com/h", "events": ["message.deleted"]}, expect=422)
    assert "unknown event types message.deleted" in str(bad["error"]["details"])
    await api.call("POST", "/api/v1/webhooks", "/api/v1/webhooks",
                   {"url": "https://example.com/h", "events": ["*"], "secret": "short"}, expect=422)
    await api.call("GET", "/api/v1/webhooks/{id}", "/api/v1/webhooks/999", expect=404)
    await api.call("POST", "/api/v1/webhooks/{id}/deliveries/{delivery}/resend",
                   "/api/v1/webhooks/999/deliveries/1/resend", expect=404)
    await api.call("GET", "/api/v1/webhooks/{id}/deliveries", "/api/v1/webhooks/1/deliveries?status=x", expect=400)
    # Seen by the fuzz test: "events": null on a change answered 500. Null means "leave as it is", like absent.
    sub = await api.call("POST", "/api/v1/webhooks", "/api/v1/webhooks",
                         {"url": "https://example.com/h", "events": ["message.received"]}, expect=201)
    kept = await api.call("PATCH", "/api/v1/webhooks/{id}", f"/api/v1/webhooks/{sub['id']}", {"events": None})
    assert kept["events"] == ["message.received"]


async def test_a_rule_sends_an_event_to_a_subscription(api: Api, receiver: tuple[Receiver, str]) -> None:
    r, url = receiver
    sub = await subscribe(api, r, url, ["conversation.resolved"])
    await api.call("POST", "/api/v1/automation/rules", "/api/v1/automation/rules", {
        "name": "Urgent to pager", "event": "message.received",
        "conditions": [{"field": "text", "op": "contains", "value": "urgent"}],
        "actions": [{"type": "send_webhook", "value": sub["id"]}]}, expect=201)
    await inbound(api, "phone:+14155550104", "not urgent at all... well, URGENT", "u1")
    await inbound(api, "phone:+14155550105", "just saying hi", "u2")
    await eventually(lambda: _count(r, 1), what="the rule's delivery")
    await eventually(lambda: _pending(api, sub["id"], 0), what="nothing more pending")
    assert [(e["type"], e["data"]["message"]["text"]) for _, e in r.accepted] == [
        ("message.received", "not urgent at all... well, URGENT")]


async def test_a_subscription_gets_an_event_once_however_many_ways_it_is_sent(
    api: Api, receiver: tuple[Receiver, str]
) -> None:
    """Subscribed to the event's type AND named by two rules' send_webhook: still one delivery of that event."""
    r, url = receiver
    sub = await subscribe(api, r, url, ["message.received"])
    for name in ("To the CRM", "Also to the CRM"):
        await api.call("POST", "/api/v1/automation/rules", "/api/v1/automation/rules", {
            "name": name, "event": "message.received", "conditions": [],
            "actions": [{"type": "send_webhook", "value": sub["id"]}]}, expect=201)
    await inbound(api, "phone:+14155550106", "hello", "once-1")

    async def both_ran() -> bool:
        rules = await api.call("GET", "/api/v1/automation/rules", "/api/v1/automation/rules")
        return [rule["runs"] for rule in rules["items"]] == [1, 1]

    await eventually(both_ran, what="both rules run")  # and neither sent it a second time:
    await eventually(lambda: _count(r, 1), what="the delivery")
    await eventually(lambda: _pending(api, sub["id"], 0), what="nothing more pending")
    assert len(await deliveries(api, sub["id"])) == 1
    assert [e["type"] for _, e in r.accepted] == ["message.received"]

