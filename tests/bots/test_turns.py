"""Bots that answer first, against a real HTTP bot speaking Rasa's REST channel format and verifying the hub's
signature: answers reach the customer through the outbox and sit on the timeline; the bot hands off with a note
and labels; a customer asking for a person, or a bot that never answers, hands off to people. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.config import Settings
from tests.api.client import Api, inbound, start_api
from tests.waiting import eventually
from tests.webhooks.receiver import verified

SETTINGS = {
    "HUB_ROUTING__QUEUES": '{"bot": {"title": "Assistant"}, "support": {"title": "Support"}}',
    "HUB_ROUTING__DEFAULT_QUEUE": "bot",
    "HUB_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
    "HUB_WEBHOOKS__BASE_DELAY_SECONDS": "0.05",
    "HUB_WEBHOOKS__MAX_DELAY_SECONDS": "0.1",
    "HUB_WEBHOOKS__POLL_INTERVAL_SECONDS": "0.1",
    "HUB_AUTOMATION__POLL_INTERVAL_SECONDS": "0.1",
}


class RasaLikeBot:
    """Answers like Rasa's REST channel (`/webhooks/rest/webhook`): a list of {recipient_id, text | custom}."""

    def __init__(self) -> None:
        self.secret = ""
        self.heard: list[dict[str, Any]] = []
        self.down = False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verified(self.secret, request.headers, body):
            return web.Response(status=401)
        if self.down:
            return web.Response(status=500, text="model not loaded")
        said = json.loads(body)
        self.heard.append(said)
        me = said["sender"]
        if "refund" in said["message"].lower():
            return web.json_response([
                {"recipient_id": me, "text": "A colleague will look at your refund."},
                {"recipient_id": me, "custom": {"handoff": True, "note": "Wants a refund", "labels": ["refund"]}},
            ])
        return web.json_response([{"recipient_id": me, "text": "We are open 9 to 5, Monday to Friday."}])


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, **SETTINGS)


@pytest.fixture
async def bot(aiohttp_server: Any) -> tuple[RasaLikeBot, str]:
    b = RasaLikeBot()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", b.handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    return b, f"http://127.0.0.1:{server.port}/webhooks/rest/webhook"


async def _with_bot(api: Api, bot: tuple[RasaLikeBot, str]) -> RasaLikeBot:
    b, url = bot
    made = await api.call("PUT", "/api/v1/bots/{queue}", "/api/v1/bots/bot", {"url": url, "handoff_queue": "support"})
    assert made["secret"].startswith("whsec_")
    b.secret = made["secret"]
    return b


async def _conv(api: Api, conv: int) -> dict[str, Any]:
    return dict(await api.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}"))


async def test_the_bot_answers_then_hands_off(api: Api, bot: tuple[RasaLikeBot, str]) -> None:
    b = await _with_bot(api, bot)
    first = await inbound(api, "phone:+14155550400", "When are you open?", "b1")
    conv = first["conversation"]["id"]
    assert first["conversation"]["queue"] == "bot"

    async def outgoing(n: int) -> list[dict[str, Any]] | None:
        msgs = [m for m in (await _conv(api, conv))["messages"] if m["direction"] == "out"]
        return msgs if len(msgs) >= n else None

    [answer] = await eventually(lambda: outgoing(1), what="the bot's answer")
    assert answer["text"] == "We are open 9 to 5, Monday to Friday." and answer["meta"]["bot"] == "bot"
    assert answer["kind"] == "text" and answer["channel"] == "api"
    assert b.heard[0]["sender"] == f"conversation-{conv}" and b.heard[0]["metadata"]["conversation_id"] == conv
    await inbound(api, "phone:+14155550400", "I want a refund", "b2")
    msgs = await eventually(lambda: outgoing(3), what="the hand-off")
    assert [m["kind"] for m in msgs] == ["text", "text", "note"]
    assert msgs[1]["text"] == "A colleague will look at your refund."
    assert msgs[2]["text"] == "Handed off by the bot: Wants a refund"
    detail = await _conv(api, conv)
    assert detail["queue"] == "support" and detail["labels"] == ["refund"]
    # With people now: the bot hears no more.
    await inbound(api, "phone:+14155550400", "thanks", "b3")
    await eventually(lambda: _settled(api), what="events handled")
    assert len(b.heard) == 2


