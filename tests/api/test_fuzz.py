"""Property-based requests for every operation of the hub's own /api/v1/openapi.json (schemathesis), valid and
invalid: none may answer 5xx, and every answer must be one the document promises (status, content type, schema).
A real hub on a real port, on SQLite and PostgreSQL. HUB_FUZZ_EXAMPLES sets how many requests per operation and
mode (default 8, which keeps a run near a minute; raise it for a long hunt)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import DB
from tests.conftest import free_port

pytestmark = pytest.mark.fuzz

# Field names the hub's own readers look for, so generated objects reach past the first check.
KEYS = ["type", "text", "client_id", "visitor_id", "identity", "profile", "name", "email", "page", "typing",
        "update_id", "message", "edited_message", "chat", "from", "id", "date", "message_id", "photo", "document",
        "file_id", "user_id", "user_hash", "password", "conversation_id", "caption", "is_bot", "first_name"]
EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# A WebSocket: schemathesis speaks plain HTTP, so its upgrade is fuzzed by tests/console/test_events_ws.py.
SKIP = {("GET", "/api/v1/events")}
TG_TOKEN = "123456789:AAHZFMHno3mzVLErU5b5jJvaeG--qUyLyG0"
TG_SECRET = "s3cret-telegram-webhook-token"
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 5, max_value=2**70)
           | st.floats(allow_nan=False) | st.text(max_size=40) | st.sampled_from(["\x00", "²", "1e999", "-1", ""]))


class Raw(str):
    """JSON text sent as it is (deeper than json.dumps would nest)."""


DEEP = Raw("[" * 20_000 + "]" * 20_000)
WS_DEEP = Raw("[" * 5_000 + "]" * 5_000)  # within a web-chat frame's size limit
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12) | st.sampled_from(KEYS), inner, max_size=5),
                    max_leaves=20)


@dataclass
class RunningHub:
    url: str
    loop: asyncio.AbstractEventLoop
    app: web.Application

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def admin_token(self) -> str:
        token: str = self.run(create_token(self.app[DB], "admin", label="fuzz"))
        return token


@pytest.fixture
def running_hub(make_settings: Callable[..., Settings], db_url: str) -> Iterator[RunningHub]:
    """The hub in a thread of its own, on a real port, so a synchronous HTTP client can drive it."""
    settings = make_settings(db_url, **{
        "HUB_ROUTING__QUEUES": '{"support": {}, "sales": {}}',
        "HUB_CHANNELS__WEBCHAT__ENABLED": "true",
        # Every example is a new visitor from 127.0.0.1: the limit is tested in tests/channels/webchat/test_limits.py.
        "HUB_CHANNELS__WEBCHAT__NEW_VISITORS_PER_ADDRESS_PER_MINUTE": "100000",
        "HUB_CHANNELS__WEBCHAT__NEW_VISITORS_PER_MINUTE": "100000",
        "HUB_CHANNELS__TELEGRAM__ENABLED": "true",
        "HUB_CHANNELS__TELEGRAM__BOT_TOKEN": TG_TOKEN,
        "HUB_CHANNELS__TELEGRAM__WEBHOOK_SECRET": TG_SECRET,
        # Nothing answers here: files named in fuzzed updates are never fetched from the real Telegram.
        "HUB_CHANNELS__TELEGRAM__API_URL": "http://127.0.0.1:9/bot",
        "HUB_CHANNELS__TELEGRAM__FILE_URL": "http://127.0.0.1:9/file/bot",
        "HUB_SERVER__MAX_BODY_BYTES": "65536",
    })
    port = free_port()
    loop = asyncio.new_event_loop()
    app = build_app(settings)
    runner = web.AppRunner(app)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="fuzzed-hub", daemon=True)
    thread.start()
    assert started.wait(30)
    hub = RunningHub(f"http://127.0.0.1:{port}", loop, app)
    # Something for the ids to find: an agent, a customer with a conversation and a message.
    agent = hub.run(add_agent(app[DB], "Fuzz Agent", "fuzz@example.com", "fuzz-password-1", "agent", ["support"]))
    headers = {"Authorization": f"Bearer {hub.admin_token()}"}
    resp = requests.post(f"{hub.url}/api/v1/inbound", headers=headers, timeout=10,
                         json={"identity": "phone:+14155550100", "text": "hello", "name": "Ann"})
    assert resp.status_code == 201, resp.text
    assert agent.id >= 1
    yield hub
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.ERROR)
    yield
    bad = [r for r in caplog.records if r.exc_info or "unhandled" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]


def fuzz(op: schemathesis.APIOperation, mode: GenerationMode, url: str, session: requests.Session,
         headers: dict[str, str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        if "Authorization" not in (case.headers or {}):
            case.headers = {**(case.headers or {}), **headers}
        response = case.call(base_url=url, session=session, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=case.headers)

    run()


def test_no_operation_answers_5xx_or_off_the_document(running_hub: RunningHub, no_tracebacks: None) -> None:
    spec = requests.get(f"{running_hub.url}/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    session = requests.Session()
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 30, [f"{o.method} {o.path}" for o in operations]
    for op in operations:
        if (op.method.upper(), op.path) in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # A fresh token per operation: fuzzing DELETE /tokens/{id} may revoke the one before.
            headers = {"Authorization": f"Bearer {running_hub.admin_token()}"}
            try:
                fuzz(op, mode, running_hub.url, session, headers)
            except (Exception, BaseExceptionGroup) as e:  # one operation's failure must not hide the next one's
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(e)[:1500]}")
    assert not failures, "\n\n".join(failures)


FUZZ = settings(max_examples=EXAMPLES * 4, deadline=None, database=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def test_console_sign_in_and_telegram_webhook_take_any_json(running_hub: RunningHub, no_tracebacks: None) -> None:
    session = requests.Session()
    tried: list[int] = []

    @FUZZ
    @example(body=DEEP, update={"update_id": 1, "message": {"message_id": 5, "date": 1700000000, "text": "hi",
                                                           "from": {"id": 1, "is_bot": False, "first_name": "A"}}})
    @example(body={"email": "a\x00n@example.com", "password": "x"}, update={"update_id": 2, "message": DEEP})
    @given(body=JSON, update=st.fixed_dictionaries({"update_id": st.integers(0, 2**40)}, optional={
        "message": JSON, "edited_message": JSON, "channel_post": JSON}))
    def run(body: Any, update: dict[str, Any]) -> None:
        tried.append(1)
        sent = body if isinstance(body, Raw) else json.dumps(body)
        resp = session.post(f"{running_hub.url}/console/session", data=sent,
                            headers={"Content-Type": "application/json"}, timeout=30)
        assert resp.status_code in (400, 401, 422, 429), (resp.status_code, resp.text)
        assert resp.json()["error"]["message"]
        raw_update = json.dumps(update).replace(json.dumps(DEEP), DEEP)  # DEEP goes in as raw JSON text
        resp = session.post(f"{running_hub.url}/webhooks/telegram", data=raw_update, timeout=30,
                            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
        # Always acknowledged: what cannot be placed is journaled and flagged, never retried by Telegram forever.
        assert resp.status_code == 200, (resp.status_code, resp.text)

    run()
    assert len(tried) >= EXAMPLES * 2
    journal = running_hub.run(running_hub.app[DB].read(lambda tx: tx.all(
        "SELECT status, COUNT(*) AS n FROM journal WHERE channel = 'telegram' GROUP BY status")))
    assert {r["status"] for r in journal} <= {"processed", "rejected"}, journal


def test_both_websockets_take_any_frame(running_hub: RunningHub, no_tracebacks: None) -> None:
    token = running_hub.admin_token()

    async def exchange(hello: Any, frames: list[Any]) -> None:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{running_hub.url}/webchat/ws")
            await ws.send_str(hello if isinstance(hello, Raw) else json.dumps(hello))
            for frame in frames:
                await ws.send_str(frame if isinstance(frame, Raw) else json.dumps(frame))
            await ws.send_str(json.dumps({"type": "hello"}) if not isinstance(hello, dict) else '{"type": "ping"}')
            while True:
                msg = await ws.receive(timeout=30)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    # Closed by us for a reason the visitor can read (4400: not a hello), never 1011.
                    assert ws.close_code in (4400, 4429), (msg, ws.close_code)
                    break
                if json.loads(msg.data).get("type") in ("pong", "welcome") and not isinstance(hello, dict):
                    break
                if json.loads(msg.data).get("type") == "pong":
                    break
            await ws.close()
            events = await http.ws_connect(f"{running_hub.url}/api/v1/events",
                                           headers={"Authorization": f"Bearer {token}"})
            assert (await events.receive_json(timeout=30))["type"] == "hello"
            for frame in frames:
                await events.send_str(frame if isinstance(frame, Raw) else json.dumps(frame))
            await events.send_str("ping")
            while (msg := await events.receive(timeout=30)).data != "pong":
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
            await events.close()

    @FUZZ
    @example(hello=WS_DEEP, frames=[])
    @example(hello={"type": "hello"}, frames=[WS_DEEP, {"type": "message", "client_id": "abcdefgh", "text": "\x00"}])
    @given(hello=st.one_of(JSON, st.fixed_dictionaries({"type": st.just("hello")}, optional={
        "visitor_id": JSON, "identity": JSON, "profile": JSON, "page": JSON})),
        frames=st.lists(st.one_of(JSON, st.fixed_dictionaries({"type": st.sampled_from(
            ["message", "typing", "profile", "ping"])}, optional={"client_id": JSON, "text": JSON, "typing": JSON,
                                                                   "name": JSON, "email": JSON})), max_size=4))
    def run(hello: Any, frames: list[Any]) -> None:
        tried.append(1)
        asyncio.run(exchange(hello, frames))

    tried: list[int] = []
    run()
    assert len(tried) >= EXAMPLES * 2