async def _settled(api: Api) -> bool:
    from hub.keys import DB

    row = await api.client.app[DB].read(lambda tx: tx.one(
        "SELECT (SELECT COUNT(*) FROM hub_events WHERE status = 'pending') "
        "+ (SELECT COUNT(*) FROM bot_turns WHERE status = 'pending') AS n"))
    return row is not None and int(row["n"]) == 0


async def test_a_customer_can_always_ask_for_a_person(api: Api, bot: tuple[RasaLikeBot, str]) -> None:
    b = await _with_bot(api, bot)
    first = await inbound(api, "phone:+14155550401", "Can I talk to a human please", "p1")
    await eventually(lambda: _settled(api), what="events handled")
    detail = await _conv(api, first["conversation"]["id"])
    assert detail["queue"] == "support" and b.heard == []
    assert [m["text"] for m in detail["messages"] if m["kind"] == "note"] == [
        "Handed off by the bot: The customer asked for a person."]


async def test_a_bot_that_never_answers_hands_off(
    make_settings: Callable[..., Settings], db_url: str, aiohttp_client: Any, bot: tuple[RasaLikeBot, str]
) -> None:
    api = await start_api(aiohttp_client, make_settings(db_url, **SETTINGS, HUB_WEBHOOKS__MAX_ATTEMPTS="2"))
    b = await _with_bot(api, bot)
    b.down = True
    first = await inbound(api, "phone:+14155550402", "hello?", "d1")
    await eventually(lambda: _settled(api), what="events handled")

    async def handed() -> dict[str, Any] | None:
        detail = await _conv(api, first["conversation"]["id"])
        return detail if detail["queue"] == "support" else None

    detail = await eventually(handed, what="the hand-off")
    [note] = [m["text"] for m in detail["messages"] if m["kind"] == "note"]
    assert note.startswith("Handed off by the bot: the bot did not answer") and "HTTP 500" in note


async def test_bot_settings_get_reasons(make_settings: Callable[..., Settings], db_url: str,
                                        aiohttp_client: Any) -> None:
    strict = {k: v for k, v in SETTINGS.items() if k != "HUB_WEBHOOKS__ALLOW_PRIVATE_TARGETS"}
    api = await start_api(aiohttp_client, make_settings(db_url, **strict))
    path = "/api/v1/bots/{queue}"
    await api.call("PUT", path, "/api/v1/bots/bot", {"url": "https://bot.example.com/webhooks/rest/webhook",
                                                     "handoff_queue": "bot"}, expect=422)
    await api.call("PUT", path, "/api/v1/bots/nosuch", {"url": "https://bot.example.com/", "handoff_queue": "support"},
                   expect=404)
    bad = await api.call("PUT", path, "/api/v1/bots/bot", {"url": "http://127.0.0.1:5005/webhooks/rest/webhook",
                                                           "handoff_queue": "support"}, expect=422)
    assert "allow_private_targets" in bad["error"]["message"]
    made = await api.call("PUT", path, "/api/v1/bots/bot", {"url": "https://bot.example.com/webhooks/rest/webhook",
                                                            "handoff_queue": "support"})
    again = await api.call("PUT", path, "/api/v1/bots/bot", {"url": "https://bot.example.com/other",
                                                             "handoff_queue": "support", "enabled": False})
    assert made["secret"].startswith("whsec_") and again["secret"].endswith("…") and not again["enabled"]
    assert [b["queue"] for b in (await api.call("GET", "/api/v1/bots", "/api/v1/bots"))["items"]] == ["bot"]
    await api.call("DELETE", path, "/api/v1/bots/bot")
    await api.call("GET", path, "/api/v1/bots/bot", expect=404)
